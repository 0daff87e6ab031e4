"""Plots of a results document (matplotlib, optional: ``pip install 'tidelog[bench]'``).

One figure per workload: grouped bars of each case's primary metric (log
scale), tidelog in blue, the physical limits in grey, the peers in warm
colours. ``plot(doc, "out.png")`` stacks every workload in one image;
``plot(doc, "dir/")`` writes ``dir/<workload>.png``.
"""
from __future__ import annotations

import os

from .table import label

TIDELOG = ["#1f5fbf", "#4f8fe0", "#8fbaf0", "#0b3a80"]
LIMIT = ["#555555", "#7a7a7a", "#9e9e9e", "#bdbdbd", "#d5d5d5", "#3a3a3a", "#8a8a8a"]
PEER = ["#d95f02", "#e7a52a", "#b2182b", "#7b3294", "#1b9e77", "#e7298a", "#66a61e"]


class MatplotlibMissing(RuntimeError):
    pass


def require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MatplotlibMissing("plots need matplotlib: pip install matplotlib (or 'tidelog[bench]')") from None
    return plt


def _colors(results: list[dict]) -> dict[str, str]:
    out, n = {}, {"tidelog": 0, "limit": 0, "peer": 0}
    for r in results:
        name, kind = r["contender"], r["kind"]
        if name in out:
            continue
        palette = {"tidelog": TIDELOG, "limit": LIMIT}.get(kind, PEER)
        i = n.get(kind, 0)
        out[name] = palette[i % len(palette)]
        n[kind] = i + 1
    return out


def _split(r: dict) -> str:
    """The part of a row's case that gets its own panel: durable vs not durable."""
    d = r["params"].get("durable")
    return "" if d is None else ("durable" if d else "not durable")


def _xlabel(r: dict) -> str:
    text = label(r)
    part = _split(r)
    return text[: -len(", " + part)] if part and text.endswith(", " + part) else text


def _panels(doc: dict, workload: str) -> list[tuple[str, list[dict]]]:
    """(panel title, rows) per panel: one panel per primary metric (scans have three), durable and not
    durable apart."""
    panels: dict[str, list[dict]] = {}
    for r in doc["results"]:
        if r["workload"] == workload and r["value"] is not None:
            key = r["metric"] + (f", {_split(r)}" if _split(r) else "")
            panels.setdefault(key, []).append(r)
    return list(panels.items())


def _draw_panel(ax, metric: str, rows: list[dict], colors: dict[str, str]) -> None:
    metric = rows[0]["metric"]
    labels = list(dict.fromkeys(_xlabel(r) for r in rows))
    names = list(dict.fromkeys(r["contender"] for r in rows))
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for i, lab in enumerate(labels):
            r = next((r for r in rows if _xlabel(r) == lab and r["contender"] == name), None)
            if r is None:
                continue
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(r["value"])
            lo.append(max(r["value"] - (r["min"] if r["min"] is not None else r["value"]), 0))
            hi.append(max((r["max"] if r["max"] is not None else r["value"]) - r["value"], 0))
        ax.bar(xs, ys, width * 0.92, color=colors[name], label=name, yerr=[lo, hi], capsize=1.5,
               error_kw={"elinewidth": 0.6, "ecolor": "#333333"})
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([lab.replace(", ", "\n") for lab in labels], fontsize=7)
    better = "higher is better" if rows[0]["higher_is_better"] else "lower is better"
    ax.set_ylabel(f"{metric}\n({better})", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", which="major", alpha=0.3)


def _figure(plt, doc: dict, workloads: list[str]):
    panels = [(w, m, rows) for w in workloads for m, rows in _panels(doc, w)]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.9 * len(panels)), squeeze=False)
    colors = _colors([r for _, _, rows in panels for r in rows])
    for ax, (w, metric, rows) in zip(axes[:, 0], panels):
        _draw_panel(ax, metric, rows, colors)
        ax.set_title(f"{doc['workloads'][w]['title']}" + (f" — {metric}" if len(_panels(doc, w)) > 1 else ""),
                     fontsize=9, loc="left")
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    date = doc["machine"]["date"][:10]
    fig.text(0.99, 0.002, f"tidelog bench ({doc['mode']}), {date}, {doc['machine'].get('cpu', '')}, "
             f"{doc['machine'].get('cores')} cores", fontsize=6, ha="right", va="bottom", color="#666666")
    fig.tight_layout(rect=(0, 0.015, 1, 1))
    return fig


def plot(doc: dict, out: str) -> list[str]:
    """Writes the plots; returns the paths written."""
    plt = require_matplotlib()
    workloads = [w for w in doc["workloads"] if any(r["workload"] == w for r in doc["results"])]
    written = []
    if out.endswith(".png"):
        fig = _figure(plt, doc, workloads)
        if fig is not None:
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            fig.savefig(out, dpi=80)
            plt.close(fig)
            written.append(out)
        return written
    os.makedirs(out, exist_ok=True)
    for w in workloads:
        fig = _figure(plt, doc, [w])
        if fig is None:
            continue
        path = os.path.join(out, f"{w}.png")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
