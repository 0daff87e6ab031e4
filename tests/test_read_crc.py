"""Readers check each frame's CRC32C the first time they read it (FORMAT.md §2)."""
import glob

import numpy as np
import pyarrow as pa
import pytest

import tidelog
from tidelog.errors import CorruptionError


def _damaged_log(path, at: int):
    with tidelog.open(path) as log:
        t = log.create_topic("s", schema=pa.schema([("v", pa.int64())]), segment_bytes=1 << 16)
        for i in range(50):
            t.append({"v": np.arange(i * 1000, (i + 1) * 1000)})
    first = sorted(glob.glob(str(path / "topics/s/0/*.log")))[0]
    with open(first, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x10]))


def test_damaged_payload_raises_corruption_error_naming_the_place(tmp_path):
    _damaged_log(tmp_path, at=3000)  # inside the first frame's Arrow body
    with tidelog.open(tmp_path) as log:
        t = log.topic("s")
        with pytest.raises(CorruptionError, match="CRC32C mismatch") as info:
            t.read()
        err = info.value
        assert (err.topic, err.partition, err.segment, err.position) == ("s", 0, "00000000000000000000.log", 0)
        with pytest.raises(CorruptionError):
            list(t.scan())
        with pytest.raises(CorruptionError):
            with log.consumer(["s"]) as c:
                c.poll_batch(100_000, timeout=0)
        # Frames past the damage read fine, and nothing was truncated.
        assert t.read(start_offset=20_000)["v"].to_pylist() == list(range(20_000, 50_000))
        assert t.end_offsets() == {0: 50_000}


def test_damage_in_a_later_frame_fails_the_read_that_reaches_it(tmp_path):
    _damaged_log(tmp_path, at=1 << 15)  # a frame in the middle of the first segment
    with tidelog.open(tmp_path, read_only=True) as log:
        t = log.topic("s")
        assert t.read(end_offset=1000)["v"].to_pylist() == list(range(1000))
        with pytest.raises(CorruptionError) as info:
            t.read()
        assert info.value.position > 0 and info.value.segment == "00000000000000000000.log"
