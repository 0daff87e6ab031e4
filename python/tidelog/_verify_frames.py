"""``tidelog verify``'s checks of compacted data (FORMAT.md §2.6), apart from
the walk in ``_verify.py``: the header rules of sparse and empty frames, the
offset block at the start of a sparse frame's payload, and the files an
interrupted compaction leaves (``*.cleaned``).

Like the rest of verify, independent of the native code on purpose: it reads
the bytes itself, so that the two implementations of the format check each
other.
"""
from __future__ import annotations

import os
import struct
from typing import Callable

FLAG_SPARSE = 2  # flags bit 1: the payload starts with an offset block
HORIZON_BYTES = 8  # i64 delete_horizon_ns, the block's first field
CLEANED_SUFFIX = ".cleaned"  # a compaction's new files before their rename (FORMAT.md, compaction swap)

_DELTAS_PER_READ = 1 << 16  # bounded memory: the block is read in steps of 256 KiB


def block_length(record_count: int) -> int:
    """Bytes of a sparse frame's offset block: the horizon, a u32 per record,
    zero padding to a multiple of 8."""
    return (HORIZON_BYTES + 4 * record_count + 7) & ~7


def header_problems(version: int, flags: int, count: int, span: int, payload_length: int) -> list[str]:
    """The rules of FORMAT.md §2.3/§2.6 on a header's record count and flags
    (structural: no payload bytes read)."""
    why = []
    sparse = bool(flags & FLAG_SPARSE)
    if sparse and version < 2:
        why.append("FLAG_SPARSE on a version-1 frame")
    elif count == 0 and not sparse:
        why.append("record_count 0 without FLAG_SPARSE")  # only compaction writes empty frames
    elif sparse and count == 0 and payload_length != HORIZON_BYTES:
        why.append(f"an empty sparse frame with payload_length {payload_length} (its payload is the 8-byte block)")
    elif sparse and block_length(count) > payload_length:
        why.append(f"offset block of {block_length(count)} bytes longer than payload_length {payload_length}")
    elif not sparse and version >= 2 and 0 < count < span:
        why.append(f"record_count {count} < the {span} offsets it spans without FLAG_SPARSE")
    return why


def offset_block_problem(read: Callable[[int, int], bytes], payload_at: int, count: int, span: int) -> str | None:
    """What is wrong with a sparse frame's offset deltas (read through
    ``read(position, n)``; the payload starts at ``payload_at``), or None: they
    must strictly increase and stay below ``span``."""
    prev = -1
    at = payload_at + HORIZON_BYTES
    i = 0
    while i < count:
        n = min(count - i, _DELTAS_PER_READ)
        raw = read(at + 4 * i, 4 * n)
        if len(raw) < 4 * n:
            return "offset block cut short"
        for k, delta in enumerate(struct.unpack(f"<{n}I", raw)):
            if delta <= prev:
                return f"offset block: delta {delta} of record {i + k} does not increase (the previous is {prev})"
            prev = delta
        i += n
    if prev >= span:
        return f"offset block: delta {prev} past the frame's last offset (it spans {span} offsets)"
    return None


def cleaned_leftovers(directory: str) -> list[str]:
    """Names of ``*.cleaned`` files in a partition folder: a compaction stopped
    before its swap finished (the next writer, or cleaner, removes them)."""
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(CLEANED_SUFFIX))
    except OSError:
        return []


def compaction_interrupted(seg_path: str) -> bool:
    """Whether a compaction of this segment stopped midway (its ``.cleaned``
    files remain): its indexes may be missing until the next open rebuilds them."""
    stem = seg_path[: -len(".log")]
    return any(os.path.exists(stem + ext + CLEANED_SUFFIX) for ext in (".log", ".index", ".timeindex"))
