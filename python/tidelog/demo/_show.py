"""How the demo shows itself: a live bar per stage on a terminal (rich's when
installed, else one redrawn line), and only the result lines when the output
goes to a file or a pipe."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Stage:
    """Progress of one stage: ``advance`` from the thread doing the work."""

    def __init__(self, out: TextIO, label: str, total: int, live: bool):
        self.out, self.label, self.total, self.live = out, label, max(1, total), live
        self.done = 0
        self.figures = ""
        self.t0 = self.last = time.monotonic()
        self._rich = None
        if live:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
            except ImportError:
                pass
            else:
                self._rich = Progress(TextColumn("  {task.description}"), BarColumn(), TaskProgressColumn(),
                                      TextColumn("{task.fields[figures]}"), TimeElapsedColumn(),
                                      console=Console(file=out), transient=True)
                self._task = self._rich.add_task(label, total=self.total, figures="")
                self._rich.start()

    def advance(self, n: int = 1, figures: str = "") -> None:
        self.update(self.done + n, figures)

    def update(self, done: int, figures: str = "") -> None:
        self.done = done
        self.figures = figures or self.figures
        now = time.monotonic()
        if not self.live or (now - self.last < 0.1 and self.done < self.total):
            return
        self.last = now
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done, figures=self.figures)
            return
        pct = min(100, self.done * 100 // self.total)
        bar = "#" * (pct * 24 // 100)
        self.out.write(f"\r  {self.label} [{bar:<24}] {pct:3d}% {self.figures}\033[K")
        self.out.flush()

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif self.live:
            self.out.write("\r\033[K")
            self.out.flush()


class Show:
    def __init__(self, out: TextIO | None = None, live: bool | None = None):
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def stage(self, label: str, total: int) -> Stage:
        return Stage(self.out, label, total, self.live)
