"""A real Apache Kafka broker for the benchmark suite (and the tests).

Contract:

- ``fetch_jars()`` puts the broker's and Kafka's tools' jars (Kafka 4.1.1 by
  default, ``TIDELOG_KAFKA_VERSION`` for another) into a cache folder
  (``$TIDELOG_KAFKA_LIBS``, else ``$XDG_CACHE_HOME/tidelog/kafka-<version>``)
  with Maven from Maven Central, once; later calls find them there. This is the
  only download tidelog ever does, and only when a Kafka contender runs.
- ``Broker`` starts a single-node KRaft broker (broker and controller in one
  JVM) on 127.0.0.1 at a free port, in a temporary data folder, and stops it by
  pid (SIGTERM, then SIGKILL after 10 s); the folder goes with it.
- ``shared_broker()`` is one broker per process, started on first use, warmed
  up (a fresh broker's first latency rounds are 10-100x slower), and stopped
  at exit: every workload of a ``tidelog bench`` run shares it.
- ``running_shared_broker()`` is that broker if it runs, else None (it never
  starts one): the runner pauses it while other contenders' latency rounds run.
- ``unavailable_reason()`` says why no broker can run here (Java or Maven
  missing), or None.

No tidelog code depends on this package at run time: it is a peer for
comparison, the way SQLite and LMDB are.
"""
from __future__ import annotations

from .broker import (Broker, fetch_jars, running_shared_broker, set_warmup_seconds, shared_broker, stop_shared_broker,
                     unavailable_reason)

__all__ = ["Broker", "fetch_jars", "running_shared_broker", "set_warmup_seconds", "shared_broker", "stop_shared_broker", "unavailable_reason"]
