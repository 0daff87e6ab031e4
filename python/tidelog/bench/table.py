"""The comparison table (rich when installed, plain text otherwise) and the headline ratios."""
from __future__ import annotations

import sys

from .machine import describe

SHORT = {"fdatasyncs/s": "fsyncs/s", "acks/fdatasync": "acks/fsync"}


def fmt(x, unit: str = "") -> str:
    """3 significant digits with k/M/G, e.g. 14.9 M, 812 k, 3.41."""
    if x is None:
        return "–"
    if x != x:
        return "nan"
    ax = abs(x)
    for div, suf in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if ax >= div:
            v = x / div
            return f"{v:.3g}{suf}" if v < 1000 else f"{v:.0f}{suf}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 0.01 or ax == 0:
        return f"{x:.3g}"
    return f"{x:.2e}"


def fmt_value(r: dict) -> str:
    return f"{fmt(r['value'])} {r['metric']}"


def fmt_spread(r: dict) -> str:
    if r.get("min") is None or len(r.get("rounds") or []) < 2:
        return ""
    return f"{fmt(r['min'])}–{fmt(r['max'])}"


def fmt_ratio(x) -> str:
    if x is None:
        return ""
    if x >= 100:
        return f"{x:.0f}×"
    return f"{x:.3g}×"


def fmt_limit(r: dict) -> str:
    if r.get("limit") is None:
        return ""
    if r["contender"] == r["limit"]:
        return "(the limit)"
    return f"{fmt_ratio(r['ratio_limit'])} {r['limit']}"


def fmt_peer(r: dict) -> str:
    if r.get("best_peer") is None:
        return "– (no peer here yet)" if r.get("kind") == "tidelog" else ""
    if r["contender"] == r["best_peer"]:
        return "(best peer)"
    return f"{fmt_ratio(r['ratio_peer'])} {r['best_peer']}"


def fmt_more(r: dict) -> str:
    out = []
    for k, v in (r.get("metrics") or {}).items():
        if k == r["metric"] or v is None:
            continue
        out.append(f"{fmt(v)} {SHORT.get(k, k)}")
    return ", ".join(out)


HEADERS = ["case", "contender", "median", "min–max", "also", "vs limit", "vs best peer"]


def label(r: dict) -> str:
    """The row's case label as the current code words it (falls back to the one stored in the JSON)."""
    from .workloads import find

    try:
        return find(r["workload"]).label(r["params"], r["case"])
    except Exception:  # noqa: BLE001 - an unknown workload or older parameters
        return r["label"]


def table_rows(doc: dict, workload: str) -> list[list[str]]:
    out = []
    for r in doc["results"]:
        if r["workload"] != workload:
            continue
        out.append([label(r), r["contender"], fmt_value(r), fmt_spread(r), fmt_more(r), fmt_limit(r), fmt_peer(r)])
    return out


def skip_lines(doc: dict, workload: str, bracket: bool = False) -> list[str]:
    """One line per distinct skip of ``workload``: "contender at k=v: reason", or
    "contender (k=v): reason" with ``bracket`` (the Markdown page)."""
    seen, out = set(), []
    for s in doc.get("skipped", []):
        if s["workload"] != workload:
            continue
        where = ""
        if s.get("params") is not None:
            params = ", ".join(f"{k}={v}" for k, v in s["params"].items())
            where = f" ({params})" if bracket else f" at {params}"
        line = f"{s['contender']}{where}: {s['reason']}"
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def print_table(doc: dict, file=None, plain: bool | None = None) -> None:
    file = file or sys.stdout
    if plain is None:
        import importlib.util

        plain = importlib.util.find_spec("rich") is None
    if not plain:
        _print_rich(doc, file)
    else:
        _print_plain(doc, file)


#: The table's columns; each workload's rows are grouped under their case label
#: (a line of its own), and "also" (secondary metrics) goes on a line below the row.
COLUMNS = ["contender", "median", "min–max", "vs limit", "vs best peer"]
#: The widest a plain table gets (a terminal narrower than this: its width).
PLAIN_MAX_WIDTH = 100


def _grouped(doc: dict, name: str) -> list[tuple[str, list[tuple[dict, list[str], str]]]]:
    """[(case label, [(result, [contender, median, min–max, vs limit, vs best peer], also)])]."""
    groups: list[tuple[str, list]] = []
    results = [r for r in doc["results"] if r["workload"] == name]
    for r, (case, contender, median, spread, also, limit, peer) in zip(results, table_rows(doc, name)):
        if not groups or groups[-1][0] != case:
            groups.append((case, []))
        groups[-1][1].append((r, [contender, median, spread, limit, peer], also))
    return groups


def _print_rich(doc: dict, file) -> None:
    """The plain layout at the terminal's width, with tidelog's rows bold, the limits dim."""
    from rich.console import Console

    console = Console(file=file, highlight=False)

    def out(line: str = "", style: str | None = None) -> None:
        console.print(line, style=style, markup=False, overflow="fold", crop=False, soft_wrap=True)

    _print_lines(doc, out, console.width, rich=True)


def _plain_width(file) -> int:
    import shutil

    try:
        tty = file.isatty()
    except (AttributeError, ValueError):
        tty = False
    return min(shutil.get_terminal_size((PLAIN_MAX_WIDTH, 24)).columns, PLAIN_MAX_WIDTH) if tty else PLAIN_MAX_WIDTH


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False) or [indent]


def _print_plain(doc: dict, file) -> None:
    _print_lines(doc, lambda line="", style=None: print(line, file=file), _plain_width(file), rich=False)


def _print_lines(doc: dict, out, width: int, rich: bool) -> None:
    """The tables as lines of at most ``width`` characters, through ``out(line, style)``."""
    def p(line: str = "", style: str | None = None) -> None:
        out(line, style if rich else None)

    p(f"tidelog bench ({doc['mode']}), {doc['machine']['date']}", "bold")
    for line in _wrap(describe(doc["machine"]), width, ""):
        p(line, "dim")
    for name, wl in doc["workloads"].items():
        p()
        p(wl["title"], "bold")
        groups = _grouped(doc, name)
        body = [cells for _case, rows in groups for _r, cells, _also in rows]
        widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(COLUMNS)]
        # The last column moves to the line below when the row would be wider than the page.
        shown = len(COLUMNS) if 4 + sum(widths) + 2 * (len(widths) - 1) + 2 <= width else len(COLUMNS) - 1

        def row(values: list[str]) -> str:
            return "    " + "  ".join(c.rjust(w) if i in (1, 2) else c.ljust(w)
                                      for i, (c, w) in enumerate(zip(values[:shown], widths))).rstrip()

        header = row(COLUMNS)
        p(header, "bold")
        p("    " + "-" * (min(len(header), width) - 4))
        for case, rows in groups:
            for line in _wrap(case, width, "  "):
                p(line, "underline")
            for r, cells, also in rows:
                style = "bold cyan" if r["kind"] == "tidelog" else ("dim" if r["kind"] == "limit" else None)
                mark = " *" if r["kind"] == "tidelog" and not rich else ""
                p(row(cells) + mark, style)
                extra = [x for x in ([f"peer: {cells[4]}"] if shown < len(COLUMNS) and cells[4] else []) + [also] if x]
                if extra:
                    for line in _wrap("; ".join(extra), width, "        "):
                        p(line, "dim")
        for s in skip_lines(doc, name):
            for line in _wrap(f"skipped {s}", width, "  "):
                p(line, "dim")
        for e in doc.get("errors", []):
            if e["workload"] == name:
                for line in _wrap(f"ERROR {e['contender']}: {e['error']}", width, "  "):
                    p(line, "red")
    tl = target_lines(doc)
    if tl:
        p()
        p("Targets", "bold")
        for t in tl:
            for line in _wrap(f"- {t}", width, "  "):
                p(line, None if "not met" not in t else "yellow")
    hl = headlines(doc)
    if hl:
        p()
        p("Headlines", "bold")
        for h in hl:
            for line in _wrap(f"- {h}", width, "  "):
                p(line)
    p(f"{doc.get('elapsed_s', 0):.1f} s", "dim")


# ------------------------------------------------------------ targets

def target_lines(doc: dict) -> list[str]:
    """One line per target a workload of the run promises (core.Target): met / not met and the measured ratio."""
    out = []
    for t in doc.get("targets") or []:
        want = f">= {t['at_least']:.3g}x"
        if t["ratio"] is None:
            out.append(f"{t['name']}: not measured ({t['reason']}; target {want})")
        else:
            out.append(f"{t['name']}: {t['ratio']:.2f}x, {'met' if t['met'] else 'not met'} (target {want})")
    return out


# ------------------------------------------------------------ headlines

# parameters only some rows have (ingest's keyed partitions, scans' frame sizes): a headline reads the
# rows without them unless it names them
VARIANT_PARAMS = ("partitions", "frame_rows", "columnar")


def _plain(r: dict, match: dict | None = None) -> bool:
    return not any(k in r["params"] and k not in (match or {}) for k in VARIANT_PARAMS)


def _find(doc, workload, contender, **match):
    best = None
    for r in doc["results"]:
        if r["workload"] != workload or r["contender"] != contender or not _plain(r, match):
            continue
        merged = {**r["params"], **r["case"]}
        if all(merged.get(k) == v for k, v in match.items()):
            best = r
    return best


def _largest(doc, workload, key):
    vals = [r["params"][key] for r in doc["results"]
            if r["workload"] == workload and key in r["params"] and _plain(r)]
    return max(vals) if vals else None


def _batch_for_headline(doc) -> int | None:
    sizes = sorted({r["params"]["batch_rows"] for r in doc["results"] if r["workload"] == "ingest"})
    for pref in (65536, 10240):
        if pref in sizes:
            return pref
    return sizes[-1] if sizes else None


def headlines(doc: dict) -> list[str]:
    """The headline ratios of a run (durable ingest, scans, durable acks from threads and from processes),
    where the run has them."""
    out = []
    b = _batch_for_headline(doc)
    if b is not None:
        t = _find(doc, "ingest", "tidelog", batch_rows=b, durable=True)
        lim = _find(doc, "ingest", "write+fdatasync", batch_rows=b, durable=True)
        app = _find(doc, "ingest", "append+fdatasync", batch_rows=b, durable=True)
        sq = _find(doc, "ingest", "sqlite FULL", batch_rows=b, durable=True)
        dd = _find(doc, "ingest", "duckdb", batch_rows=b, durable=True)
        if t and lim:
            s = (f"durable columnar ingest, {b:,}-row batches: tidelog {fmt(t['value'])} rows/s = "
                 f"{t['value'] / lim['value']:.2f}× write+fdatasync into a preallocated file "
                 f"({fmt(lim['value'])} rows/s)")
            if app:
                s += f", {t['value'] / app['value']:.2f}× append+fdatasync ({fmt(app['value'])})"
            if sq:
                s += f", {t['value'] / sq['value']:.1f}× SQLite WAL FULL ({fmt(sq['value'])})"
            if dd:
                s += f", {t['value'] / dd['value']:.1f}× DuckDB ({fmt(dd['value'])})"
            out.append(s)
    size = _largest(doc, "scans", "size")
    if size is not None:
        t = _find(doc, "scans", "tidelog", size=size, query="scan")
        mem = _find(doc, "scans", "arrow (in memory)", size=size, query="scan")
        ipc = _find(doc, "scans", "pyarrow IPC", size=size, query="scan")
        if t:
            s = f"whole-topic scan + sum, {fmt(size)}B: tidelog {fmt(t['value'])} rows/s"
            if mem:
                s += f" = {t['value'] / mem['value']:.2f}× in-memory Arrow"
            if ipc:
                s += f", {t['value'] / ipc['value']:.2f}× pyarrow IPC via mmap"
            if t.get("best_peer") and t.get("ratio_peer"):
                s += f", {t['ratio_peer']:.1f}× {t['best_peer']}"
            out.append(s)
    for name in ("tidelog", "tidelog producer"):
        one = _find(doc, "threads", name, threads=1)
        for n in (16, 4):
            many = _find(doc, "threads", name, threads=n)
            if one and many:
                per = many["metrics"].get("acks/fdatasync")
                out.append(f"durable acks, {name}: {n} threads {fmt(many['value'])}/s = "
                           f"{many['value'] / one['value']:.2f}× 1 thread ({fmt(one['value'])}/s)"
                           + (f", {per:.1f} acks per fdatasync" if per else ""))
                break
    many = _find(doc, "processes", "tidelog processes", part="acks")
    one = _find(doc, "processes", "tidelog 1 process", part="acks")
    if many and one:
        per = many["metrics"].get("acks/fdatasync")
        out.append(f"durable acks, {many['params']['processes']} processes × {many['params']['threads']} threads "
                   f"on one log: {fmt(many['value'])}/s = {many['value'] / one['value']:.2f}× 1 process × 1 thread "
                   f"({fmt(one['value'])}/s)" + (f", {per:.1f} acks per fdatasync" if per else ""))
    return out
