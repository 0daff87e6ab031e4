"""What an export run returns, how it reports progress, and its offset arguments."""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from ..errors import InvalidArgumentError


@dataclasses.dataclass
class ExportResult:
    """One export run.

    ``rows``: rows written; ``bytes_read``: their Arrow size as read;
    ``files``: the data files this run added (file exports; Iceberg: the data
    files of its snapshot); ``bytes_written``: their size; ``start_offsets``
    and ``end_offsets``: per partition, the offsets this run covered, start
    inclusive, end exclusive; ``lost``: per partition, offsets retention had
    deleted before an incremental run could read them (``[first, end)``);
    ``snapshot_id``: the Iceberg snapshot the run committed (None for files,
    or when there was nothing new)."""

    path: str
    format: str
    rows: int
    bytes_read: int
    files: list[str]
    bytes_written: int
    start_offsets: dict[int, int]
    end_offsets: dict[int, int]
    lost: dict[int, tuple[int, int]]
    seconds: float
    snapshot_id: int | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("start_offsets", "end_offsets", "lost"):
            d[k] = {str(p): v for p, v in d[k].items()}
        return d


class NoProgress:
    """The progress interface an export reports to (``progress=``): ``start``
    with the offsets it will read, ``update`` after each batch read, ``advance``
    when a partition is done (by its offsets, which a time range or a compacted
    partition may not fill with rows), ``finish`` at the end. This one does nothing."""

    def start(self, total_offsets: int) -> None:
        pass

    def update(self, rows: int, nbytes: int) -> None:
        pass

    def advance_to_partition_end(self, offsets: int) -> None:
        pass

    def finish(self) -> None:
        pass


def offsets_arg(topic, value: Any, what: str) -> dict[int, int | None] | None:
    """``start_offset``/``end_offset`` as ``{partition: offset or None}`` (None: not given):
    an int for every partition, or a dict as ``end_offsets()`` returns."""
    if value is None:
        return None
    from .._topic import _per_partition

    try:
        return _per_partition(topic, value, what, list(range(topic.partitions)), None)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(str(e)) from None


def resume_ranges(topic, done: dict[int, int], ends: dict[int, int], resumed: bool, holder: str,
                  fix: str) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """Where an incremental run starts in each partition (past what ``done``
    holds and what retention kept), and the offsets retention deleted before
    a run read them (warned about). ``holder`` names the output and ``fix``
    what to do when it holds more than the topic (a topic created again)."""
    for p, end in ends.items():
        if done.get(p, 0) > end:
            raise InvalidArgumentError(f"{holder} holds offsets of partition {p} up to {done[p]}, and topic "
                                       f"{topic.name!r} now ends at {end}: was the topic deleted and created "
                                       f"again? {fix}")
    kept_from = topic.start_offsets()
    starts = {p: max(done.get(p, 0), kept_from[p]) for p in ends}
    lost = {p: (done.get(p, 0), starts[p]) for p in ends if resumed and starts[p] > done.get(p, 0)}
    warn_lost(topic, lost, stacklevel=5)
    return starts, lost


def warn_lost(topic, lost: dict[int, tuple[int, int]], stacklevel: int = 4) -> None:
    """A UserWarning naming the offsets retention deleted before an incremental run could read them."""
    if lost:
        ranges = ", ".join(f"partition {p}: [{a}, {b})" for p, (a, b) in sorted(lost.items()))
        warnings.warn(f"topic {topic.name!r}: retention deleted offsets before this export read them ({ranges}); "
                      "the export goes on from the first offset kept", UserWarning, stacklevel=stacklevel)
