"""Helpers shared by the test modules (imported as ``_helpers``; conftest puts
this folder on sys.path)."""
from __future__ import annotations

import glob
import hashlib
import os
import struct
import subprocess
import sys

import numpy as np
import pyarrow as pa

SENSORS_SCHEMA = pa.schema(
    [("ts", pa.timestamp("ns")), ("sensor_id", pa.int32()), ("value", pa.float64())]
)

T0 = 1_700_000_000_000_000_000  # some fixed time, ns since the epoch


def make_sensors(n: int, start: int = 0, seed: int = 0, sensors: int = 100, t0: int = T0) -> pa.RecordBatch:
    """n sensor readings; row i (global index start+i) has ts = t0 + i*1000 ns,
    value = start+i as a float (so rows are recognisable after a read) and a
    sensor id that depends only on the global index and seed."""
    idx = np.arange(start, start + n, dtype=np.int64)
    # sensor ids scattered but a function of the row index, so data does not depend on batching
    sensor_id = (((idx + seed * 1_000_003) * 2_654_435_761) >> 7) % sensors
    return pa.RecordBatch.from_arrays(
        [
            pa.array(t0 + idx * 1000, pa.timestamp("ns")),
            pa.array(sensor_id.astype(np.int32)),
            pa.array(idx.astype(np.float64)),
        ],
        schema=SENSORS_SCHEMA,
    )


def sort_by(table: pa.Table, column: str) -> pa.Table:
    return table.sort_by([(column, "ascending")])


# Kafka's published murmur2 vectors (clients/src/test/.../utils/UtilsTest.java, testMurmur2).
KAFKA_MURMUR2_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


def kafka_partition(key_bytes: bytes, partitions: int) -> int:
    from tidelog import _core

    return (_core.kafka_murmur2(key_bytes) & 0x7FFFFFFF) % partitions


def int32_key_bytes(v: int) -> bytes:
    return struct.pack(">i", v)


def segment_logs(log_dir, topic: str, partition: int = 0) -> list[str]:
    """The .log files of a partition, in offset order."""
    return sorted(glob.glob(os.path.join(os.fspath(log_dir), "topics", topic, str(partition), "*.log")))


def partition_files(log_dir, topic: str, partition: int = 0, ext: str = "") -> list[str]:
    return sorted(glob.glob(os.path.join(os.fspath(log_dir), "topics", topic, str(partition), f"*{ext}")))


def iter_buffers(array):
    """Every non-empty buffer of an Arrow array, children and dictionaries included."""
    if isinstance(array, pa.ChunkedArray):
        for chunk in array.chunks:
            yield from iter_buffers(chunk)
        return
    if pa.types.is_dictionary(array.type):
        for b in array.indices.buffers():
            if b is not None and b.size:
                yield b
        yield from iter_buffers(array.dictionary)
        return
    # Array.buffers() already flattens the buffers of child arrays.
    for b in array.buffers():
        if b is not None and b.size:
            yield b


def table_digest(table: pa.Table) -> str:
    """A digest of a table's values (independent of chunking and buffer layout)."""
    h = hashlib.sha256()
    for batch in table.combine_chunks().to_batches():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as w:
            w.write_batch(batch)
        h.update(sink.getvalue().to_pybytes())
    return h.hexdigest()


def run_python(code: str, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``python -c code args...`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_tidelog(*args, input: str | bytes | None = None, cwd=None, timeout: float = 60,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs the ``tidelog`` command as a user would (``python -m tidelog args...``);
    text in and out unless ``input`` is bytes."""
    text = not isinstance(input, bytes)
    return subprocess.run([sys.executable, "-m", "tidelog", *map(str, args)], input=input, capture_output=True,
                          text=text, cwd=cwd, timeout=timeout, env=env)


def assert_cli_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """The command failed as a user error should: exit ``code``, one line on
    stderr starting with "tidelog", no traceback, and ``fragments`` in it."""
    err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tidelog"), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _norm(v):
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def assert_tables_equal(got, expected) -> None:
    """Equal schemas and values; NaN equals NaN (Arrow's equals() says it does not)."""
    if isinstance(got, pa.RecordBatch):
        got = pa.Table.from_batches([got])
    if isinstance(expected, pa.RecordBatch):
        expected = pa.Table.from_batches([expected])
    assert got.schema.equals(expected.schema), f"{got.schema}\n!=\n{expected.schema}"
    assert got.num_rows == expected.num_rows
    for name, a, b in zip(got.column_names, got.columns, expected.columns):
        if a.equals(b):
            continue
        assert _norm(a.to_pylist()) == _norm(b.to_pylist()), f"column {name!r} differs"


def frame_spans(path) -> list[tuple]:
    """(start, payload_offset, payload_length, frame_length, base_offset, record_count) of each frame of a
    segment file, read by the FORMAT.md header layout (stops at the first non-frame)."""
    data = open(path, "rb").read()
    pos, out = 0, []
    while pos + 64 <= len(data) and data[pos:pos + 4] == b"TLF1":
        base, count = struct.unpack_from("<qI", data, pos + 16)
        plen, poff = struct.unpack_from("<QI", data, pos + 48)
        length = (poff + plen + 7) & ~7
        out.append((pos, poff, plen, length, base, count))
        pos += length
    return out
