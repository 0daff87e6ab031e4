"""Reserved slots for contenders that are not measured yet. They are listed in
every workload they will take part in, as "not available", so the tables say
what is missing rather than leaving it out silently."""
from __future__ import annotations

from ..core import Contender


class Kafka(Contender):
    """Slot: confluent-kafka against a real broker (produce, acks=all, consume latency)."""

    name = "kafka"
    kind = "peer"
    placeholder = "not measured yet: confluent-kafka against a real Kafka broker"
    slots = ("produce", "threads", "latency")
    description = "confluent-kafka Producer/Consumer against a local broker (not implemented yet)"

