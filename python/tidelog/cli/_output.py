"""Tables and progress for the command line: rich on a terminal when rich is
installed, plain aligned text otherwise (a pipe, a file, no rich). Nothing
here ever needs rich: a missing package means plain output, not a crash."""
from __future__ import annotations

import shutil
import sys
import time
from typing import Sequence, TextIO


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def rich_console(stream: TextIO, plain: bool = False):
    """A rich Console writing to ``stream`` when it is a terminal, rich is
    installed and ``plain`` is not asked for; else None (print plain text)."""
    if plain or not is_terminal(stream):
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(file=stream, highlight=False)


def terminal_width(stream: TextIO, default: int = 100) -> int:
    if is_terminal(stream):
        return shutil.get_terminal_size((default, 24)).columns
    return default


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, stream: TextIO | None = None,
                title: str | None = None, right: Sequence[str] = (), plain: bool = False) -> None:
    """Prints rows under headers; columns named in ``right`` align right
    (numbers). Cells are str()'d; None prints as '-'."""
    stream = stream or sys.stdout
    cells = [["-" if c is None else str(c) for c in row] for row in rows]
    console = rich_console(stream, plain)
    if console is not None:
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold", show_edge=False)
        for h in headers:
            table.add_column(h, justify="right" if h in right else "left", overflow="fold")
        for row in cells:
            table.add_row(*row)
        console.print(table)
        return
    if title:
        stream.write(title + "\n")
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if h in right else v.ljust(w)
                         for v, w, h in zip(values, widths, headers)).rstrip()

    stream.write(line(list(headers)) + "\n")
    for row in cells:
        stream.write(line(row) + "\n")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


class InputProgress:
    """Progress through input bytes on stderr, for long produces: a rich bar on
    a terminal with rich, a line redrawn in place on a terminal without it,
    nothing when stderr is not a terminal (the final summary says it all)."""

    def __init__(self, label: str, total_bytes: int | None, stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.label, self.total = label, total_bytes
        self.on = enabled and is_terminal(self.stream)
        self.rows = self.bytes = 0
        self.t0 = self.last = time.monotonic()
        self._bar = self._task = None
        if self.on:
            try:
                from rich.console import Console
                from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn)
            except ImportError:
                return
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                 console=Console(file=self.stream), transient=True)

    def update(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.bytes += nbytes
        if not self.on:
            return
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        rate = f"{self.rows / max(now - self.t0, 1e-9):,.0f} rows/s"
        if self._bar is not None:
            if self._task is None:
                self._bar.start()
                self._task = self._bar.add_task(self.label, total=self.total, rate=rate)
            self._bar.update(self._task, completed=self.bytes, rate=rate)
        else:
            pct = f" {self.bytes * 100 // self.total:3d}%" if self.total else ""
            self.stream.write(f"\r{self.label}{pct} {self.rows:,} rows, {rate}")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            if self._task is not None:
                self._bar.stop()
        elif self.on and self.rows and time.monotonic() - self.t0 >= 0.1:
            self.stream.write("\r\033[K")
            self.stream.flush()
