"""``tidelog verify``: a full check of a log folder against docs/FORMAT.md, and
an optional repair of damaged partition tails.

The check reads every segment file front to back through one fixed-size buffer
(bounded memory whatever the log's size) and, for every partition:

- walks the frames with the checks of FORMAT.md §2.3, **CRC included**
  (§2.2), checks that the padding around each payload is zeros (the CRC does
  not cover it), and checks that offsets are dense: within a segment, from one
  segment to the next, and that each segment starts at its file name's base;
- after the last frame, accepts nothing (a sealed segment), zeros (the
  preallocated tail of the active segment) or reports a torn frame, and makes
  sure no data hides after a run of zeros;
- checks both indexes (§4): whole entries, strictly increasing, every entry on
  a real frame start with that frame's relative offset, every time entry
  holding the running maximum of ``max_timestamp`` up to its frame (a lower
  value would make time reads skip data);
- checks the recovery checkpoint (§5) and that the log does not end before it;
- reads ``topic.json`` (§6).

It reports, per partition: segments, frames, records, bytes, offsets and the
first bad position. Nothing is written unless ``repair=True``.

**Repair** (``repair=True``, only while no writer holds the log: the repair
takes the writer lock itself). For each damaged partition whose first bad
frame lies in its *last* segment:

1. the bytes from the first bad frame to the end of the file are copied to a
   side file next to the segment, ``<base>.log.cut-<position>`` (``position``
   is the decimal byte position of the cut; ``.1``, ``.2``, ... are appended if
   that name is taken), which is fsynced;
2. the segment is truncated at that position and fsynced;
3. its ``.index`` and ``.timeindex`` are deleted (FORMAT.md §10: derived data,
   the next writer rebuilds them).

Index damage anywhere is repaired the same way (both index files of that
segment deleted). Non-zero padding around an intact frame (bytes the CRC does
not cover) is zeroed in place. Damage in a sealed segment (any but the last) is **never**
repaired: cutting there would drop every later segment, so it is reported and
left for the user (restore from a copy). The same holds for metadata damage.
After its edits the repair opens the log as a writer once (which rebuilds the
indexes and republishes the shared state) and closes it, then verifies again.

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

from . import _core
from ._log import _fsync_dir

FRAME_MAGIC = 0x31464C54  # "TLF1"
FRAME_VERSION = 1
HEADER_BYTES = 64
MAX_PAYLOAD = 2**31 - 1
CHECKPOINT_MAGIC = 0x50434C54  # "TLCP"
STATE_MAGIC = 0x53464C54  # "TLFS"
TOPIC_FORMAT_VERSION = 1

_HEADER = struct.Struct("<IIHHHHqIIqqQII")  # FORMAT.md §2.1
_SLOT = struct.Struct("<IIQqQq24x")  # FORMAT.md §5
_SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
_ZERO_HEADER = bytes(HEADER_BYTES)

CHUNK = 1 << 20  # the read buffer: the only memory that grows with frame size
EXIT_CLEAN, EXIT_DAMAGED, EXIT_ERROR, EXIT_REPAIRED = 0, 1, 2, 3


def side_file_name(segment_path: str, position: int) -> str:
    """Where ``--repair`` saves the bytes it cuts from ``segment_path`` at ``position``."""
    base = f"{segment_path}.cut-{position}"
    name, n = base, 0
    while os.path.exists(name):
        n += 1
        name = f"{base}.{n}"
    return name


# ----------------------------------------------------------------------------- results
@dataclasses.dataclass
class Problem:
    """One thing found wrong. ``kind``: "frame" (a bad frame or a break in the
    offsets: data damage), "padding" (non-zero padding around an intact frame),
    "index" (derived data), "checkpoint", "metadata"."""

    kind: str
    file: str
    position: int | None
    reason: str
    offset: int | None = None
    topic: str | None = None
    partition: int | None = None

    def __str__(self) -> str:
        where = os.path.basename(self.file)
        if self.position is not None:
            where += f" position {self.position}"
        if self.offset is not None:
            where += f" (offset {self.offset})"
        return f"{self.kind}: {where}: {self.reason}"


@dataclasses.dataclass
class PartitionReport:
    topic: str
    partition: int
    directory: str
    segments: int = 0
    frames: int = 0
    records: int = 0
    bytes: int = 0  # bytes of good frames
    start_offset: int | None = None
    end_offset: int | None = None  # one past the last good record
    problems: list[Problem] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    #: the first bad frame: (segment path, position, offset, reason), or None
    first_bad: tuple[str, int, int | None, str] | None = None
    first_bad_sealed: bool = False  # the first bad frame is in a sealed (not last) segment
    repaired: list[str] = dataclasses.field(default_factory=list)
    refused: list[str] = dataclasses.field(default_factory=list)

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    @property
    def name(self) -> str:
        return f"{self.topic}/{self.partition}"


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

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["damaged"] = self.damaged
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


def _check_frame(r: _Reader, pos: int, expected_offset: int, limit: int):
    """FORMAT.md §2.3 at ``pos`` with ``limit - pos`` bytes available.
    Returns (status, header tuple or None, frame_length). status: "ok", "end",
    "truncated", "bad magic", "bad header: ...", "offset", "CRC32C mismatch"."""
    available = limit - pos
    raw = bytes(r.get(pos, min(HEADER_BYTES, max(available, 0))))
    if len(raw) < HEADER_BYTES:
        return ("end" if not any(raw) else "truncated (a torn frame header)"), None, 0
    if raw == _ZERO_HEADER:
        return "end", None, 0
    h = _HEADER.unpack(raw)
    magic, crc, version, header_length, codec, _flags, base, count, _sid, tmin, tmax, plen, poff, _res = h
    if magic != FRAME_MAGIC:
        return "bad magic", h, 0
    why = []
    if version != FRAME_VERSION:
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
    if count == 0:
        why.append("record_count 0")  # the writer never writes an empty frame (native check_header agrees)
    if why:
        return "bad header: " + ", ".join(why), h, 0
    length = _align8(poff + plen)
    if expected_offset is not None and base != expected_offset:
        return f"offset mismatch: base_offset {base}, expected {expected_offset}", h, length
    if length > available:
        return f"truncated: the frame needs {length} bytes, {available} are left", h, length
    try:
        value = r.crc(pos + poff, plen)
        value = _core.crc32c(raw[8:], value)
    except EOFError:
        return "truncated", h, length
    if value != crc:
        return "CRC32C mismatch", h, length
    return "ok", h, length


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


def _read_state_end(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            data = f.read(24)
    except OSError:
        return None
    if len(data) < 24:
        return None
    magic, _version, visible_end, _start = struct.unpack("<IIqq", data)
    return visible_end if magic == STATE_MAGIC else None


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


class _WriterLock:
    """The writer lock (FORMAT.md §1), held by verify while it repairs."""

    def __init__(self, path: str):
        self.fd = os.open(os.path.join(path, "LOCK"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise VerifyError(f"a writer holds the log (pid {text or 'unknown'}): close it before --repair") from None
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


def _verify_partition(rep: PartitionReport, progress: _Progress, live_end: int | None, clean: bool) -> None:
    segs = _segments(rep.directory)
    rep.segments = len(segs)
    if not segs:
        rep.notes.append("no segment files (the next writer creates one)")
        return
    expected: int | None = segs[0][0]  # None: unknown after damage the walk could not step over
    rep.start_offset = expected

    def damage(path: str, pos: int, offset: int | None, reason: str, last: bool) -> None:
        rep.problems.append(Problem("frame", path, pos, reason, offset=offset, topic=rep.topic,
                                    partition=rep.partition))
        if rep.first_bad is None:
            rep.first_bad = (path, pos, offset, reason)
            rep.first_bad_sealed = not last

    for k, (base, path) in enumerate(segs):
        last = k == len(segs) - 1
        if expected is not None and base != expected:
            damage(path, 0, expected, f"segment base mismatch: the segment starts at offset {base}, the previous "
                   f"one ends at {expected}", last)
        try:
            r = _Reader(path)
        except FileNotFoundError:
            if live_end is not None:
                rep.notes.append(f"{os.path.basename(path)} was deleted (retention) while verifying")
                rep.start_offset = None
                expected = None
                continue
            raise
        try:
            # Frame starts (position -> relative offset, running max timestamp), kept
            # only where an index entry points: memory bounded by the index size.
            idx_positions = _index_positions(path)
            hits: dict[int, tuple[int, int]] = {}
            pos = 0
            offset = base
            running_max = None
            size = r.size
            seg_damaged = False
            while True:
                if live_end is not None and last and offset is not None and offset >= live_end:
                    break  # past the writer's published end: in progress, not ours to judge
                status, h, length = _check_frame(r, pos, offset, size)
                if status == "end":
                    nz = r.all_zero(pos, size)
                    if nz is not None and not (live_end is not None and last):
                        damage(path, pos, offset, f"zeros at position {pos}, then non-zero bytes at {nz}: a frame "
                               f"was zeroed, or data follows a hole", last)
                        seg_damaged = True
                        offset = None
                    elif pos < size and not last:
                        rep.notes.append(f"{os.path.basename(path)}: {size - pos} zero bytes after the last frame "
                                         f"of a sealed segment (the next writer trims them)")
                    break
                if status != "ok":
                    reason = status
                    if last and not clean and live_end is None and status.startswith("truncated"):
                        reason += " (a torn write of a crashed writer: never acknowledged)"
                    damage(path, pos, offset, reason, last)
                    seg_damaged = True
                    if length and h is not None and pos + length <= size:
                        # The header is sane (a bad CRC, or a wrong offset): step over the frame
                        # and keep checking, so every damaged frame is reported.
                        if pos in idx_positions:
                            hits[pos] = (h[6] - base, None)  # a frame start, but its timestamps are suspect
                        offset = None  # its header is suspect too: the next good frame says where we are
                        pos += length
                        progress.add(length)
                        continue
                    offset = None  # lost: nothing after this point in the segment can be located
                    break
                if offset is None:
                    offset = h[6]  # resynchronised after a damaged frame
                count, tmax = h[7], h[10]
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
                progress.add(length)
                offset += count
                pos += length
            walked_end = pos
            progress.add(max(0, size - walked_end))
            strict = (clean or not last) and not seg_damaged  # an unclean active segment's indexes lag
            if live_end is not None and not os.path.exists(path):
                # retention deleted it while we read it (our descriptor kept it readable)
                rep.notes.append(f"{os.path.basename(path)} was deleted (retention) while verifying")
            elif live_end is None or not last:
                _check_indexes(rep, path, base, hits.get, walked_end,
                               lambda p: hits[p][1] if p in hits else None, strict_tail=strict,
                               segment_max=running_max, live=live_end is not None)
            expected = offset
        finally:
            r.close()
    rep.end_offset = rep.first_bad[2] if rep.first_bad is not None else expected
    # The recovery checkpoint: the log must not end before it.
    cp, note = _read_checkpoint(os.path.join(rep.directory, "recovery-checkpoint"))
    if note:
        rep.notes.append(note)
    if cp is not None and rep.end_offset is not None and rep.first_bad is None and live_end is None:
        _seg_base, _position, next_offset = cp
        if next_offset > rep.end_offset:
            rep.problems.append(Problem(
                "checkpoint", os.path.join(rep.directory, "recovery-checkpoint"), None,
                f"the log ends at offset {rep.end_offset}, before its recovery checkpoint ({next_offset}): "
                f"acknowledged records {rep.end_offset}..{next_offset - 1} are missing",
                topic=rep.topic, partition=rep.partition))


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


def _iter_topics(path: str, report: VerifyReport) -> Iterator[tuple[str, str, int | None]]:
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
        try:
            with open(meta_path, "rb") as f:
                meta = json.loads(f.read())
            if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
                raise ValueError("not an object with a 'config' object")
            if meta.get("format_version") != TOPIC_FORMAT_VERSION:
                raise ValueError(f"format_version {meta.get('format_version')!r}, this tidelog reads "
                                 f"{TOPIC_FORMAT_VERSION}")
            partitions = meta["config"].get("partitions")
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
        yield name, directory, partitions


def verify(path: str | os.PathLike, *, repair: bool = False, progress: str = "auto",
           progress_stream: TextIO | None = None) -> VerifyReport:
    """Checks the log folder at ``path`` (see the module docstring); with
    ``repair=True`` also repairs what can be repaired and verifies again.
    Raises ``VerifyError`` when it cannot run."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(os.path.join(path, "topics")):
        raise VerifyError(f"{path} is not a tidelog log folder (no topics/ folder)")
    t0 = time.monotonic()
    lock = None
    if repair:
        lock = _WriterLock(path)  # raises VerifyError while a writer runs
    try:
        report = _check(path, progress, progress_stream, lock_held=lock is not None)
        if repair and report.damaged:
            _repair(report)
            report.repaired = True
            lock.release()
            lock = None
            # One writer open rebuilds deleted indexes and republishes the state.
            from ._log import Log

            try:
                log = Log(path)
            except Exception as e:  # noqa: BLE001 - reported, the re-check below says what is left
                report.notes.append(f"the log did not open after the repair: {type(e).__name__}: {e}")
            else:
                for ev in log.recovery_report:
                    report.notes.append(f"writer open after the repair: {ev['topic']}/{ev['partition']} "
                                        f"{os.path.basename(ev['file'])}: {ev['reason']}")
                log.close()
            report.after_repair = _check(path, "never", None, lock_held=False)
    finally:
        if lock is not None:
            lock.release()
    report.seconds = time.monotonic() - t0
    return report


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
    for name, directory, partitions in _iter_topics(path, report):
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
                live_end = _read_state_end(os.path.join(pdir, "state"))
                if live_end is None:
                    live_end = -1  # nothing published yet: check nothing of the active segment
            _verify_partition(rep, progress, live_end, report.clean_shutdown)
            report.partitions.append(rep)
    progress.finish()
    return report


# ----------------------------------------------------------------------------- repair
def _cut(segment: str, position: int) -> str:
    """Saves segment[position:] to a side file, fsyncs it, truncates the segment."""
    side = side_file_name(segment, position)
    with open(segment, "r+b") as src:
        fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            src.seek(position)
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                os.write(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        src.truncate(position)
        src.flush()
        os.fsync(src.fileno())
    return side


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


def _repair(report: VerifyReport) -> None:
    for p in report.problems:
        if p.kind == "metadata":
            report.notes.append(f"not repaired: {p.file}: {p.reason}")
    for rep in report.partitions:
        if not rep.problems:
            continue
        segs = _segments(rep.directory)
        last_path = segs[-1][1] if segs else None
        if rep.first_bad is not None:
            path, position, offset, reason = rep.first_bad
            if rep.first_bad_sealed or path != last_path:
                rep.refused.append(
                    f"damage in sealed segment {os.path.basename(path)} at position {position} (offset {offset}): "
                    f"{reason}; not repaired: cutting there would drop every later segment. Restore the "
                    f"partition from a copy")
                continue
            if reason.startswith("segment base mismatch"):
                # The last segment does not continue the previous one: save all of it and
                # remove it (the previous segment becomes the active one again).
                side = side_file_name(path, 0)
                os.rename(path, side)
                _drop_indexes(path)
                rep.repaired.append(f"moved {os.path.basename(path)} (it does not continue the previous "
                                    f"segment) to {os.path.basename(side)}")
            else:
                cut = os.path.getsize(path) - position
                side = _cut(path, position)
                _drop_indexes(path)
                rep.repaired.append(f"cut {cut} bytes at position {position} (offset {offset}) of "
                                    f"{os.path.basename(path)} into {os.path.basename(side)}: {reason}")
        for prob in rep.problems:
            if prob.kind == "padding" and os.path.exists(prob.file):
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
            status = f"DAMAGED: first bad frame at {os.path.basename(rep.first_bad[0])} position {rep.first_bad[1]}"
        elif rep.problems:
            status = "DAMAGED (indexes/checkpoint)"
        else:
            status = "ok"
        lines.append(f"  {rep.name:<28} {rep.segments:>8} {rep.frames:>10,} {rep.records:>14,} "
                     f"{_fmt_bytes(rep.bytes):>12}  {offsets:<24} {status}")
        for p in rep.problems:
            lines.append(f"      {p}")
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
