"""Consumer groups: members in any thread or process of the machine share the
partitions of the topics they subscribe to, resume from the group's durably
committed offsets, and are fenced, as Kafka's consumer groups.

Contract:

* **Exclusive ownership.** A partition has at most one owner among the live
  members at any time. It changes owner only after its previous owner gave
  it up (after its ``on_revoke``) or was removed (its process died: detected
  by the kernel releasing an OFD lock, prompted by a pidfd; or it stopped
  polling for ``max_poll_interval_ms``). Every hand-off raises the
  partition's epoch (``partition_epoch``), so records processed under a
  higher epoch follow every record processed under a lower one.
* **Fencing.** A commit is checked against ownership and stored in one
  locked step: a member that does not own a partition (any more) gets
  ``CommitFailedError`` and nothing is stored.
* **Durable offsets.** ``commit()`` returns after an fdatasync covers the
  offsets; after a crash or power cut a partition's committed offset is the
  one before or after the commit in flight, never anything else. Offsets are
  kept per group in a durable table (``_core.DurableTable``), not in a topic:
  see docs/ARCHITECTURE.md ("Consumer groups") for why.
* **Assignment.** ``range`` and ``roundrobin`` are eager (every member gives
  up everything at each rebalance, as Kafka's); ``cooperative-sticky`` moves
  only the partitions that must move while the others keep being consumed.
  Static members (``group_instance_id``) keep their place for
  ``session_timeout_ms`` after they leave or die, and get their partitions
  back when they return, without moving anyone else's.
* **Failover in milliseconds**, not after a session timeout: the process's
  group watcher thread wakes on the dead process's pidfd.

Entry points: ``Log.consumer(topics, group=...)`` (a ``GroupConsumer``) and
``Log.groups()``, ``describe_group()``, ``delete_group()``,
``reset_group_offsets()``. Layout and formats: docs/FORMAT.md, "Consumer groups".
"""
from ._admin import GroupDescription, MemberDescription, delete_group, describe_group, list_groups, reset_group_offsets
from ._assignors import STRATEGIES
from ._consumer import ConsumerGroupMetadata, GroupConsumer
from ._names import group_folder, validate_group_name

__all__ = ["ConsumerGroupMetadata", "GroupConsumer", "GroupDescription", "MemberDescription", "STRATEGIES",
           "delete_group", "describe_group", "group_folder", "list_groups", "reset_group_offsets",
           "validate_group_name"]
