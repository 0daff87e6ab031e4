"""Opening a log folder, and its topics."""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import io
import json
import logging
import os
import re
import shutil
import uuid
import warnings
import weakref
from typing import Any

import pyarrow as pa

from . import _core, _gaps
from ._topic import (RECORD_SCHEMA, RECORD_SCHEMAS, TOPIC_FORMAT_VERSION, TOPIC_FORMAT_VERSIONS_READ, Topic, TopicConfig,
                     _schema_from_text, _schema_to_text, normalize_cleanup_policy, topic_format_version)
from .errors import (
    CorruptionError,
    CorruptionWarning,
    InvalidArgumentError,
    LogLockedError,
    NotALogFolderError,
    InvalidTopicNameError,
    LogNotFoundError,
    LogClosedError,
    ReadOnlyError,
    TidelogError,
    TopicExistsError,
    UnknownTopicError,
)

logger = logging.getLogger("tidelog")

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_META = "topic.json"


def validate_topic_name(name: Any) -> str:
    """Kafka's rule: 1-249 characters of [A-Za-z0-9._-], not "." or ".."."""
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidTopicNameError(
            f"invalid topic name {name!r}: use 1-249 characters of [A-Za-z0-9._-], not '.' or '..'"
        )
    return name


def _fsync_dir(path: str) -> None:
    """Makes the names created, renamed or removed in folder ``path`` durable:
    the Python side's one directory fsync (others import it; native code has
    ``fsync_directory`` in file_handle.h)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: str, data: bytes) -> None:
    """temp file, fsync, rename, fsync the directory."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


#: The settings Log.alter_topic changes (Kafka's topic-level dynamic configs that apply here).
ALTERABLE_TOPIC_CONFIGS = ("retention_ms", "retention_bytes", "cleanup_policy", "min_compaction_lag_ms",
                           "delete_retention_ms", "min_cleanable_dirty_ratio")


def _meta_identity(path: str) -> tuple[int, int] | None:
    """What changes whenever topic.json is replaced (inode, mtime), or None if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _log_folder(path: Any, read_only: bool) -> str:
    """The absolute log folder, after checking that it is one tidelog may use:
    a log (it has LOCK or topics/), a missing or empty folder (a writer creates
    the log there), and nothing else: a writer never adopts a folder of other files."""
    raw = os.fspath(path)
    if isinstance(raw, bytes):
        raw = os.fsdecode(raw)
    if not raw:
        raise InvalidArgumentError("the log path is empty")
    if "\0" in raw:
        raise InvalidArgumentError("the log path contains a NUL byte")
    folder = os.path.abspath(raw)
    topics = os.path.join(folder, "topics")
    if os.path.lexists(topics) and not os.path.isdir(topics):
        raise CorruptionError(f"{topics} is not a folder: {folder} is not a usable tidelog log")
    is_log = os.path.isdir(topics) or os.path.lexists(os.path.join(folder, "LOCK"))
    if is_log:
        return folder
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise NotALogFolderError(f"{folder} is a file, not a folder: tidelog.open takes the log's folder")
    if read_only:
        raise LogNotFoundError(f"no tidelog log in {folder}")
    if os.path.isdir(folder) and os.listdir(folder):
        raise LogNotFoundError(f"{folder} holds other files and no tidelog log: a log needs its own folder")
    return folder


_UNSET: Any = object()  # "not given": Kafka's names may supply the setting

#: How long closing a log (or the interpreter exiting) waits for its producers'
#: pending records to be delivered.
PRODUCER_CLOSE_TIMEOUT_S = 30.0


def _leave_groups(members: weakref.WeakSet) -> None:
    """Group members leave their groups (committing, with auto-commit on)."""
    for m in list(members):
        try:
            m.close()
        except Exception as e:  # noqa: BLE001 - the others must still close
            logger.warning("tidelog: a consumer group member could not leave its group at close: %s", e)


def _close_all(topics: dict, native, producers: weakref.WeakSet, members: weakref.WeakSet, cleaners: list) -> None:
    _leave_groups(members)
    while cleaners:
        cleaners.pop().stop()
    # Producers first, as kafka-python's and confluent's close(): their pending
    # records are delivered (or fail their futures at once), not dropped.
    for p in list(producers):
        try:
            p.close(PRODUCER_CLOSE_TIMEOUT_S)
        except Exception as e:  # the records' futures carry the failure
            logger.warning("tidelog: a producer could not deliver its records at close: %s", e)
    for t in list(topics.values()):
        t._close()  # Log -> Topic: the owner ends what it opened
    native.close()


def _read_topic_meta(path: str, name: str) -> tuple[TopicConfig, pa.Schema, dict]:
    """A topic's config and schema from its metadata file, and the file's
    parsed JSON; CorruptionError naming the file for anything that is not what
    create_topic wrote."""
    with io.open(path, "rb") as f:
        raw = f.read()
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        version = meta.get("format_version")
        if version not in TOPIC_FORMAT_VERSIONS_READ or type(version) is not int:
            if isinstance(version, int) and version > max(TOPIC_FORMAT_VERSIONS_READ):
                raise TidelogError(f"topic {name!r} has metadata format {version}, "
                                   f"this tidelog reads up to {max(TOPIC_FORMAT_VERSIONS_READ)}")
            raise ValueError(f"format_version {version!r}")
        stored = meta["config"]
        if not isinstance(stored, dict):
            raise ValueError("config is not an object")
        fields = set(TopicConfig.__dataclass_fields__)
        config = TopicConfig(**{k: v for k, v in stored.items() if k in fields})
        if config.name != name:
            raise ValueError(f"its name {config.name!r} is not its folder's")
        schema = _schema_from_text(meta["schema"])
        if config.records and schema not in RECORD_SCHEMAS:
            raise ValueError("a byte-record topic with another schema")
        config.validate(schema)
    except TidelogError as e:
        if isinstance(e, (CorruptionError,)) or type(e) is TidelogError:
            raise
        raise CorruptionError(f"topic metadata {path} is damaged: {e}") from e
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError, pa.ArrowException) as e:
        raise CorruptionError(f"topic metadata {path} is damaged: {type(e).__name__}: {e}") from e
    return config, schema, meta


def _lift_topic_meta(path: str, meta: dict) -> None:
    """Rewrites a version-1 topic.json (``meta``, as read) as the current
    version (atomically), so that builds from before frame version 2 refuse the
    topic once this writer may have appended version-2 frames to it (FORMAT.md §10)."""
    meta = {**meta, "format_version": TOPIC_FORMAT_VERSION}
    _write_atomically(path, json.dumps(meta, indent=1).encode())


class Log:
    """A log folder: topics of partitioned, durable record batches.

    Any number of processes (and handles) may open a folder read-write at once
    and append to the same topics; ``exclusive=True`` keeps it to one handle;
    any number may open it with ``read_only=True``. Every handle sees the
    others' topics and appends without reopening.
    """

    def __init__(self, path: str | os.PathLike, read_only: bool = False, exclusive: bool = False):
        self.path = _log_folder(path, bool(read_only))
        self.read_only = bool(read_only)
        self.exclusive = bool(exclusive) and not self.read_only
        try:
            self._native = _core.NativeLog(self.path, self.read_only, self.exclusive)
        except LogLockedError as e:
            mine = os.getpid() in e.pids
            hint = ("this process already has it open: use that Log object or close it first"
                    if mine else "open it with read_only=True to read along")
            raise LogLockedError(f"{e}; {hint}", e.pid, self.path, e.pids) from None
        self._topics: dict[str, Topic] = {}
        self._closed = False
        self.recovery_report: list[dict] = []
        # Damage skipped by reads with on_corrupt="skip" (log.stats()).
        self._skipped = {"corrupt_ranges_skipped": 0, "corrupt_offsets_skipped": 0}
        self._topics_dir = os.path.join(self.path, "topics")
        # compaction.CleanerThread, started with the first compacted topic (a
        # list: the finalizer stops it before the partitions close).
        self._cleaners: list = []
        self._producers: weakref.WeakSet = weakref.WeakSet()
        self._members: weakref.WeakSet = weakref.WeakSet()  # group consumers: they leave their groups at close
        self._stores: dict = {}  # name -> tidelog.es.EventStore open on this handle
        # Also runs at interpreter exit (weakref.finalize's atexit): producers still
        # open then are flushed, so a forgotten flush() loses nothing.
        self._finalizer = weakref.finalize(self, _close_all, self._topics, self._native, self._producers,
                                          self._members, self._cleaners)
        # (trash/, what a crashed create or delete left, is emptied by the
        # session's first handle: native/log_session.cpp.)
        try:
            if os.path.isdir(self._topics_dir):
                for name in sorted(os.listdir(self._topics_dir)):
                    if os.path.exists(os.path.join(self._topics_dir, name, _META)):
                        self._load_topic(name)
        except BaseException:
            self._finalizer()
            raise
        for event in self.recovery_report:
            _log_recovery_event(event)

    # --------------------------------------------------------------- lifecycle
    @property
    def clean_shutdown(self) -> bool:
        """Whether the previous session (every read-write handle, in every
        process) closed this log cleanly: no recovery scan was needed."""
        return self._native.was_clean

    def close(self) -> None:
        """Flushes, trims and closes every partition and marks the shutdown clean."""
        if self._closed:
            return
        for store in list(self._stores.values()):
            store.close()  # (saves its index snapshot while the topics are open)
        _leave_groups(self._members)  # while the topics can still be looked up
        self._stop_cleaner()  # before the partitions it reads close
        self._closed = True
        self._finalizer()

    def __enter__(self) -> "Log":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self.path!r} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"log {self.path!r} is open read-only")

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "exclusive" if self.exclusive else "read-write"
        return f"<tidelog.Log {self.path!r} {mode} topics={sorted(self._topics)}>"

    # ------------------------------------------------------------------ topics
    def _load_topic(self, name: str) -> Topic:
        directory = os.path.join(self._topics_dir, name)
        meta_path = os.path.join(directory, _META)
        config, schema, meta = _read_topic_meta(meta_path, name)
        if meta["format_version"] < TOPIC_FORMAT_VERSION and not self.read_only:  # 1 -> 2
            _lift_topic_meta(meta_path, meta)
        topic = Topic(self, config, schema, directory, self._native, self._note_skipped)
        for i in range(topic.partitions):
            acknowledged = None
            for event in topic.partition(i).recovery_events():
                if event["kind"] == "lost":
                    if acknowledged is None:
                        acknowledged = _gaps.read_acknowledged(os.path.join(directory, str(i)))
                    # a gap `tidelog verify --repair` recorded: known, not news
                    event["acknowledged"] = _gaps.covered(acknowledged, event["first_offset_dropped"],
                                                          event["end_offset"])
                self.recovery_report.append({"topic": name, "partition": i, **event})
        topic._meta_identity = _meta_identity(meta_path)
        self._topics[name] = topic
        self._start_cleaner_if_needed(topic)
        return topic

    def create_topic(
        self,
        name: str,
        schema: pa.Schema | None = None,
        partitions: int = 1,
        *,
        key: str | None = None,
        timestamp: str | None = None,
        durability: str = "fsync",
        compression: str = "none",
        compression_level: int = 3,
        retention_ms: int | None = None,
        retention_bytes: int | None = None,
        segment_bytes: int = 256 * 2**20,
        segment_ms: int | None = None,
        flush_interval_ms: int = 100,
        cleanup_policy: str = "delete",
        min_compaction_lag_ms: int = 0,
        delete_retention_ms: int = 86_400_000,
        min_cleanable_dirty_ratio: float = 0.5,
    ) -> Topic:
        """Creates a topic. Without a schema it holds byte records (timestamp,
        key, value, headers) partitioned by key, as Kafka's.

        ``cleanup_policy``: ``"delete"`` (retention_ms/retention_bytes remove
        old segments), ``"compact"`` (the log cleaner keeps the latest record
        per key: see ``tidelog.compaction``) or ``"compact,delete"`` (both);
        ``min_compaction_lag_ms``, ``delete_retention_ms`` and
        ``min_cleanable_dirty_ratio`` mean what Kafka's settings of those names do."""
        self._check_writable()
        validate_topic_name(name)
        records = schema is None
        if records:
            schema = RECORD_SCHEMA
            key = "key" if key is None else key
            timestamp = "timestamp" if timestamp is None else timestamp
        elif not isinstance(schema, pa.Schema):
            raise TypeError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
        if len(set(schema.names)) != len(schema.names):
            raise InvalidArgumentError(f"schema has duplicate column names: {schema.names}")
        config = TopicConfig(
            name=name, partitions=partitions, key=key, timestamp=timestamp, durability=durability,
            flush_interval_ms=flush_interval_ms, compression=compression, compression_level=compression_level,
            retention_ms=retention_ms, retention_bytes=retention_bytes, segment_bytes=segment_bytes,
            segment_ms=segment_ms, records=records, cleanup_policy=normalize_cleanup_policy(cleanup_policy),
            min_compaction_lag_ms=min_compaction_lag_ms, delete_retention_ms=delete_retention_ms,
            min_cleanable_dirty_ratio=min_cleanable_dirty_ratio,
        )
        config.validate(schema)
        directory = os.path.join(self._topics_dir, name)
        if os.path.exists(os.path.join(directory, _META)):
            raise TopicExistsError(f"topic {name!r} already exists")
        if os.path.exists(directory):
            self._discard(directory)  # a create that crashed before its metadata landed (earlier versions)
        meta = {
            "format_version": topic_format_version(config),
            "config": {k: getattr(config, k) for k in TopicConfig.__dataclass_fields__},
            "schema": _schema_to_text(schema),
            "schema_text": str(schema),
        }
        # All or nothing: the topic is built aside (in trash/, which the next
        # writer's open removes) and renamed into place whole; if its partitions
        # then fail to open (no space left for their first files), it is removed
        # again. Segments allocate nothing until their first append (FORMAT.md §2).
        os.makedirs(self._topics_dir, mode=0o755, exist_ok=True)
        trash = os.path.join(self.path, "trash")
        os.makedirs(trash, mode=0o755, exist_ok=True)
        staging = os.path.join(trash, f"creating.{uuid.uuid4().hex}")  # (not the name: 249 + more > NAME_MAX)
        try:
            os.mkdir(staging, 0o755)
            for p in range(config.partitions):
                os.mkdir(os.path.join(staging, str(p)), 0o755)
            _write_atomically(os.path.join(staging, _META), json.dumps(meta, indent=1).encode())
            _fsync_dir(trash)
            # Atomic across processes: a rename onto a folder that exists (another
            # handle created the topic meanwhile) fails, and only one create wins.
            os.rename(staging, directory)
        except BaseException as e:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(e, OSError) and e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise TopicExistsError(f"topic {name!r} already exists") from None
            raise
        _fsync_dir(self._topics_dir)
        _fsync_dir(trash)
        try:
            topic = Topic(self, config, schema, directory, self._native, self._note_skipped)
        except BaseException:  # the topic closed and released what it had opened
            self._discard(directory)
            raise
        topic._meta_identity = _meta_identity(os.path.join(directory, _META))
        self._topics[name] = topic
        self._start_cleaner_if_needed(topic)
        return topic

    def alter_topic(self, name: str, **config: Any) -> dict:
        """Changes the retention and compaction settings of an existing topic
        (Kafka's incremental alter configs): ``retention_ms``,
        ``retention_bytes``, ``cleanup_policy``, ``min_compaction_lag_ms``,
        ``delete_retention_ms``, ``min_cleanable_dirty_ratio``. The change is
        durable (topic.json is replaced atomically) and reaches every handle of
        the log: this one at once, the others' cleaners and retention within
        about a second. Returns the topic's new configuration. Unknown or
        unalterable settings, and invalid values, raise InvalidArgumentError
        and change nothing."""
        self._check_writable()
        topic = self.topic(name)
        if b"tidelog.es.identity" in (topic.schema.metadata or {}):
            # Retention or compaction would remove events under the stores' indexes.
            raise InvalidArgumentError(f"topic {name!r} holds an event store, which keeps every event: its "
                                       f"retention and cleanup policy cannot change")
        unknown = sorted(set(config) - set(ALTERABLE_TOPIC_CONFIGS))
        if unknown:
            raise InvalidArgumentError(f"alter_topic cannot change {', '.join(map(repr, unknown))}: the settings it "
                                       f"changes are {', '.join(ALTERABLE_TOPIC_CONFIGS)}")
        if "cleanup_policy" in config:
            try:
                config["cleanup_policy"] = normalize_cleanup_policy(config["cleanup_policy"])
            except (TypeError, ValueError) as e:
                raise InvalidArgumentError(str(e)) from None
        meta_path = os.path.join(topic.directory, _META)
        # One read-modify-write at a time across processes: a lock on the topic folder.
        fd = os.open(topic.directory, os.O_RDONLY | os.O_DIRECTORY)
        topic._config_lock.acquire()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stored, schema, meta = _read_topic_meta(meta_path, name)
            try:
                new = dataclasses.replace(stored, **config)
                new.validate(schema)
            except (TypeError, ValueError) as e:
                raise InvalidArgumentError(f"alter_topic({name!r}): {e}") from None
            meta = {**meta, "format_version": topic_format_version(new, meta["format_version"]),
                    "config": {k: getattr(new, k) for k in TopicConfig.__dataclass_fields__}}
            _write_atomically(meta_path, json.dumps(meta, indent=1).encode())
            topic._reconfigure(new, _meta_identity(meta_path))
        finally:
            os.close(fd)  # (releases the flock)
            topic._config_lock.release()
        self._start_cleaner_if_needed(topic)
        return dataclasses.asdict(new)

    def _refresh_topic_config(self, topic: Topic) -> None:
        """Takes over a configuration another handle stored (alter_topic), if any."""
        meta_path = os.path.join(topic.directory, _META)
        if _meta_identity(meta_path) in (None, topic._meta_identity):
            return
        with topic._config_lock:  # not interleaved with this handle's alter_topic
            identity = _meta_identity(meta_path)
            if identity is None or identity == topic._meta_identity:
                return
            config, _schema, _meta = _read_topic_meta(meta_path, topic.name)
            if _meta_identity(meta_path) == identity:  # (else another alter landed meanwhile: next round)
                topic._reconfigure(config, identity)

    def _start_cleaner_if_needed(self, topic: Topic) -> None:
        """A read-write handle with a topic runs the log cleaner thread: it
        applies configurations other handles altered, and cleans the compacted
        topics."""
        if self.read_only or self._cleaners or self._closed:
            return
        from .compaction import CleanerThread

        cleaner = CleanerThread(self)
        self._cleaners.append(cleaner)
        cleaner.start()

    def _stop_cleaner(self) -> None:
        while self._cleaners:
            self._cleaners.pop().stop()

    def _discard(self, directory: str) -> None:
        """Removes a topic folder: renamed into trash/ first (atomic), then deleted."""
        trash = os.path.join(self.path, "trash")
        os.makedirs(trash, mode=0o755, exist_ok=True)
        doomed = os.path.join(trash, f"deleting.{uuid.uuid4().hex}")
        os.rename(directory, doomed)
        _fsync_dir(self._topics_dir)
        shutil.rmtree(doomed, ignore_errors=True)
        _fsync_dir(trash)

    def topic(self, name: str) -> Topic:
        """An existing topic. Finds topics other handles created since this one
        opened, and notices topics deleted (or deleted and created again) since."""
        self._check_open()
        t = self._topics.get(name)
        if t is not None:
            # (read-write handles look at most every 5 ms: producers call this per send)
            if t._still_there() if self.read_only else t._still_there_recently():
                return t
            self._forget(name)
        validate_topic_name(name)
        if os.path.exists(os.path.join(self._topics_dir, name, _META)):
            return self._load_topic(name)
        raise UnknownTopicError(f"no topic {name!r} in {self.path}")

    def __getitem__(self, name: str) -> Topic:
        return self.topic(name)

    def __contains__(self, name: str) -> bool:
        return name in self.topics()

    def topics(self) -> list[str]:
        """Names of the topics, sorted."""
        self._check_open()
        for name, t in list(self._topics.items()):
            if not t._still_there():
                self._forget(name)
        if os.path.isdir(self._topics_dir):
            for name in os.listdir(self._topics_dir):
                if name not in self._topics and os.path.exists(os.path.join(self._topics_dir, name, _META)):
                    try:
                        self._load_topic(name)
                    except (UnknownTopicError, FileNotFoundError):
                        pass  # deleted by another handle meanwhile
        return sorted(self._topics)

    def _forget(self, name: str) -> None:
        """A topic another handle deleted: closed and dropped (Arrow data
        already read from it stays valid)."""
        t = self._topics.pop(name)
        t._close()

    def delete_topic(self, name: str) -> None:
        """Deletes a topic and its files. Arrow data already read from it stays valid."""
        self._check_writable()
        topic = self.topic(name)
        # Every handle's appends fail from here on (UnknownTopicError), before
        # the files go: none can be acknowledged into a deleted folder.
        for i in range(topic.partitions):
            topic.partition(i).native.mark_deleted()
        topic._close(release=True)
        del self._topics[name]
        try:
            self._discard(topic.directory)
        except FileNotFoundError:
            pass  # another handle deleted it too

    # ------------------------------------------------------ producing/consuming
    def producer(self, config: dict | None = None, *, linger_ms: Any = _UNSET, batch_bytes: Any = _UNSET,
                 acks: Any = _UNSET, max_record_bytes: Any = _UNSET, **kafka):
        """A thread-safe producer of byte records (see README, "Producing and consuming").

        Records gather per partition in native buffers; a batch is appended when it
        reaches ``batch_bytes`` (default 1 MiB), after ``linger_ms`` (default 5; 0:
        every send appends at once), or on ``flush()``. ``acks="durable"`` (default)
        resolves futures once the group commit covers the batch, ``"written"`` once
        it is in the page cache.

        Kafka's names work too: a confluent-kafka style dict
        (``log.producer({"linger.ms": 5, "acks": "all"})``) or kafka-python keywords
        (``batch_size=``, ``acks="all" | 1 | 0``, ``max_request_size=``); see
        docs/kafka.md for the table.
        """
        from ._kafka_config import producer_settings
        from ._producer import ProducerEngine

        self._check_writable()
        given = {k: v for k, v in (("linger_ms", linger_ms), ("batch_bytes", batch_bytes), ("acks", acks),
                                   ("max_record_bytes", max_record_bytes)) if v is not _UNSET}
        settings = producer_settings(config, {**given, **kafka})
        linger_ms = settings.get("linger_ms", 5)
        batch_bytes = settings.get("batch_bytes", 1 << 20)
        acks = settings.get("acks", "durable")
        max_record_bytes = settings.get("max_record_bytes", 1 << 20)
        if isinstance(linger_ms, bool) or not isinstance(linger_ms, (int, float)):
            raise TypeError(f"linger_ms must be a number, not {type(linger_ms).__name__}")
        if not 0 <= linger_ms < 3_600_000:  # also rejects nan
            raise InvalidArgumentError("linger_ms must be in [0, 1 hour)")
        for name, value in (("batch_bytes", batch_bytes), ("max_record_bytes", max_record_bytes)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if batch_bytes < 1:
            raise InvalidArgumentError("batch_bytes must be >= 1")
        if not 1 <= max_record_bytes < 2**31:
            raise InvalidArgumentError("max_record_bytes must be in [1, 2 GiB)")
        engine = ProducerEngine(self, self._native, linger_ms, batch_bytes, acks)
        producer = _core.Producer(engine, float(linger_ms), int(batch_bytes), acks, int(max_record_bytes))
        self._producers.add(producer)
        return producer

    def event_store(self, name: str, *, serializer: Any = None):
        """The event store ``name`` on this log (``tidelog.es.EventStore``),
        created when missing: event streams with expected versions, a
        per-stream index, subscriptions, Arrow scans. One object per name and
        handle (thread-safe); other processes open their own. ``serializer``
        encodes domain objects appended (default ``tidelog.es.JsonSerializer()``)."""
        self._check_open()
        from .es import EventStore
        from .es._store import validate_store_name

        store = self._stores.get(validate_store_name(name))
        if store is not None:
            if serializer is not None and serializer is not store.serializer:
                raise InvalidArgumentError(f"event store {name!r} is already open on this log with another "
                                           f"serializer")
            return store
        store = EventStore(self, name, serializer)
        self._stores[name] = store
        return store

    def _forget_store(self, store: Any) -> None:
        if self._stores.get(store.name) is store:
            del self._stores[store.name]

    def consumer(self, topics=None, start: Any = _UNSET, group: Any = _UNSET, on_corrupt: Any = _UNSET,
                 **kafka):
        """A consumer of every partition of ``topics`` (or use ``assign``).

        ``start``: "earliest" (default) or "latest": where partitions without a
        position begin, and where a seek out of range goes (Kafka's
        auto.offset.reset). ``on_corrupt``: "raise" (default; CorruptionError at
        damaged data) or "skip" (step over it with a CorruptionWarning, counted in
        ``stats()``).

        ``group="billing"`` makes it a member of that consumer group (a
        ``tidelog.groups.GroupConsumer``): the group's members, in any thread
        or process, share the topics' partitions and resume from the group's
        committed offsets. Group settings, with kafka-python's names:
        ``partition_assignment_strategy`` ("range", "roundrobin",
        "cooperative-sticky"), ``group_instance_id`` (static membership),
        ``enable_auto_commit`` (True), ``auto_commit_interval_ms`` (5000),
        ``max_poll_interval_ms`` (300000), ``session_timeout_ms`` (45000; for
        static members), ``client_id``, and the rebalance callbacks
        ``on_assign``/``on_revoke``/``on_lost`` (``fn(consumer, partitions)``,
        confluent-kafka's) or ``listener`` (an object with
        ``on_partitions_assigned``/``_revoked``/``_lost``). See docs/groups.md.

        ``wait``: how a poll with nothing to read waits. "block" (default):
        sleeps on the log's futex, no CPU, woken by a publish in any process.
        "spin": busy-polls the shared publish counter (no system call; the
        lowest latency, and a core at 100 % while it waits). "spin-then-block":
        spins ``spin_us`` microseconds (default 50), then sleeps. Async
        consumers always block (their wait runs on a helper thread).

        Kafka's names work too: ``log.consumer({"auto.offset.reset": "latest"})``
        (a confluent-kafka style dict in place of ``topics``; then ``subscribe()``)
        or kafka-python keywords (``auto_offset_reset=``); see docs/kafka.md.
        """
        from ._consumer import Consumer
        from ._kafka_config import consumer_settings

        self._check_open()
        config = None
        if isinstance(topics, dict):
            config, topics = topics, None
        given = {k: v for k, v in (("start", start), ("group", group), ("on_corrupt", on_corrupt)) if v is not _UNSET}
        settings = consumer_settings(config, {**given, **kafka})
        common = dict(start=settings.pop("start", "earliest"), on_corrupt=settings.pop("on_corrupt", "raise"),
                      wait=settings.pop("wait", "block"), spin_us=settings.pop("spin_us", None),
                      notifier=self._native)
        name = settings.pop("group", None)
        if name is None:
            return Consumer(self, topics, **common)
        from . import groups

        self._check_writable()  # a member writes the group's state and offsets
        folder = groups.group_folder(self, groups.validate_group_name(name))
        member = groups.GroupConsumer(self, topics, name, folder, **common, **settings)
        self._members.add(member)
        return member

    def async_producer(self, **kwargs):
        """An asyncio producer: ``await p.send(...)``, ``await p.flush()``. Same options as producer()."""
        from ._aio import AsyncProducer

        return AsyncProducer(self.producer(**kwargs))

    def async_consumer(self, topics=None, **settings):
        """An asyncio consumer: ``async for rec in c``, ``await c.poll_batch(...)``;
        the same settings as ``consumer()``."""
        from ._aio import AsyncConsumer

        if settings.get("wait", "block") != "block":
            raise InvalidArgumentError("async_consumer() waits on the event loop: wait= must be 'block'")
        return AsyncConsumer(self.consumer(topics, **settings))

    # ----------------------------------------------------------------- groups
    def groups(self) -> list[str]:
        """The names of the consumer groups kept in this log."""
        from . import groups

        self._check_open()
        return groups.list_groups(self)

    def describe_group(self, name: str):
        """A ``tidelog.groups.GroupDescription``: state, assignor, generation,
        members (id, instance id, client id, host, pid, assignment, owned),
        committed offsets and lag per partition."""
        from . import groups

        self._check_open()
        return groups.describe_group(self, name)

    def delete_group(self, name: str) -> None:
        """Deletes a consumer group and its offsets; ``GroupNotEmptyError``
        while it has live members, ``UnknownGroupError`` when there is none."""
        from . import groups

        self._check_open()
        groups.delete_group(self, name)

    def reset_group_offsets(self, name: str, to: Any, topics=None) -> dict[tuple[str, int], int]:
        """Sets a group's committed offsets durably: ``to`` = "earliest",
        "latest", a timestamp, or {(topic, partition): offset}; refused while
        the group has live members (``GroupNotEmptyError``)."""
        from . import groups

        self._check_open()
        return groups.reset_group_offsets(self, name, to, topics)

    # ------------------------------------------------------------------- misc
    def flush(self) -> None:
        """Makes every append so far durable (all topics, all modes)."""
        self._check_writable()
        self._native.flush()

    def wait_durable(self, ticket: int) -> None:
        """Waits (the GIL released) until the group commit has made durable
        everything up to ``ticket``, as ``Partition.append_frames`` returns
        it (0: nothing to wait for)."""
        self._check_open()
        self._native.wait_durable(ticket)

    # The log-wide wake-up notifier: a counter that every publish (an append
    # becoming visible, in any process) bumps. Read it, check your state, then
    # wait for it to move: no wake-up is lost in between.
    def notify_sequence(self) -> int:
        """The notifier's counter now; pass it to ``wait_notify``."""
        return self._native.notify_sequence()

    def wait_notify(self, sequence: int, timeout: float | None = None) -> bool:
        """Sleeps without CPU (the GIL released) until the counter differs
        from ``sequence`` (something was published since it was read) or
        ``wake_waiters()`` is called (True), or ``timeout`` seconds pass
        (False; None: no limit). Returns at once if it moved already; callers
        check their state again on return (wake-ups may be spurious)."""
        return self._native.wait_notify(sequence, timeout)

    def spin_notify(self, sequence: int, seconds: float) -> bool:
        """As ``wait_notify``, but busy-polls the counter for up to
        ``seconds`` (the GIL released, no system call: a core at 100 %) and
        returns False when nothing was published meanwhile. What consumers
        with ``wait="spin"`` use."""
        return self._native.spin_notify(sequence, seconds)

    def wake_waiters(self) -> None:
        """Wakes every ``wait_notify`` of this log, in every process, at once
        (they return and re-check their state): how a waiting thread is
        stopped, as when an async consumer's wait is cancelled, and how a
        consumer group's members learn that the group changed."""
        self._native.wake_waiters()

    def stats(self) -> dict:
        """Counters since open: appends, frames, bytes, fdatasyncs, flushes, ..."""
        self._check_open()
        return {**self._native.stats(), **self._skipped}

    def _note_skipped(self, topic: str, partition: int, skipped: list[dict]) -> None:
        """Reads with on_corrupt="skip" report the damage they stepped over here."""
        for d in skipped:
            self._skipped["corrupt_ranges_skipped"] += 1
            self._skipped["corrupt_offsets_skipped"] += max(d["end_offset"] - d["start_offset"], 0)
            warnings.warn(
                f"skipped damaged data in topic {topic!r} partition {partition}: offsets "
                f"{d['start_offset']}..{d['end_offset'] - 1} ({d['reason']}; {d['bytes']} bytes at position "
                f"{d['position']} of {d['segment']})",
                CorruptionWarning,
                stacklevel=5,
            )


def _log_recovery_event(event: dict) -> None:
    where = f"tidelog recovery: {event['topic']} partition {event['partition']}"
    kind = event.get("kind", "cut")
    if kind == "index" or event.get("acknowledged"):
        logger.info("%s: %s (%s)", where, event["reason"], event["file"])
    elif kind in ("damaged", "lost"):
        logger.warning(
            "%s: offsets %d..%d %s: %s (%d damaged bytes kept at position %d of %s; see `tidelog verify`)",
            where, event["first_offset_dropped"], event["end_offset"] - 1,
            "are damaged" if kind == "damaged" else "were lost", event["reason"], event["bytes_damaged"],
            event["position"], event["file"],
        )
    else:
        logger.warning(
            "%s: dropped %d bytes of a torn, unacknowledged tail at position %d of %s (from offset %d): %s",
            where, event["bytes_dropped"], event["position"], event["file"], event["first_offset_dropped"],
            event["reason"],
        )


def open(path: str | os.PathLike, read_only: bool = False, exclusive: bool = False) -> Log:  # noqa: A001
    """Opens (creating if missing) the log folder at ``path``, read-write.

    Any number of processes on the machine may open one folder read-write at
    once. ``exclusive=True`` refuses to share it (``LogLockedError`` for this
    open if other handles have it, for theirs while this one has it).
    ``read_only=True`` opens an existing log without taking part in writing;
    it sees every handle's appends as they become visible.
    """
    return Log(path, read_only=read_only, exclusive=exclusive)
