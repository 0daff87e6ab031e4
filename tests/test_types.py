"""Kafka's value types: TopicPartition (confluent-kafka's attributes and
comparison, kafka-python's tuple behaviour) and OffsetAndMetadata, and the
parsers the consumer accepts them through."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import tidelog
from tidelog import OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, OFFSET_STORED, OffsetAndMetadata, TopicPartition
from tidelog._types import commit_offsets, partition_key, partition_keys


def test_logical_offsets_have_confluent_values():
    assert (OFFSET_BEGINNING, OFFSET_END, OFFSET_STORED, OFFSET_INVALID) == (-2, -1, -1000, -1001)


def test_topic_partition_attributes():
    tp = TopicPartition("orders", 3)
    assert (tp.topic, tp.partition, tp.offset, tp.metadata, tp.leader_epoch, tp.error) == (
        "orders", 3, OFFSET_INVALID, None, None, None)
    tp = TopicPartition("orders", 3, 42, metadata="m", leader_epoch=7)
    assert (tp.offset, tp.metadata, tp.leader_epoch) == (42, "m", 7)
    tp.offset = 43  # writable, as confluent-kafka's
    assert tp.offset == 43
    with pytest.raises(AttributeError):
        tp.topic = "other"  # the hash is made of topic and partition
    with pytest.raises(AttributeError):
        tp.partition = 1
    assert TopicPartition("t", np.int64(2), np.int32(5)).partition == 2


def test_topic_partition_compares_and_hashes_by_topic_and_partition():
    a, b = TopicPartition("t", 0, 5), TopicPartition("t", 0, 9)
    assert a == b and hash(a) == hash(b), "the offset is not part of the identity (confluent-kafka)"
    assert a != TopicPartition("t", 1, 5) and a != TopicPartition("u", 0, 5)
    # kafka-python's TopicPartition is the tuple (topic, partition): the same lookups work
    assert a == ("t", 0) and ("t", 0) == a and hash(a) == hash(("t", 0))
    assert {("t", 0): 1}[a] == 1 and {a: 1}[("t", 0)] == 1
    topic, partition = a
    assert (topic, partition) == ("t", 0) and len(a) == 2 and a[1] == 0
    assert sorted([TopicPartition("t", 2), TopicPartition("a", 9), TopicPartition("t", 0)]) == [
        ("a", 9), ("t", 0), ("t", 2)]
    assert a != "t" and a != 0
    assert repr(TopicPartition("t", 0)) == "TopicPartition('t', 0)"
    assert repr(TopicPartition("t", 0, 5)) == "TopicPartition('t', 0, offset=5)"


def test_topic_partition_rejects_bad_fields():
    with pytest.raises(TypeError, match="topic must be a str"):
        TopicPartition(b"t", 0)
    with pytest.raises(TypeError, match="partition must be an int"):
        TopicPartition("t", "0")
    with pytest.raises(TypeError, match="partition must be an int"):
        TopicPartition("t", True)
    with pytest.raises(TypeError, match="offset must be an int"):
        TopicPartition("t", 0, 1.5)


def test_offset_and_metadata():
    om = OffsetAndMetadata(5)
    assert (om.offset, om.metadata, om.leader_epoch) == (5, "", None)
    assert OffsetAndMetadata(5, "m", 3) == (5, "m", 3)  # kafka-python's namedtuple
    assert pickle.loads(pickle.dumps(om)) == om


def test_partition_key_forms():
    assert partition_key(("t", 1), "x") == ("t", 1)
    assert partition_key(["t", np.int16(1)], "x") == ("t", 1)
    assert partition_key(TopicPartition("t", 1, 5), "x") == ("t", 1)
    for bad in ("t", ("t",), ("t", 0, 1), (0, "t"), 5, None):
        with pytest.raises(TypeError, match="x takes"):
            partition_key(bad, "x")
    with pytest.raises(TypeError, match="partition"):
        partition_key(("t", "0"), "x")
    assert partition_keys([("t", 0), TopicPartition("u", 1)], "x") == [("t", 0), ("u", 1)]
    assert partition_keys((tp for tp in [("t", 0)]), "x") == [("t", 0)]
    for bad in ("t", b"t", TopicPartition("t", 0), 5):
        with pytest.raises(TypeError, match="a list of"):
            partition_keys(bad, "x")


def test_commit_offsets_forms():
    want = {("t", 0): OffsetAndMetadata(5), ("t", 1): OffsetAndMetadata(7, "m")}
    assert commit_offsets({("t", 0): 5, ("t", 1): OffsetAndMetadata(7, "m")}) == want
    assert commit_offsets({TopicPartition("t", 0): OffsetAndMetadata(5),
                           TopicPartition("t", 1): OffsetAndMetadata(7, "m")}) == want
    assert commit_offsets([TopicPartition("t", 0, 5), TopicPartition("t", 1, 7, metadata="m")]) == want
    assert commit_offsets({("t", 0): np.int64(5)}) == {("t", 0): OffsetAndMetadata(5)}
    assert commit_offsets({}) == {}


@pytest.mark.parametrize("bad, error, match", [
    ({("t", 0): -1}, tidelog.InvalidArgumentError, ">= 0"),
    ([TopicPartition("t", 0)], tidelog.InvalidArgumentError, ">= 0"),  # no offset given
    ({("t", 0): "5"}, TypeError, "int or OffsetAndMetadata"),
    ({("t", 0): True}, TypeError, "int or OffsetAndMetadata"),
    ({("t", 0): OffsetAndMetadata(1.5)}, TypeError, "must be an int"),
    ({("t", 0): OffsetAndMetadata(1, b"m")}, TypeError, "metadata"),
    ({"t": 5}, TypeError, "takes TopicPartition"),
    ([("t", 0, 5)], TypeError, "a list holds TopicPartition"),
    ("t", TypeError, "takes a dict"),
    (5, TypeError, "takes a dict"),
])
def test_commit_offsets_rejects(bad, error, match):
    with pytest.raises(error, match=match):
        commit_offsets(bad)
    assert issubclass(tidelog.InvalidArgumentError, ValueError)
