"""Kafka's value types for naming partitions and offsets: ``TopicPartition``
(as confluent-kafka's, which also unpacks and compares as kafka-python's
``(topic, partition)`` tuple) and ``OffsetAndMetadata`` (as kafka-python's and
Kafka's Java client's), with the parsers the consumer uses to accept them next
to its own ``(topic, partition)`` pairs.

Values of these types are plain data: not synchronized, share them between
threads only read-only.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping  # (typing's aliases are slower in isinstance)
from typing import Any, NamedTuple

import numpy as np

from ._arrow import as_int
from .errors import InvalidArgumentError

#: Logical offsets, with confluent-kafka's values: the first kept offset, the
#: end (the next offset to be written), the committed offset, and "no offset".
OFFSET_BEGINNING = -2
OFFSET_END = -1
OFFSET_STORED = -1000
OFFSET_INVALID = -1001
LOGICAL_OFFSETS = (OFFSET_BEGINNING, OFFSET_END, OFFSET_STORED, OFFSET_INVALID)


class TopicPartition:
    """A partition of a topic, optionally with an offset: Kafka's
    ``TopicPartition(topic, partition, offset)``.

    Equal to, and hashed as, the tuple ``(topic, partition)`` whatever its
    offset (as confluent-kafka's compare and as kafka-python's *is* that
    tuple), so it looks up the dicts the consumer returns, and ``topic,
    partition = tp`` unpacks it. ``offset`` defaults to ``OFFSET_INVALID``
    (none given); ``OFFSET_BEGINNING`` and ``OFFSET_END`` mean the partition's
    first kept offset and its end. ``metadata``, ``leader_epoch`` and ``error``
    are carried for Kafka code; tidelog sets ``error`` to None.

    ``topic`` and ``partition`` are read-only (they make the hash);
    ``offset``, ``metadata``, ``leader_epoch`` and ``error`` may be assigned.
    """

    __slots__ = ("_topic", "_partition", "offset", "metadata", "leader_epoch", "error")

    def __init__(self, topic: str, partition: int = -1, offset: int = OFFSET_INVALID, metadata: str | None = None,
                 leader_epoch: int | None = None):
        if not isinstance(topic, str):
            raise TypeError(f"TopicPartition: topic must be a str, not {type(topic).__name__}")
        self._topic = topic
        self._partition = as_int(partition, "TopicPartition: partition")
        self.offset = as_int(offset, "TopicPartition: offset")
        self.metadata = metadata
        self.leader_epoch = leader_epoch
        self.error = None

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def partition(self) -> int:
        return self._partition

    def __iter__(self) -> Iterator:
        return iter((self._topic, self._partition))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> Any:
        return (self._topic, self._partition)[i]

    def __hash__(self) -> int:
        return hash((self._topic, self._partition))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TopicPartition):
            return self._topic == other.topic and self._partition == other.partition
        if isinstance(other, tuple):
            return (self._topic, self._partition) == other
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        if isinstance(other, (TopicPartition, tuple)):
            return (self._topic, self._partition) < tuple(other)
        return NotImplemented

    def __repr__(self) -> str:
        extra = "" if self.offset == OFFSET_INVALID else f", offset={self.offset}"
        if self.metadata is not None:
            extra += f", metadata={self.metadata!r}"
        if self.leader_epoch is not None:
            extra += f", leader_epoch={self.leader_epoch}"
        return f"TopicPartition({self._topic!r}, {self._partition}{extra})"


class OffsetAndMetadata(NamedTuple):
    """An offset to commit (the next record to read, as Kafka's commits) with
    a free-form ``metadata`` string and the ``leader_epoch`` Kafka's clients
    carry (None here). kafka-python's and the Java client's type."""

    offset: int
    metadata: str = ""
    leader_epoch: int | None = None


def partition_key(item: Any, what: str) -> tuple[str, int]:
    """(topic, partition) of a TopicPartition or a (topic, partition) pair;
    TypeError naming ``what`` for anything else."""
    if isinstance(item, TopicPartition):
        return item.topic, item.partition
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
        return item[0], as_int(item[1], f"{what}: the partition of {item!r}")
    raise TypeError(f"{what} takes TopicPartition objects or (topic, partition) pairs, e.g. [('orders', 0)], "
                    f"not {item!r}")


def partition_keys(items: Any, what: str) -> list[tuple[str, int]]:
    """(topic, partition) pairs from a list of TopicPartitions or pairs."""
    if isinstance(items, (str, bytes, TopicPartition)) or not isinstance(items, Iterable):
        raise TypeError(f"{what} takes a list of TopicPartition objects or (topic, partition) pairs, "
                        f"e.g. [('orders', 0)], not {items!r}")
    return [partition_key(item, what) for item in items]


def commit_offsets(offsets: Any, what: str = "commit(offsets=...)") -> dict[tuple[str, int], OffsetAndMetadata]:
    """``{(topic, partition): OffsetAndMetadata}`` from the forms Kafka's
    clients commit: a dict keyed by (topic, partition) or TopicPartition whose
    values are ints or OffsetAndMetadata, or a list of TopicPartitions with
    offsets. Offsets must be real (>= 0): committing a logical offset is an
    InvalidArgumentError."""
    out: dict[tuple[str, int], OffsetAndMetadata] = {}
    if isinstance(offsets, Mapping):
        for key, value in offsets.items():
            if isinstance(value, OffsetAndMetadata):
                om = value
            elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
                om = OffsetAndMetadata(int(value))
            else:
                raise TypeError(f"{what}: the offset of {key!r} must be an int or OffsetAndMetadata, "
                                f"not {type(value).__name__}")
            out[partition_key(key, what)] = om
    elif isinstance(offsets, (str, bytes, TopicPartition)) or not isinstance(offsets, Iterable):
        raise TypeError(f"{what} takes a dict {{(topic, partition): offset}} or a list of TopicPartition with "
                        f"offsets, not {type(offsets).__name__}")
    else:
        for tp in offsets:
            if not isinstance(tp, TopicPartition):
                raise TypeError(f"{what}: a list holds TopicPartition objects with offsets, not {tp!r} "
                                f"(a dict maps (topic, partition) to an offset)")
            out[(tp.topic, tp.partition)] = OffsetAndMetadata(tp.offset, tp.metadata or "", tp.leader_epoch)
    for key, om in out.items():
        offset = as_int(om.offset, f"{what}: the offset of {key!r}")
        if not 0 <= offset < 2**63:
            raise InvalidArgumentError(f"{what}: the offset of {key!r} must be >= 0 (the next offset to read), "
                                       f"not {offset}")
        if om.metadata is not None and not isinstance(om.metadata, str):
            raise TypeError(f"{what}: the metadata of {key!r} must be a str, not {type(om.metadata).__name__}")
    return out
