"""``tidelog verify``: a full check of a log folder against docs/FORMAT.md, and
an optional repair that moves damaged bytes aside.

The check reads every segment file front to back through one fixed-size buffer
(bounded memory whatever the log's size) and, for every partition:

- walks the frames with the checks of FORMAT.md §2.3, **CRC included**
  (§2.2), checks that the padding around each payload is zeros (the CRC does
  not cover it), and that each frame holds the expected offsets;
- where bytes fail those checks (a bad CRC, header or magic, zeros where frames
  should be, wrong offsets, a truncated frame), reports a **damaged range**
  (segment, position, damaged bytes, offsets ``start..end-1``, reason) and goes
  on at the next intact frame, found by the rule of FORMAT.md §2.5,
  implemented here independently of native/frame_resync.cpp (the cross-check
  of tests/test_verify.py compares the two). Intact frames after damage count
  as intact. A damaged range with nothing intact after it runs to the
  segment's end offset (the next segment's base; for the last segment, the
  larger of the checkpoint's and the published end);
- accepts the sparse and empty frames of compacted segments (FORMAT.md §2.6:
  offsets a frame covers without a record are not missing) and checks their
  header rules and offset blocks (``_verify_frames.py``; a broken block is
  damage); ``*.cleaned`` files of an interrupted compaction are noted as
  leftovers, not damage;
- reports **lost offsets** (a gap: no bytes at all) where a segment's frames
  end cleanly before the next segment's base, or the log ends before its
  recovery checkpoint / published end. Gaps recorded by a ``--repair`` in the
  partition's ``lost-offsets.json`` are *acknowledged*: listed, not problems.
  Frames that reach past the next segment's base (segments overlapping, e.g. an
  interrupted repair) are damage;
- after a crash (no clean-shutdown marker), flags damage past the durable
  point of the last segment as a torn write (never acknowledged; FORMAT.md §8.2
  step 6);
- checks both indexes (§4): whole entries, strictly increasing, every entry on
  a real frame start with that frame's relative offset, every time entry
  holding the running maximum of ``max_timestamp`` up to its frame;
- reads ``topic.json`` (§6).

It reports, per partition: segments, intact frames, records and bytes,
offsets, the damaged ranges, the lost ranges and the intact offset runs.
Nothing is written unless ``repair=True``.

**Repair** (``repair=True``, only while no writer holds the log: the repair
takes the writer lock itself). Offsets never change. If the log was not closed
cleanly, torn tails are saved first and a writer open recovers the log as the
next writer would; then, for each damaged range of a segment, last first:

1. the segment's ``.index``/``.timeindex`` are deleted (derived data);
2. the damaged bytes are copied to ``<segment>.log.damaged-<position>``
   (fsynced; a side file of that name with the same bytes is reused, another
   one gets ``.1``, ``.2``, ...);
3. if intact frames follow, they are copied to a new segment named by the
   offset of the first of them (``%020d.log``), built as ``<name>.tmp``,
   fsynced, renamed into place, and the folder fsynced;
4. the segment is truncated at the damage and fsynced.

A crash between 3 and 4 leaves the intact frames in both files: verify then
reports the old copy as damage past the next segment's base ("an interrupted
``verify --repair``"), readers read each record once (from the new segment),
and running ``--repair`` again moves the old copy aside. The damaged and lost
offsets are then recorded in ``lost-offsets.json`` (written atomically), so
that verify reports the gaps they leave as acknowledged (exit 0). Damaged
indexes are deleted, non-zero padding is zeroed. Metadata damage is not
repaired. After its edits the repair opens the log as a writer once (which
rebuilds the indexes and republishes the shared state) and closes it, then
verifies again.

A side file is not a segment (its name is not 24 characters) and tidelog
ignores it; delete it once you no longer need the bytes.
"""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import re
import struct
import sys
import time
from typing import Callable, Iterator, TextIO

from . import _core, _verify_frames
from ._gaps import ACK_FILE, covered as _covered, read_acknowledged as _read_acknowledged
from ._log import _fsync_dir

FRAME_MAGIC = 0x31464C54  # "TLF1"
FRAME_VERSION = 2  # what writers write; version 1 (before last_offset_delta) is still read
FRAME_VERSIONS = (1, 2)
HEADER_BYTES = 64
MAX_PAYLOAD = 2**31 - 1
CHECKPOINT_MAGIC = 0x50434C54  # "TLCP"
STATE_MAGIC = 0x53464C54  # "TLFS"
TOPIC_FORMAT_VERSIONS = (1, 2, 3)  # topic.json format versions this checker knows (3: a compacted topic)

_HEADER = struct.Struct("<IIHHHHqIIqqQII")  # FORMAT.md §2.1


def _span(h: tuple) -> int:
    """How many offsets a frame covers (FORMAT.md §2.1): last_offset_delta + 1 in
    version 2, record_count in version 1. The one place this checker knows both."""
    return h[13] + 1 if h[2] >= 2 else h[7]
_SLOT = struct.Struct("<IIQqQq24x")  # FORMAT.md §5
_SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
_ZERO_HEADER = bytes(HEADER_BYTES)

CHUNK = 1 << 20  # the read buffer: the only memory that grows with frame size
EXIT_CLEAN, EXIT_DAMAGED, EXIT_ERROR, EXIT_REPAIRED = 0, 1, 2, 3


def side_file_name(segment_path: str, position: int, unique: bool = True) -> str:
    """Where ``--repair`` saves the damaged bytes it moves out of ``segment_path``
    at ``position``: ``<segment>.log.damaged-<position>`` (with ``unique``,
    ``.1``, ``.2``, ... appended while that name is taken)."""
    base = f"{segment_path}.damaged-{position}"
    name, n = base, 0
    while unique and os.path.exists(name):
        n += 1
        name = f"{base}.{n}"
    return name


# ----------------------------------------------------------------------------- results
@dataclasses.dataclass
class Problem:
    """One thing found wrong. ``kind``: "frame" (damaged bytes: a bad frame,
    zeros where frames should be, a torn write; one per damaged range), "lost"
    (offsets with no bytes at all: a segment whose frames end before the next
    one's base, or a log that ends before its checkpoint; not yet acknowledged by
    ``--repair``), "padding" (non-zero padding around an intact frame), "index"
    (derived data), "checkpoint", "metadata"."""

    kind: str
    file: str
    position: int | None
    reason: str
    offset: int | None = None
    topic: str | None = None
    partition: int | None = None
    end_offset: int | None = None  # exclusive; "frame" and "lost" problems

    def __str__(self) -> str:
        where = os.path.basename(self.file)
        if self.position is not None:
            where += f" position {self.position}"
        if self.offset is not None and self.end_offset is not None:
            where += (f" (offsets {self.offset}..{self.end_offset - 1})" if self.end_offset > self.offset
                      else f" (offset {self.offset}, no offsets)")
        elif self.offset is not None:
            where += f" (offset {self.offset})"
        return f"{self.kind}: {where}: {self.reason}"


@dataclasses.dataclass
class DamagedRange:
    """Bytes of a segment that fail their checks (FORMAT.md §2.5), and the offsets
    they held: ``start_offset`` .. ``end_offset - 1``. The walk goes on at
    ``resync_position`` (the next intact frame, offset ``end_offset``), or the
    damage runs to the end of the segment's data (``resync_position`` None)."""

    topic: str
    partition: int
    segment: str  # path of the .log file
    position: int
    bytes: int  # damaged bytes: position .. resync_position (or the end of the file)
    start_offset: int
    end_offset: int  # exclusive
    reason: str
    resync_position: int | None
    sealed: bool  # in a sealed segment (not the partition's last)
    torn: bool = False  # past the durable point of a crashed writer: never acknowledged (FORMAT.md §8.2 step 6)

    @property
    def offsets(self) -> int:
        return max(self.end_offset - self.start_offset, 0)


@dataclasses.dataclass
class LostRange:
    """Offsets with no bytes anywhere (a gap): the segment's frames end cleanly at
    ``position`` (offset ``start_offset``) before the offset they must reach (the
    next segment's base, or the checkpoint / published end of the last segment).
    Offsets are never handed out twice, so a gap stays a gap. ``acknowledged``: a
    ``verify --repair`` recorded it in the partition's ``lost-offsets.json``."""

    topic: str
    partition: int
    segment: str
    position: int
    start_offset: int
    end_offset: int  # exclusive
    reason: str
    acknowledged: bool = False


@dataclasses.dataclass
class PartitionReport:
    topic: str
    partition: int
    directory: str
    segments: int = 0
    frames: int = 0  # intact frames
    records: int = 0  # records in intact frames
    bytes: int = 0  # bytes of intact frames
    start_offset: int | None = None
    end_offset: int | None = None  # one past the partition's last offset (intact, damaged or lost)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    #: the first damaged range: (segment path, position, first offset, reason), or None
    first_bad: tuple[str, int, int | None, str] | None = None
    first_bad_sealed: bool = False  # the first damaged range is in a sealed (not last) segment
    repaired: list[str] = dataclasses.field(default_factory=list)
    refused: list[str] = dataclasses.field(default_factory=list)
    damaged: list[DamagedRange] = dataclasses.field(default_factory=list)
    lost: list[LostRange] = dataclasses.field(default_factory=list)
    #: offsets held by intact frames, as merged [start, end) runs
    intact: list[list[int]] = dataclasses.field(default_factory=list)

    @property
    def has_problems(self) -> bool:
        return bool(self.problems)

    @property
    def name(self) -> str:
        return f"{self.topic}/{self.partition}"

    @property
    def damaged_offsets(self) -> int:
        return sum(d.offsets for d in self.damaged)

    @property
    def lost_offsets(self) -> int:
        return sum(max(g.end_offset - g.start_offset, 0) for g in self.lost)

    def _add_intact(self, start: int, end: int) -> None:
        if self.intact and self.intact[-1][1] == start:
            self.intact[-1][1] = end
        else:
            self.intact.append([start, end])


@dataclasses.dataclass
class VerifyReport:
    path: str
    live: bool = False  # a writer held the log while it was verified
    writer_pid: int | None = None
    clean_shutdown: bool = True
    partitions: list[PartitionReport] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)  # log and topic level
    notes: list[str] = dataclasses.field(default_factory=list)
    repaired: bool = False
    after_repair: "VerifyReport | None" = None
    seconds: float = 0.0

    def all_problems(self) -> list[Problem]:
        out = list(self.problems)
        for p in self.partitions:
            out.extend(p.problems)
        return out

    @property
    def damaged(self) -> bool:
        return bool(self.all_problems())

    @property
    def frames(self) -> int:
        return sum(p.frames for p in self.partitions)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)

    @property
    def damaged_ranges(self) -> list[DamagedRange]:
        return [d for p in self.partitions for d in p.damaged]

    @property
    def lost_ranges(self) -> list[LostRange]:
        return [g for p in self.partitions for g in p.lost]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["damaged"] = self.damaged  # True when any problem was found (the exit status is not 0)
        d["damaged_ranges"] = len(self.damaged_ranges)
        d["damaged_offsets"] = sum(r.offsets for r in self.damaged_ranges)
        d["lost_offsets"] = sum(max(g.end_offset - g.start_offset, 0) for g in self.lost_ranges)
        if self.after_repair is not None:
            d["after_repair"] = self.after_repair.to_dict()
        return d


class VerifyError(Exception):
    """verify could not run (not a log folder, locked for a repair, ...)."""


# ----------------------------------------------------------------------------- reading
class _Reader:
    """Reads a file through one reusable buffer of CHUNK bytes."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size
        self._buf = bytearray(CHUNK)
        self._view = memoryview(self._buf)
        self._start = 0
        self._len = 0

    def close(self) -> None:
        self._view.release()
        os.close(self.fd)

    def get(self, pos: int, n: int) -> memoryview:
        """Bytes [pos, pos + n) (n <= CHUNK); shorter at the end of the file."""
        lo = pos - self._start
        if lo >= 0 and lo + n <= self._len:  # the common case: inside the buffer
            return self._view[lo : lo + n]
        if pos >= self.size:
            return self._view[:0]
        self._start = pos
        self._len = os.preadv(self.fd, [self._buf], pos)
        return self._view[: n if n < self._len else self._len]

    def crc(self, pos: int, n: int, value: int = 0) -> int:
        while n > 0:
            step = min(n, CHUNK)
            chunk = self.get(pos, step)
            if len(chunk) < step:
                raise EOFError
            value = _core.crc32c(chunk, value)
            pos += step
            n -= step
        return value

    def all_zero(self, pos: int, end: int) -> int | None:
        """The first non-zero position in [pos, end), or None."""
        while pos < end:
            step = min(end - pos, CHUNK)
            chunk = self.get(pos, step)
            if not chunk:
                return None
            b = bytes(chunk)
            if b.count(0) != len(b):
                return pos + (len(b) - len(b.lstrip(b"\x00")))
            pos += len(b)
        return None


def _align8(n: int) -> int:
    return (n + 7) & ~7


_MAGIC_BYTES = struct.pack("<I", FRAME_MAGIC)
_NO_BOUND = 2**63 - 1  # no next segment: no offset bound


def _parse_header(r: _Reader, pos: int, limit: int):
    """FORMAT.md §2.3 checks 1-4 at ``pos`` (no offset, no CRC), as native
    ``check_header`` does. Returns (status, header tuple or None, frame_length, raw
    header bytes). status: "ok", "end" (zeros / no data), "truncated ...",
    "bad magic", "bad header: ..."."""
    available = limit - pos
    raw = bytes(r.get(pos, min(HEADER_BYTES, max(available, 0))))
    if len(raw) < HEADER_BYTES:
        return ("end" if not any(raw) else "truncated (a torn frame header)"), None, 0, raw
    if raw == _ZERO_HEADER:
        return "end", None, 0, raw
    h = _HEADER.unpack(raw)
    magic, crc, version, header_length, codec, flags, base, count, _sid, tmin, tmax, plen, poff, _delta = h
    if magic != FRAME_MAGIC:
        return "bad magic", h, 0, raw
    why = []
    if version not in FRAME_VERSIONS:
        why.append(f"version {version}")
    if header_length != HEADER_BYTES:
        why.append(f"header_length {header_length}")
    if poff < HEADER_BYTES or poff % 8:
        why.append(f"payload_offset {poff}")
    if plen > MAX_PAYLOAD:
        why.append(f"payload_length {plen}")
    if base < 0:
        why.append(f"base_offset {base}")
    if codec > 1:
        why.append(f"codec {codec}")
    if tmin > tmax:
        why.append(f"min_timestamp {tmin} > max_timestamp {tmax}")
    if version in FRAME_VERSIONS and count > _span(h):
        why.append(f"record_count {count} > the {_span(h)} offsets it spans")  # as native check_header
    elif version in FRAME_VERSIONS:  # empty and sparse frames (compaction, FORMAT.md §2.6)
        why.extend(_verify_frames.header_problems(version, flags, count, _span(h), plen))
    if version in FRAME_VERSIONS and base + _span(h) > 2**63 - 1:
        why.append(f"base_offset {base} + {_span(h)} offsets overflows")  # as native check_header
    if why:
        return "bad header: " + ", ".join(why), h, 0, raw
    length = _align8(poff + plen)
    if length > available:
        return f"truncated: the frame needs {length} bytes, {available} are left", h, length, raw
    return "ok", h, length, raw


def _crc_matches(r: _Reader, pos: int, h: tuple, raw: bytes) -> bool:
    try:
        value = r.crc(pos + h[12], h[11])
    except EOFError:
        return False
    return _core.crc32c(raw[8:], value) == h[1]


def _check_frame(r: _Reader, pos: int, expected_offset: int | None, limit: int):
    """FORMAT.md §2.3 at ``pos`` with ``limit - pos`` bytes available, CRC included.
    Returns (status, header tuple or None, frame_length). status: "ok", "end",
    "truncated ...", "bad magic", "bad header: ...", "offset mismatch: ...",
    "CRC32C mismatch"."""
    status, h, length, raw = _parse_header(r, pos, limit)
    if status != "ok":
        return status, h, length
    if expected_offset is not None and h[6] != expected_offset:
        return f"offset mismatch: base_offset {h[6]}, expected {expected_offset}", h, length
    if not _crc_matches(r, pos, h, raw):
        return "CRC32C mismatch", h, length
    block = _offset_block_problem(r, pos, h)
    if block:
        return block, h, length
    return "ok", h, length


def _offset_block_problem(r: _Reader, pos: int, h: tuple) -> str | None:
    """A sparse frame's offset block against FORMAT.md §2.6 (None: fine, or dense)."""
    if not h[5] & _verify_frames.FLAG_SPARSE:
        return None
    return _verify_frames.offset_block_problem(lambda at, n: bytes(r.get(at, n)), pos + h[12], h[7], _span(h))


def _successor_lines_up(r: _Reader, nxt: int, size: int, expected: int) -> bool:
    """FORMAT.md §2.5: the data ends at ``nxt``, or a structurally valid frame
    continuing the offsets (``expected``) starts there."""
    if nxt >= size:
        return True
    status, h, _length, _raw = _parse_header(r, nxt, size)
    return status == "end" or (status == "ok" and h[6] == expected)


def _magic_positions(r: _Reader, start: int, end: int) -> Iterator[int]:
    """8-aligned positions in [start, end - 64] holding the frame magic, in order
    (read through the reader's buffer: bounded memory)."""
    q = _align8(start)
    while q + HEADER_BYTES <= end:
        n = min(CHUNK, end - q)
        chunk = bytes(r.get(q, n))
        if not chunk:
            return
        i = chunk.find(_MAGIC_BYTES)
        while i >= 0:
            if i % 8 == 0 and q + i + HEADER_BYTES <= end:
                yield q + i
            i = chunk.find(_MAGIC_BYTES, i + 1)
        step = len(chunk) - len(chunk) % 8
        if step <= 0:
            return
        q += step


@dataclasses.dataclass
class _Resync:
    position: int | None = None  # the next intact frame, or None: none in the segment
    header: tuple | None = None
    length: int = 0
    # the first CRC-valid frame past the damage rejected only because its offsets
    # reach past the segment's end offset: (position, base_offset) (an overlap)
    overlap: tuple[int, int] | None = None


def _find_next_intact(r: _Reader, start: int, size: int, after_offset: int, bound: int,
                      published: int) -> _Resync:
    """FORMAT.md §2.5 step 2, independently of native/frame_resync.cpp: the first
    8-aligned position in [start, size) whose frame passes every check including
    the CRC, holds offsets in (after_offset, bound], and whose successor lines up
    (not checked when the frame reaches ``published``: frames past what readers
    may see can still be in flight)."""
    out = _Resync()
    bound = min(bound, published)
    # First a frame whose successor lines up; only when there is none, one that
    # reaches the published end (a stray copy of the last frame must not win).
    for second_pass in (False, True):
        if second_pass and published == _NO_BOUND:
            break
        for q in _magic_positions(r, start, size):
            status, h, length, raw = _parse_header(r, q, size)
            if status != "ok" or h[6] < after_offset:  # the damaged offset itself: an intact copy is as good
                continue
            nxt_off = h[6] + _span(h)
            if nxt_off > bound:
                if out.overlap is None and _crc_matches(r, q, h, raw):
                    out.overlap = (q, h[6])
                continue
            if not _crc_matches(r, q, h, raw) or _offset_block_problem(r, q, h):
                continue
            if not _successor_lines_up(r, q + length, size, nxt_off) and not (second_pass and nxt_off >= published):
                continue
            out.position, out.header, out.length = q, h, length
            return out
    return out


def _load_index(path: str, entry: int, fmt: str) -> tuple[list[tuple], str | None]:
    """The entries of an index file, and a problem with its size (or None)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], "missing"
    problem = None
    if len(data) % entry:
        problem = f"{len(data)} bytes: not a whole number of {entry}-byte entries"
        data = data[: len(data) - len(data) % entry]
    return list(struct.iter_unpack(fmt, data)), problem


def _read_checkpoint(path: str) -> tuple[tuple[int, int, int] | None, str | None]:
    """The best valid checkpoint slot (segment_base, position, next_offset) and a note."""
    try:
        with open(path, "rb") as f:
            data = f.read(2 * _SLOT.size)
    except FileNotFoundError:
        return None, None
    if not data:
        return None, None
    best = None
    for i in range(0, len(data) - _SLOT.size + 1, _SLOT.size):
        slot = data[i : i + _SLOT.size]
        magic, crc, seq, seg, pos, nxt = _SLOT.unpack(slot)
        if magic == CHECKPOINT_MAGIC and _core.crc32c(slot[8:]) == crc and (best is None or seq > best[0]):
            best = (seq, seg, pos, nxt)
    if best is None:
        return None, "recovery-checkpoint has no valid slot (the next unclean open CRC-checks every segment)"
    return best[1:], None


# ----------------------------------------------------------------------------- the lock
def _writer_pid(path: str) -> int | None:
    """The pid of a writer holding the log's lock (-1: held, pid unknown), or None.

    Read from /proc/locks, so that looking never takes the lock: even a shared
    flock for an instant would make a writer that opens at that moment fail."""
    lock = os.path.join(path, "LOCK")
    try:
        st = os.stat(lock)
    except FileNotFoundError:
        return None
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = None
    if lines is not None:
        want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
        for line in lines:
            parts = line.split()
            if "->" in parts:  # a waiter, not a holder
                continue
            if len(parts) < 6 or parts[1] != "FLOCK":
                continue
            try:
                major, minor, ino = parts[5].split(":")
                if (int(major, 16), int(minor, 16), int(ino)) == want:
                    return int(parts[4])
            except ValueError:
                continue
        return None
    # no /proc: probe with a non-blocking shared lock (a writer opening at this instant may be refused)
    fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _flock_holders(fd: int) -> list[int]:
    """The pids holding flock(2) locks on the file open as fd, from /proc/locks."""
    ino = os.fstat(fd).st_ino
    pids: list[int] = []
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
                    continue
                if fields[5].rsplit(":", 1)[-1] == str(ino) and fields[4].isdigit() and int(fields[4]) not in pids:
                    pids.append(int(fields[4]))
    except OSError:
        pass
    return pids


class _WriterLock:
    """The writer lock (FORMAT.md §1), held by verify while it repairs."""

    def __init__(self, path: str):
        self.fd = os.open(os.path.join(path, "LOCK"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = _flock_holders(self.fd)
            if not holders:  # /proc/locks unreadable: the pid an exclusive writer wrote
                text = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
                holders = [text] if text.isdigit() else []
            os.close(self.fd)
            raise VerifyError(f"a writer holds the log (pid {', '.join(map(str, holders)) or 'unknown'}): "
                              f"close every read-write handle before --repair") from None
        os.ftruncate(self.fd, 0)  # as a writer does (FORMAT.md §1): a refused writer names us
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the flock
            self.fd = -1


# ----------------------------------------------------------------------------- progress
class _Progress:
    def __init__(self, total: int, stream: TextIO | None, mode: str):
        tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        if mode == "always":
            self.on = stream is not None
        elif mode == "never" or stream is None:
            self.on = False
        else:  # auto: a terminal and a log worth waiting for
            self.on = tty and total >= 64 << 20
        self.tty = tty
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.t0 = time.monotonic()
        self.last = 0.0
        self.last_pct = -1

    def add(self, n: int) -> None:
        self.done += n
        if not self.on:
            return
        now = time.monotonic()
        pct = min(100, self.done * 100 // self.total)
        if self.tty:
            if now - self.last < 0.1 and pct < 100:
                return
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9) / 2**20
            width = 30
            fill = width * pct // 100
            self.stream.write(f"\rverify [{'#' * fill}{'.' * (width - fill)}] {pct:3d}% "
                              f"{self.done / 2**20:,.0f}/{self.total / 2**20:,.0f} MiB {rate:,.0f} MiB/s")
        else:
            if pct // 10 == self.last_pct // 10:
                return
            self.stream.write(f"verify: {pct}% ({self.done / 2**20:,.0f} of {self.total / 2**20:,.0f} MiB)\n")
        self.last_pct = pct
        self.stream.flush()

    def finish(self) -> None:
        if self.on and self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ----------------------------------------------------------------------------- the check
def _partition_dirs(topic_dir: str) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir(topic_dir):
        full = os.path.join(topic_dir, name)
        if name.isdigit() and str(int(name)) == name and os.path.isdir(full):
            out.append((int(name), full))
    return sorted(out)


def _segments(directory: str) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir(directory):
        m = _SEGMENT_NAME.match(name)
        if m:
            out.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(out)


def _total_bytes(path: str) -> int:
    total = 0
    topics = os.path.join(path, "topics")
    for root, _dirs, files in os.walk(topics):
        for f in files:
            if _SEGMENT_NAME.match(f):
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
    return total


def _check_indexes(rep: PartitionReport, seg_path: str, base: int, frames_at: Callable[[int], tuple | None],
                   walked_end: int, running_max_at: Callable[[int], int | None], strict_tail: bool,
                   segment_max: int | None = None, live: bool = False) -> None:
    """Both indexes of one segment against the walked frames. ``frames_at(pos)``:
    (relative_offset,) of the frame starting at pos or None; entries at or past
    ``walked_end`` are not checked (the walk stopped before them)."""
    stem = seg_path[: -len(".log")]
    for ext, entry, fmt in ((".index", 8, "<II"), (".timeindex", 16, "<qII")):
        path = stem + ext
        entries, size_problem = _load_index(path, entry, fmt)
        if size_problem == "missing":
            if live:  # a writer is running: retention may be deleting this segment right now
                rep.notes.append(f"{os.path.basename(path)} is missing (deleted while verifying?)")
            elif _verify_frames.compaction_interrupted(seg_path):  # the swap unlinks them first: rebuilt at open
                rep.notes.append(f"{os.path.basename(path)} is missing: a compaction of the segment was "
                                 f"interrupted (the next writer rebuilds it)")
            elif walked_end > 0 and strict_tail:
                rep.problems.append(Problem("index", path, None, "missing (the next writer rebuilds it)",
                                            topic=rep.topic, partition=rep.partition))
            continue
        if size_problem:
            rep.problems.append(Problem("index", path, None, size_problem, topic=rep.topic, partition=rep.partition))
        prev = None
        for i, e in enumerate(entries):
            if ext == ".index":
                rel, pos = e
                ts = None
            else:
                ts, rel, pos = e
            where = f"entry {i} (relative offset {rel}, position {pos}{'' if ts is None else f', timestamp {ts}'})"
            if prev is not None and not (pos > prev[0] and rel > prev[1] and (ts is None or ts > prev[2])):
                rep.problems.append(Problem("index", path, i * entry, f"{where}: entries do not strictly increase",
                                            topic=rep.topic, partition=rep.partition))
                break
            prev = (pos, rel, ts)
            if pos >= walked_end:
                if strict_tail:
                    rep.problems.append(Problem("index", path, i * entry, f"{where}: points past the last good frame",
                                                topic=rep.topic, partition=rep.partition))
                break
            frame = frames_at(pos)
            if frame is None:
                rep.problems.append(Problem("index", path, i * entry, f"{where}: not a frame start",
                                            topic=rep.topic, partition=rep.partition))
                break
            if frame[0] != rel:
                rep.problems.append(Problem("index", path, i * entry,
                                            f"{where}: the frame there has relative offset {frame[0]}",
                                            topic=rep.topic, partition=rep.partition))
                break
            if ts is not None:
                want = running_max_at(pos)
                if want is not None and ts < want:
                    rep.problems.append(Problem(
                        "index", path, i * entry,
                        f"{where}: the running max timestamp there is {want} (time reads could skip frames)",
                        topic=rep.topic, partition=rep.partition))
                    break
                if want is not None and ts > want:
                    # FORMAT.md §4 says it equals the running max; a larger value only makes a
                    # lookup start earlier than it needs to.
                    rep.notes.append(f"{os.path.basename(path)} {where}: above the running max timestamp {want} "
                                     f"(harmless)")
        else:
            if ext == ".index" and walked_end > 0 and strict_tail and (not entries or entries[0][1] != 0):
                rep.problems.append(Problem("index", path, 0, "no entry for the first frame (position 0)",
                                            topic=rep.topic, partition=rep.partition))
            if ext == ".timeindex" and strict_tail and walked_end > 0 and not entries:
                rep.problems.append(Problem("index", path, 0, "empty, for a segment that holds frames",
                                            topic=rep.topic, partition=rep.partition))
            elif ext == ".timeindex" and strict_tail and segment_max is not None and segment_max > -(2**63):
                # A sealed segment's time index ends with its max timestamp (FORMAT.md §4: the seal
                # entry). Reads walk past a missing one, so it is a note, not damage.
                last_ts = entries[-1][0] if entries else None
                if last_ts is None or last_ts < segment_max:
                    rep.notes.append(f"{os.path.basename(path)}: no seal entry (the last time entry holds "
                                     f"{last_ts}, the segment's max timestamp is {segment_max})")


def _read_state(path: str) -> tuple[int, int] | None:
    """(visible_end, start_offset) of a partition's state file when its magic and version are right."""
    try:
        with open(path, "rb") as f:
            data = f.read(24)
    except OSError:
        return None
    if len(data) < 24:
        return None
    magic, version, visible_end, start = struct.unpack("<IIqq", data)
    if magic != STATE_MAGIC or version not in (1, 2):  # 2: with the coordination block (FORMAT.md §7.2)
        return None
    return visible_end, start


def _verify_partition(rep: PartitionReport, progress: _Progress, live_end: int | None, clean: bool,
                      durability: str | None = None) -> None:
    """Walks every frame of the partition (FORMAT.md §2.3, CRC included); damage
    is located and stepped over as FORMAT.md §2.5 says, gaps between segments
    are lost offsets."""
    segs = _segments(rep.directory)
    rep.segments = len(segs)
    for name in _verify_frames.cleaned_leftovers(rep.directory):
        rep.notes.append(f"{name}: left by an interrupted compaction; ignored (the next writer removes it)")
    if not segs:
        rep.notes.append("no segment files (the next writer creates one)")
        return
    rep.start_offset = segs[0][0]
    live = live_end is not None
    cp, note = _read_checkpoint(os.path.join(rep.directory, "recovery-checkpoint"))
    if note:
        rep.notes.append(note)
    # What the last writer published (FORMAT.md §8.1's qualification).
    published = None
    state = None if live else _read_state(os.path.join(rep.directory, "state"))
    if state is not None:
        visible_end, start = state
        bases = [b for b, _ in segs]
        if 0 <= start <= visible_end and start in bases and visible_end - bases[-1] <= 2**32 - 1:
            published = visible_end
    # The offset the last segment must reach, and the durable point (damage past
    # it after a crash is a torn write, never acknowledged: FORMAT.md §8.2).
    if live:
        known_end = live_end
        keep_below = _NO_BOUND
    else:
        known_end = max([x for x in (cp[2] if cp else None, published) if x is not None], default=None)
        durable = cp[2] if cp else 0
        if published is not None and durability == "fsync":
            durable = max(durable, published)
        keep_below = _NO_BOUND if clean and cp is None else durable
    acknowledged = _read_acknowledged(rep.directory)

    def add_damage(d: DamagedRange) -> None:
        rep.damaged.append(d)
        rep.problems.append(Problem("frame", d.segment, d.position, d.reason, offset=d.start_offset,
                                    topic=rep.topic, partition=rep.partition, end_offset=d.end_offset))
        if rep.first_bad is None:
            rep.first_bad = (d.segment, d.position, d.start_offset, d.reason)
            rep.first_bad_sealed = d.sealed

    def add_lost(path: str, pos: int, start: int, end: int, reason: str) -> None:
        if end <= start:
            return
        ack = _covered(acknowledged, start, end)
        rep.lost.append(LostRange(rep.topic, rep.partition, path, pos, start, end, reason, ack))
        if not ack:
            rep.problems.append(Problem("lost", path, pos, reason + " (`verify --repair` acknowledges it)",
                                        offset=start, topic=rep.topic, partition=rep.partition, end_offset=end))

    offset = rep.start_offset
    for k, (base, path) in enumerate(segs):
        last = k == len(segs) - 1
        bound = _NO_BOUND if last else segs[k + 1][0]
        if base < offset:
            # Only possible for a segment that is not a successor at all (its base is
            # below what the previous one held): the bound stops every walk at it.
            rep.problems.append(Problem("frame", path, 0, f"segment base {base} is below the previous segment's "
                                        f"end offset {offset}: the segments overlap", offset=base,
                                        topic=rep.topic, partition=rep.partition))
        offset = base
        try:
            r = _Reader(path)
        except FileNotFoundError:
            if live:
                rep.notes.append(f"{os.path.basename(path)} was deleted (retention) while verifying")
                rep.start_offset = None
                continue
            raise
        try:
            offset = _walk_segment(rep, r, path, base, bound, last, live, live_end, clean, known_end, keep_below,
                                   progress, add_damage, add_lost)
        finally:
            r.close()
    rep.end_offset = offset


def _walk_segment(rep, r: _Reader, path: str, base: int, bound: int, last: bool, live: bool,
                  live_end: int | None, clean: bool, known_end: int | None, keep_below: int,
                  progress: _Progress, add_damage, add_lost) -> int:
    """One segment; returns the offset its frames and damaged ranges reach."""
    # Frame starts (position -> relative offset, running max timestamp), kept
    # only where an index entry points: memory bounded by the index size.
    idx_positions = _index_positions(path)
    hits: dict[int, tuple[int, int | None]] = {}
    size = r.size
    name = os.path.basename(path)
    pos, offset = 0, base
    running_max = None
    seg_damaged = False
    # The end the last segment's data must reach (readers' visible end), and the
    # end offset of damage nothing follows.
    seg_end = bound if not last else (known_end if known_end is not None else _NO_BOUND)
    published = known_end if known_end is not None else _NO_BOUND
    while True:
        if live and last and offset >= live_end:
            break  # past the writer's published end: in progress, not ours to judge
        status, h, length = _check_frame(r, pos, offset, size)
        if status == "ok" and h[6] + _span(h) > bound:
            status = (f"the frame holds offsets {h[6]}..{h[6] + _span(h) - 1}, past the next segment's base {bound} "
                      f"(the segments overlap)")
        if status == "ok":
            count, span, tmax = h[7], _span(h), h[10]
            poff, plen = h[12], h[11]
            head_pad, tail_pad = poff - HEADER_BYTES, length - poff - plen
            if (head_pad and r.get(pos + HEADER_BYTES, head_pad) != _ZERO_HEADER[:head_pad]) or (
                    tail_pad and r.get(pos + poff + plen, tail_pad) != _ZERO_HEADER[:tail_pad]):
                rep.problems.append(Problem(
                    "padding", path, pos, "non-zero padding bytes (not covered by the CRC: the frame's "
                    "records are intact)", offset=offset, topic=rep.topic, partition=rep.partition))
            running_max = tmax if running_max is None else max(running_max, tmax)
            if pos in idx_positions:
                hits[pos] = (offset - base, None if seg_damaged else running_max)
            rep.frames += 1
            rep.records += count
            rep.bytes += length
            rep._add_intact(offset, offset + span)
            progress.add(length)
            offset += span
            pos += length
            continue
        if status == "end":
            nz = r.all_zero(pos, size)
            if nz is None:
                # The data ends here (end of file, or zeros to it).
                if offset >= seg_end or (live and last):
                    if pos < size and not last:
                        rep.notes.append(f"{name}: {size - pos} zero bytes after the last frame of a sealed "
                                         f"segment (the next writer trims them)")
                    break
                if pos < size and (not last or clean):
                    # zeros where frames should be: sealed segments and cleanly closed ones are trimmed
                    d = _damage_here(rep, r, path, pos, offset, "zeros where frames should be", size, bound,
                                     seg_end, published, last, False, add_damage)
                    seg_damaged = True
                    offset = d.end_offset
                    break
                if not last:
                    reason = (f"the segment's frames end at offset {offset}, the next segment starts at {bound}: "
                              f"offsets {offset}..{bound - 1} are missing")
                elif known_end is not None:
                    reason = (f"the log ends at offset {offset}, before its recovery checkpoint / published end "
                              f"({known_end}): offsets {offset}..{known_end - 1} are missing")
                else:
                    break
                add_lost(path, pos, offset, seg_end, reason)
                offset = max(offset, seg_end)
                break
            status = f"zeros at position {pos}, then non-zero bytes at {nz}: a frame was zeroed, or data follows a hole"
        # Damage: locate it (FORMAT.md §2.5) and go on after it.
        torn = last and not live and offset >= keep_below
        if torn:
            status += " (a torn write of a crashed writer: never acknowledged)"
        if pos in idx_positions and h is not None and length:
            hits[pos] = (h[6] - base, None)  # a frame start, but its header is suspect
        seg_damaged = True
        d = _damage_here(rep, r, path, pos, offset, status, size, bound, seg_end, published, last, torn, add_damage)
        offset = d.end_offset
        if d.resync_position is None:
            pos = size
            break
        progress.add(d.resync_position - pos)
        pos = d.resync_position
    walked_end = pos
    progress.add(max(0, size - walked_end))
    strict = (clean or not last) and not seg_damaged  # an unclean active segment's indexes lag
    if live and not os.path.exists(path):
        # retention deleted it while we read it (our descriptor kept it readable)
        rep.notes.append(f"{name} was deleted (retention) while verifying")
    elif not live or not last:
        _check_indexes(rep, path, base, hits.get, walked_end if not seg_damaged else size,
                       lambda p: hits[p][1] if p in hits else None, strict_tail=strict,
                       segment_max=running_max, live=live)
    return offset


def _damage_here(rep, r: _Reader, path: str, pos: int, offset: int, reason: str, size: int, bound: int,
                 seg_end: int, published: int, last: bool, torn: bool, add_damage) -> DamagedRange:
    """The damaged range that starts at ``pos`` (offset ``offset``), FORMAT.md §2.5."""
    status, h, length, _raw = _parse_header(r, pos, size)
    # 1. An intact header holding the expected offsets, whose successor lines up:
    #    only this frame is damaged (its payload or CRC).
    #    The header failed its CRC: the last frame of the data is believed only
    #    when it ends at the offset the segment must reach (when known).
    if status == "ok" and h[6] == offset and h[6] + _span(h) <= min(bound, published):
        nxt, nxt_off = pos + length, h[6] + _span(h)
        st2, h2 = ("end", None) if nxt >= size else _parse_header(r, nxt, size)[:2]
        if st2 == "end":
            end_if_last = seg_end if seg_end != _NO_BOUND else published
            lines_up = end_if_last == _NO_BOUND or nxt_off == end_if_last
        else:
            lines_up = st2 == "ok" and h2[6] == nxt_off
        if lines_up:
            # (when nxt is the end of the file, the walk goes on there: offsets the
            # segment should still hold are lost)
            d = DamagedRange(rep.topic, rep.partition, path, pos, length, offset, nxt_off, reason, nxt,
                             not last, torn)
            add_damage(d)
            return d
    # 2. The next intact frame at an 8-aligned position.
    hit = _find_next_intact(r, pos + 8, size, offset, bound, published)
    if hit.position is not None:
        d = DamagedRange(rep.topic, rep.partition, path, pos, hit.position - pos, offset, hit.header[6], reason,
                         hit.position, not last, torn)
    else:
        end = seg_end if seg_end != _NO_BOUND else offset
        if last and not torn:
            end = max(end, offset + 1)  # a damaged tail holds at least one offset (FORMAT.md §8.2 step 8)
        end = max(end, offset)
        if hit.overlap is not None:
            reason += (f"; the bytes from position {hit.overlap[0]} on hold intact frames with offsets from "
                       f"{hit.overlap[1]}, which the next segment holds (an interrupted `verify --repair`: "
                       f"run it again)")
        d = DamagedRange(rep.topic, rep.partition, path, pos, size - pos, offset, end, reason, None, not last, torn)
    add_damage(d)
    return d


def _size_or_zero(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _index_positions(seg_path: str) -> set[int]:
    stem = seg_path[: -len(".log")]
    out: set[int] = set()
    for ext, entry, pos_at in ((".index", 8, 4), (".timeindex", 16, 12)):
        try:
            with open(stem + ext, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        n = len(data) // entry
        out.update(struct.unpack_from("<I", data, i * entry + pos_at)[0] for i in range(n))
    return out


def _iter_topics(path: str, report: VerifyReport) -> Iterator[tuple[str, str, int | None, str | None]]:
    topics_dir = os.path.join(path, "topics")
    for name in sorted(os.listdir(topics_dir)):
        directory = os.path.join(topics_dir, name)
        if not os.path.isdir(directory):
            report.notes.append(f"topics/{name} is not a folder; ignored")
            continue
        meta_path = os.path.join(directory, "topic.json")
        if not os.path.exists(meta_path):
            report.notes.append(f"topic folder {name!r} has no topic.json (an interrupted create_topic); ignored")
            continue
        partitions = None
        durability = None
        try:
            with open(meta_path, "rb") as f:
                meta = json.loads(f.read())
            if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
                raise ValueError("not an object with a 'config' object")
            if meta.get("format_version") not in TOPIC_FORMAT_VERSIONS or type(meta.get("format_version")) is not int:
                raise ValueError(f"format_version {meta.get('format_version')!r}, this tidelog reads "
                                 f"{' and '.join(map(str, TOPIC_FORMAT_VERSIONS))}")
            partitions = meta["config"].get("partitions")
            durability = meta["config"].get("durability", "fsync")
            if type(partitions) is not int or not 1 <= partitions <= 100_000:
                raise ValueError(f"partitions {partitions!r}")
            if meta["config"].get("name", name) != name:
                raise ValueError(f"config name {meta['config'].get('name')!r} is not the folder's name")
            import base64

            import pyarrow as pa

            pa.ipc.read_schema(pa.py_buffer(base64.b64decode(meta["schema"], validate=True)))
        except Exception as e:  # noqa: BLE001 - any failure is metadata damage
            report.problems.append(Problem("metadata", meta_path, None, f"unreadable topic metadata: {e}",
                                           topic=name))
            partitions = None
        yield name, directory, partitions, durability


def log_folder_problem(path: str) -> str | None:
    """Why ``path`` is not a tidelog log folder ("does not exist", "is a file",
    "is not a tidelog log folder"), or None when it is one."""
    if not os.path.exists(path):
        return f"{path} does not exist"
    if not os.path.isdir(path):
        return f"{path} is a file, not a log folder"
    if not os.path.isdir(os.path.join(path, "topics")):
        return f"{path} is not a tidelog log folder (it has no topics/ folder)"
    return None


def verify(path: str | os.PathLike, *, repair: bool = False, progress: str = "auto",
           progress_stream: TextIO | None = None) -> VerifyReport:
    """Checks the log folder at ``path`` (see the module docstring); with
    ``repair=True`` also repairs what can be repaired and verifies again.
    Raises ``VerifyError`` when it cannot run."""
    path = os.path.abspath(os.fspath(path))
    problem = log_folder_problem(path)
    if problem:
        raise VerifyError(problem)
    t0 = time.monotonic()
    lock = None
    if repair:
        lock = _WriterLock(path)  # raises VerifyError while a writer runs
    try:
        report = _check(path, progress, progress_stream, lock_held=lock is not None)
        if repair and report.damaged:
            work = report
            if not report.clean_shutdown:
                # A crashed log: save its torn tails (never acknowledged; the writer's
                # recovery would cut them without a copy), then let a writer open
                # recover it as the next writer would, and repair what is left on the
                # cleanly closed log (so that no gap the repair leaves lies past the
                # durable point of a crashed writer, where recovery cuts).
                for rep in report.partitions:
                    for d in sorted((d for d in rep.damaged if d.torn), key=lambda d: d.position, reverse=True):
                        _move_damage_aside(rep, d)
                lock.release()
                lock = None
                _writer_cycle(path, report, "writer open before the repair (crash recovery)")
                lock = _WriterLock(path)
                work = _check(path, "never", None, lock_held=True)
                for rep, fresh in _pair(report, work):
                    fresh.repaired[:0] = rep.repaired
            _repair(work)
            if work is not report:
                for rep, fresh in _pair(report, work):
                    rep.repaired, rep.refused = fresh.repaired, fresh.refused
            report.repaired = True
            lock.release()
            lock = None
            # One writer open rebuilds deleted indexes and republishes the state.
            _writer_cycle(path, report, "writer open after the repair")
            report.after_repair = _check(path, "never", None, lock_held=False)
    finally:
        if lock is not None:
            lock.release()
    report.seconds = time.monotonic() - t0
    return report


def _pair(a: VerifyReport, b: VerifyReport) -> Iterator[tuple[PartitionReport, PartitionReport]]:
    by_name = {(p.topic, p.partition): p for p in b.partitions}
    for p in a.partitions:
        q = by_name.get((p.topic, p.partition))
        if q is not None:
            yield p, q


def _writer_cycle(path: str, report: VerifyReport, label: str) -> None:
    """Opens the log as a writer once (recovery, index rebuilds, state) and closes it."""
    from ._log import Log

    try:
        log = Log(path)
    except Exception as e:  # noqa: BLE001 - reported, the re-check says what is left
        report.notes.append(f"{label}: the log did not open: {type(e).__name__}: {e}")
        return
    try:
        for ev in log.recovery_report:
            report.notes.append(f"{label}: {ev['topic']}/{ev['partition']} {os.path.basename(ev['file'])}: "
                                f"{ev.get('kind', 'cut')}: {ev['reason']}")
    finally:
        log.close()


def _check(path: str, progress_mode: str, progress_stream: TextIO | None, lock_held: bool) -> VerifyReport:
    report = VerifyReport(path)
    pid = None if lock_held else _writer_pid(path)
    report.live = pid is not None
    report.writer_pid = pid if pid and pid > 0 else None
    report.clean_shutdown = os.path.exists(os.path.join(path, "clean-shutdown")) or report.live
    if report.live:
        report.notes.append(f"a writer (pid {pid if pid and pid > 0 else 'unknown'}) has the log open: each "
                            f"partition's active segment is checked up to its published end")
    elif not report.clean_shutdown:
        report.notes.append("the last writer did not close the log cleanly: the next writer open runs recovery")
    progress = _Progress(_total_bytes(path), progress_stream, progress_mode)
    for name, directory, partitions, durability in _iter_topics(path, report):
        found = _partition_dirs(directory)
        numbers = {n for n, _ in found}
        if partitions is not None:
            for n in range(partitions):
                if n not in numbers:
                    report.problems.append(Problem("metadata", os.path.join(directory, str(n)), None,
                                                   "partition folder missing (the next writer creates it empty)",
                                                   topic=name, partition=n))
            for n in sorted(numbers - set(range(partitions))):
                report.notes.append(f"{name}/{n}: a partition folder beyond the topic's {partitions} partitions")
        for n, pdir in found:
            rep = PartitionReport(name, n, pdir)
            live_end = None
            if report.live:
                state = _read_state(os.path.join(pdir, "state"))
                live_end = state[0] if state is not None else None
                if live_end is None:
                    live_end = -1  # nothing published yet: check nothing of the active segment
            _verify_partition(rep, progress, live_end, report.clean_shutdown, durability)
            report.partitions.append(rep)
    progress.finish()
    return report


# ----------------------------------------------------------------------------- repair
def _same_bytes(path: str, src: str, start: int, end: int) -> bool:
    """``path`` holds exactly src[start:end]."""
    try:
        if os.path.getsize(path) != end - start:
            return False
        with open(path, "rb") as a, open(src, "rb") as b:
            b.seek(start)
            while True:
                x = a.read(CHUNK)
                if not x:
                    return True
                if b.read(len(x)) != x:
                    return False
    except OSError:
        return False


def _copy_range(src: str, start: int, end: int, dest: str, exclusive: bool) -> None:
    """Writes src[start:end] to ``dest`` and fsyncs it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(dest, flags, 0o644)
    try:
        with open(src, "rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(errno.EIO, f"{src} ended at {end - left} while copying up to {end}")
                os.write(fd, chunk)
                left -= len(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_damaged(segment: str, start: int, end: int) -> tuple[str, bool]:
    """Saves segment[start:end] to ``<segment>.damaged-<start>`` (fsynced). A side
    file by that name holding the same bytes already (a repair run again after an
    interruption) is kept; another one gets ``.1``, ``.2``, ... Returns (its path,
    whether it was written now)."""
    base = side_file_name(segment, start, unique=False)
    name, n = base, 0
    while os.path.exists(name):
        if _same_bytes(name, segment, start, end):
            return name, False
        n += 1
        name = f"{base}.{n}"
    _copy_range(segment, start, end, name, exclusive=True)
    return name, True


def _truncate(segment: str, position: int) -> None:
    with open(segment, "r+b") as f:
        f.truncate(position)
        f.flush()
        os.fsync(f.fileno())


def _frame_base_at(segment: str, position: int) -> int | None:
    """The base offset of a structurally valid frame at ``position``, or None."""
    r = _Reader(segment)
    try:
        status, h, _length, _raw = _parse_header(r, position, r.size)
        return h[6] if status == "ok" else None
    finally:
        r.close()


def _drop_indexes(segment: str) -> list[str]:
    stem = segment[: -len(".log")]
    gone = []
    for ext in (".index", ".timeindex"):
        try:
            os.remove(stem + ext)
            gone.append(stem + ext)
        except FileNotFoundError:
            pass
    return gone


def _zero_padding(segment: str, position: int) -> None:
    """Zeros the padding of the frame at ``position`` (bytes the CRC does not cover)."""
    with open(segment, "r+b") as f:
        f.seek(position)
        h = _HEADER.unpack(f.read(HEADER_BYTES))
        plen, poff = h[11], h[12]
        f.seek(position + HEADER_BYTES)
        f.write(bytes(poff - HEADER_BYTES))
        f.seek(position + poff + plen)
        f.write(bytes(_align8(poff + plen) - poff - plen))
        f.flush()
        os.fsync(f.fileno())


def _move_damage_aside(rep: PartitionReport, d: DamagedRange) -> None:
    """One damaged range of a segment (FORMAT.md §2.5): its bytes go to a side
    file; the intact frames after it (up to the file's current end: later damage
    was handled first) go to a new segment named by their first offset; the
    segment is truncated at the damage. Each step is durable before the next, so
    an interruption leaves a state that verify reports and a re-run finishes."""
    seg = d.segment
    directory = os.path.dirname(seg)
    size = os.path.getsize(seg)
    if d.position >= size:
        return  # moved aside already
    resync = d.resync_position
    if resync is not None and (resync >= size or _frame_base_at(seg, resync) != d.end_offset):
        resync = None  # nothing intact follows (zeros after a damaged last frame)
    target = os.path.join(directory, "%020d.log" % d.end_offset) if resync is not None else None
    if target is not None and os.path.exists(target):
        rep.refused.append(f"damage at {os.path.basename(seg)} position {d.position}: the frames after it would "
                           f"go to {os.path.basename(target)}, which exists; not repaired")
        return
    _drop_indexes(seg)  # derived: the next writer rebuilds them
    side, written = _save_damaged(seg, d.position, resync if resync is not None else size)
    saved = (f"{(resync if resync is not None else size) - d.position} bytes saved to {os.path.basename(side)}"
             if written else f"bytes already saved in {os.path.basename(side)}")
    what = (f"offsets {d.start_offset}..{d.end_offset - 1}" if d.end_offset > d.start_offset else "no offsets")
    if target is not None:
        # 1. the intact frames after the damage into a new segment (built under a
        #    name tidelog ignores, fsynced, renamed into place, folder fsynced)
        _drop_indexes(target)
        tmp = target + ".tmp"
        _copy_range(seg, resync, size, tmp, exclusive=False)
        os.rename(tmp, target)
        _fsync_dir(directory)
        # 2. then the original is cut at the damage (a crash before this leaves the
        #    frames in both files: verify reports the old copy as damage past the new
        #    segment's base, and a re-run moves it aside)
        _truncate(seg, d.position)
        rep.repaired.append(f"damage at {os.path.basename(seg)} position {d.position} ({what}; {d.reason}): "
                            f"{saved}; the intact frames after it ({size - resync} bytes, from offset "
                            f"{d.end_offset}) moved to the new segment {os.path.basename(target)}; "
                            f"{os.path.basename(seg)} truncated at {d.position}")
    else:
        _truncate(seg, d.position)
        rep.repaired.append(f"damaged tail of {os.path.basename(seg)} at position {d.position} ({what}; "
                            f"{d.reason}): {saved}; the segment truncated at {d.position}")
    _fsync_dir(directory)


def _acknowledge(rep: PartitionReport, ranges: list[tuple[int, int, str]]) -> None:
    """Records offsets that are gone for good in ``lost-offsets.json`` (written
    atomically), so that verify reports them as acknowledged gaps."""
    ranges = [r for r in ranges if r[1] > r[0]]
    if not ranges:
        return
    known = _read_acknowledged(rep.directory)
    added = []
    for start, end, reason in ranges:
        if not _covered(known, start, end):
            entry = {"start_offset": start, "end_offset": end, "reason": reason,
                     "acknowledged": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            known.append(entry)
            added.append(entry)
    if not added:
        return
    path = os.path.join(rep.directory, ACK_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"version": 1, "ranges": sorted(known, key=lambda r: r["start_offset"])}, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    _fsync_dir(rep.directory)
    for e in added:
        rep.repaired.append(f"offsets {e['start_offset']}..{e['end_offset'] - 1} recorded as lost in {ACK_FILE}")


def _repair(report: VerifyReport) -> None:
    for p in report.problems:
        if p.kind == "metadata":
            report.notes.append(f"not repaired: {p.file}: {p.reason}")
    for rep in report.partitions:
        if not rep.problems:
            continue
        # Later damage first: each range's intact frames then run to the file's end.
        for d in sorted(rep.damaged, key=lambda d: (d.segment, d.position), reverse=True):
            if os.path.exists(d.segment):
                _move_damage_aside(rep, d)
        done = {d.position for d in rep.damaged}
        if not any(r.startswith("damage at") and "not repaired" in r for r in rep.refused):
            _acknowledge(rep, [(d.start_offset, d.end_offset, d.reason) for d in rep.damaged if not d.torn] +
                         [(g.start_offset, g.end_offset, g.reason) for g in rep.lost])
        for prob in rep.problems:
            if prob.kind == "padding" and os.path.exists(prob.file) and prob.position not in done:
                _zero_padding(prob.file, prob.position)
                rep.repaired.append(f"zeroed the padding of the frame at position {prob.position} of "
                                    f"{os.path.basename(prob.file)}")
            if prob.kind == "index" and os.path.exists(prob.file):
                seg = re.sub(r"\.(index|timeindex)$", ".log", prob.file)
                for gone in _drop_indexes(seg):
                    rep.repaired.append(f"deleted {os.path.basename(gone)} (rebuilt at the next open)")
        _fsync_dir(rep.directory)


# ----------------------------------------------------------------------------- output
def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def format_report(report: VerifyReport) -> str:
    lines = [f"tidelog verify {report.path}"]
    for note in report.notes:
        lines.append(f"  note: {note}")
    for p in report.problems:
        lines.append(f"  DAMAGE {p}")
    header = f"  {'partition':<28} {'segments':>8} {'frames':>10} {'records':>14} {'bytes':>12}  {'offsets':<24} status"
    lines.append(header)
    for rep in report.partitions:
        offsets = (f"[{rep.start_offset}, {rep.end_offset})" if rep.start_offset is not None
                   and rep.end_offset is not None else "-")
        if rep.first_bad is not None:
            status = (f"DAMAGED: first bad frame at {os.path.basename(rep.first_bad[0])} position {rep.first_bad[1]}; "
                      f"{len(rep.damaged)} damaged range(s), {rep.damaged_offsets:,} offset(s)")
        elif any(p.kind == "lost" for p in rep.problems):
            status = f"LOST OFFSETS: {rep.lost_offsets:,} offset(s) missing"
        elif rep.problems:
            status = "DAMAGED (indexes/padding/checkpoint)"
        elif rep.lost:
            status = f"ok ({rep.lost_offsets:,} offset(s) lost earlier, acknowledged)"
        else:
            status = "ok"
        lines.append(f"  {rep.name:<28} {rep.segments:>8} {rep.frames:>10,} {rep.records:>14,} "
                     f"{_fmt_bytes(rep.bytes):>12}  {offsets:<24} {status}")
        for p in rep.problems:
            lines.append(f"      {p}")
        for g in rep.lost:
            if g.acknowledged:
                lines.append(f"      lost (acknowledged): {os.path.basename(g.segment)} position {g.position}: "
                             f"offsets {g.start_offset}..{g.end_offset - 1}")
        for n in rep.notes:
            lines.append(f"      note: {n}")
        for r in rep.repaired:
            lines.append(f"      repaired: {r}")
        for r in rep.refused:
            lines.append(f"      NOT REPAIRED: {r}")
    n_bad = sum(1 for r in report.partitions if r.problems) + (1 if report.problems else 0)
    summary = (f"  {len(report.partitions)} partitions, {report.frames:,} frames, {_fmt_bytes(report.bytes)} "
               f"checked in {report.seconds:.2f} s: ")
    summary += "no damage" if not report.damaged else f"DAMAGE in {n_bad} place(s), {len(report.all_problems())} problem(s)"
    ranges = report.damaged_ranges
    if ranges:
        summary += (f"; {len(ranges)} damaged range(s): {sum(d.bytes for d in ranges):,} bytes, "
                    f"{sum(d.offsets for d in ranges):,} offsets")
    lost = report.lost_ranges
    if lost:
        summary += (f"; {sum(g.end_offset - g.start_offset for g in lost):,} lost offsets "
                    f"({sum(g.end_offset - g.start_offset for g in lost if g.acknowledged):,} acknowledged)")
    lines.append(summary)
    if report.after_repair is not None:
        after = report.after_repair
        lines.append("  after repair: " + ("no damage" if not after.damaged else
                                           f"{len(after.all_problems())} problem(s) remain:"))
        for p in after.all_problems():
            lines.append(f"      {p}")
    return "\n".join(lines)


def exit_code(report: VerifyReport) -> int:
    if not report.damaged:
        return EXIT_CLEAN
    if report.after_repair is not None and not report.after_repair.damaged:
        return EXIT_REPAIRED
    return EXIT_DAMAGED


def main(path: str, repair: bool = False, as_json: bool = False, progress: str = "auto",
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        report = verify(path, repair=repair, progress=progress, progress_stream=err)
    except VerifyError as e:
        err.write(f"tidelog verify: {e}\n")
        return EXIT_ERROR
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            err.write(f"tidelog verify: {e}\n")
            return EXIT_ERROR
        raise
    if as_json:
        out.write(json.dumps(report.to_dict(), indent=1, default=str) + "\n")
    else:
        out.write(format_report(report) + "\n")
    return exit_code(report)
