"""Log compaction: the latest record of every key kept forever, as Kafka's
compacted topics (``cleanup_policy="compact"``).

Contract:

* **What stays.** For every key, the cleaner keeps at least the latest record
  (the record with the highest offset of that key). Older records of a key
  are removed once a pass has seen a newer one. Records with a null key are
  never removed. The active segment (and every segment the recovery
  checkpoint does not cover yet, and every segment younger than
  ``min_compaction_lag_ms``) is never touched.
* **Offsets, timestamps and order** of the records that stay never change:
  a compacted partition has gaps in its offsets, not new offsets. A reader
  at a removed offset reads the next record that stayed.
* **Tombstones** (a null ``value`` in a byte-record topic; in a columnar
  topic, a row whose every column but the key and the timestamp is null:
  ``Topic.tombstone(keys)`` writes them) delete their key. A tombstone itself
  is removed by the first pass at least ``delete_retention_ms`` after a pass
  first saw it as its key's latest record.
* **Kafka's consumer guarantee.** A consumer that keeps up sees every record;
  one that lags sees at least the latest record of every key and every
  tombstone younger than ``delete_retention_ms``.
* **Crash safety.** A segment is rewritten beside itself and swapped in with
  one rename (docs/FORMAT.md, "Log compaction"): after a crash or a power cut
  at any step, each segment is wholly the old or wholly the new one.
* **Bounded memory.** A pass maps key hashes (128 bits) to offsets in a
  fixed budget (``DEFAULT_DEDUPE_BUFFER_BYTES``, 64 MiB: ~2.2 M keys); a
  larger key set takes several passes. Segments are read and written frame by
  frame.
* **Concurrency.** One cleaner per partition on the machine (a
  process-shared lock); appends and reads go on during a pass, and a reader
  holding a mapping of a replaced segment keeps reading valid (older) data.

Entry points: ``Log.create_topic(..., cleanup_policy="compact")``,
``Log.alter_topic()``, ``Topic.table()``, ``Topic.compact_now()``,
``Topic.tombstone()``, ``Topic.describe()`` (dirty ratio, last compaction,
bytes reclaimed). Every read-write Log with a compacted topic runs a cleaner
thread (``CleanerThread``) that passes over partitions whose dirty ratio
reaches ``min_cleanable_dirty_ratio``.
"""
from ._checkpoint import CleanerCheckpoint, describe_partition
from ._cleaner import DEFAULT_DEDUPE_BUFFER_BYTES, Cleaner, PassResult, dirty_ratio
from ._table import table
from ._thread import CleanerThread

__all__ = ["Cleaner", "CleanerCheckpoint", "CleanerThread", "DEFAULT_DEDUPE_BUFFER_BYTES", "PassResult",
           "describe_partition", "dirty_ratio", "table"]
