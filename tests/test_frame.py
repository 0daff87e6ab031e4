"""NativePartition.frames() hands out typed Frame objects whose fields match the frame headers."""
from __future__ import annotations

import pyarrow as pa
import pytest

import tidelog
from tidelog import _core


def test_frame_fields_name_the_header(log_dir):
    t0 = 1_700_000_000 * 10**9
    schema = pa.schema([("ts", pa.int64()), ("v", pa.int32())])
    with tidelog.open(log_dir) as log:
        topic = log.create_topic("t", schema=schema, timestamp="ts", durability="none")
        for start, n in [(100, 3), (200, 5), (50, 1)]:
            topic.append(pa.record_batch([pa.array(range(t0 + start, t0 + start + n), pa.int64()),
                                          pa.array(range(n), pa.int32())], schema=schema))
        frames = topic._partitions[0].frames()
        assert [type(f) for f in frames] == [_core.Frame] * 3
        assert [(f.base_offset, f.record_count, f.next_offset) for f in frames] == [(0, 3, 3), (3, 5, 8), (8, 1, 9)]
        assert [(f.min_timestamp, f.max_timestamp) for f in frames] == [(t0 + 100, t0 + 102), (t0 + 200, t0 + 204), (t0 + 50, t0 + 50)]
        first, second = frames[0], frames[1]
        assert first.position == 0 and second.position > first.position
        assert first.mapping is second.mapping  # one Mapping per segment
        assert first.mapping.address < first.address < first.mapping.address + first.mapping.size
        assert first.address - first.mapping.address + first.length <= second.position
        assert (first.codec, first.flags, first.schema_id) == (_core.CODEC_NONE, _core.FLAG_TIME_ORDERED, first.schema_id)
        assert first.version >= 1
        assert first.payload().size == first.length
        (batch,) = _core.decode_frame(second, topic.schema, None)
        assert batch.column(1).to_pylist() == [0, 1, 2, 3, 4]
        assert "offsets 3..8" in repr(second)
        with pytest.raises(AttributeError):
            first.base_offset = 7  # readonly
        with pytest.raises(TypeError):
            first[3]  # not a tuple any more
