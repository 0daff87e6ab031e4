"""``Projection`` (what a read model does with events) and ``ProjectionRunner``
(how events reach it, exactly once).

Exactly once: the runner applies each batch of events in ONE transaction of
the read model's database, and the same transaction moves the projection's
checkpoint (table ``tidelog_checkpoints(projection, position)``: the next
store position to read). Either both commit or neither does, whatever kills
the process, so a restart resumes at the stored position and no event is
applied twice or skipped. The transaction also re-reads the checkpoint before
applying: a runner that finds it moved (another runner of the same projection,
or a rebuild) rolls back and resumes from the stored position instead.

Handlers: ``@applies(EventClass)`` (or a stored type name), taking
``(self, db, event)`` or ``(self, db, event, record)`` - ``db`` is the read
model's connection inside the batch's transaction (it refuses ``commit()`` and
``rollback()``: the runner owns the transaction), ``event`` the decoded event,
``record`` the ``RecordedEvent``. Event types without a handler are skipped.

Concurrency: a runner object serves one projection; ``start()`` runs it on a
thread of its own, ``run_forever()`` / ``catch_up()`` in the calling thread (not
both at once). Its ``position``, ``lag`` and ``wait_for`` may be called from any
thread. Runners of the same projection in several processes are safe (see
above) but only one makes progress at a time.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Any, ClassVar, Sequence

from ._domain_errors import ProjectionError
from ._handlers import HandlerTable, register_classes, type_name_of
from ._upcasting import Upcasters

CHECKPOINT_TABLE = "tidelog_checkpoints"


class Projection:
    """Base class of projections (see the module docstring).

    Class attributes a subclass may set:

    - ``name``: the checkpoint's key (default: the class's ``__name__``);
      change it and the projection starts again from position 0.
    - ``event_types`` / ``stream_prefixes``: the events to read (the store
      filters them). Empty ``event_types`` (the default) means the types the
      handlers name (classes by their serializer type name), plus the source
      types of the upcasters; set ``read_all_types = True`` to read every
      type instead (needed when a handler takes a base class of the events).
    - ``upcasters``: an ``Upcasters`` applied before decoding.

    Override ``setup(db)`` to create the read model (idempotently: ``CREATE
    TABLE IF NOT EXISTS``; it runs at every start) and ``drop(db)`` to remove it
    (``rebuild()`` calls drop, then setup, then replays from 0).
    """

    name: ClassVar[str | None] = None
    event_types: ClassVar[Sequence[str]] = ()
    stream_prefixes: ClassVar[Sequence[str]] = ()
    read_all_types: ClassVar[bool] = False
    upcasters: ClassVar[Upcasters | None] = None
    _handlers: ClassVar[HandlerTable]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = HandlerTable(cls)
        if cls.upcasters is not None and not isinstance(cls.upcasters, Upcasters):
            cls.upcasters = Upcasters(cls.upcasters)  # a mapping (type, from_version) -> function

    @property
    def projection_name(self) -> str:
        return type(self).name or type(self).__name__

    def setup(self, db: Any) -> None:
        """Creates the read model's tables (idempotently)."""

    def drop(self, db: Any) -> None:
        """Removes the read model's tables (for ``rebuild``)."""

    def event_filter(self, serializer: Any) -> Any:
        """The store's EventFilter for this projection."""
        from . import EventFilter

        types: list[str] = list(type(self).event_types)
        if not types and not type(self).read_all_types:
            table = type(self)._handlers
            types = sorted({*table.names(), *(type_name_of(serializer, c) for c in table.classes()),
                            *(self.upcasters.source_types() if self.upcasters else ())})
        return EventFilter(stream_prefixes=list(type(self).stream_prefixes), event_types=types)

    def handle(self, db: Any, record: Any, serializer: Any) -> None:
        """Decodes ``record`` and runs its handler, if any."""
        type_name, data = record.type, record.data
        if self.upcasters:
            type_name, data, _ = self.upcasters.upcast_stored(type_name, data, record.metadata)
        table = type(self)._handlers
        if not table.classes() and type_name not in table.by_name:
            return  # handlers by name only, none for this type: not even decoded
        event = serializer.deserialize(type_name, data)
        hit = table.lookup(event, type_name)
        if hit is None:
            return
        method, arity = hit
        if arity >= 3:
            getattr(self, method)(db, event, record)
        else:
            getattr(self, method)(db, event)


Projection._handlers = HandlerTable(Projection)


class _InTransaction:
    """The read model's connection as handlers see it: everything but ending
    the runner's transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        object.__setattr__(self, "_conn", conn)

    def __getattr__(self, name: str) -> Any:
        # (sqlite3's executescript() commits the open transaction first: refused too)
        if name in ("commit", "rollback", "close", "begin", "executescript"):
            raise ProjectionError(f"a projection handler may not call {name}(): the runner commits each batch "
                                  "together with its checkpoint")
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)

    @property
    def connection(self) -> Any:
        """The underlying connection (ending its transaction breaks exactly-once)."""
        return self._conn


class _Moved(Exception):
    """The stored checkpoint is not where this runner thought (another runner
    or a rebuild moved it): carries the stored position."""

    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


class ProjectionRunner:
    """Feeds a projection from a store into a read model, exactly once.

    Subclasses bind a database: ``SqliteProjectionRunner``,
    ``DuckDBProjectionRunner``. ``batch_size``: events per transaction at most;
    ``poll_interval_s``: how long a wait for new events lasts before the runner
    checks whether it was asked to stop.
    """

    placeholder = "?"

    def __init__(self, store: Any, projection: Projection, *, batch_size: int = 500,
                 poll_interval_s: float = 0.25, serializer: Any = None) -> None:
        if not isinstance(projection, Projection):
            raise TypeError(f"projection must be a Projection instance, not {projection!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size is an int >= 1, not {batch_size!r}")
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.poll_interval_s = float(poll_interval_s)
        self.serializer = serializer if serializer is not None else store.serializer
        register_classes(self.serializer, type(projection)._handlers.classes())
        self.name = projection.projection_name
        self._filter = projection.event_filter(self.serializer)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = threading.Lock()  # held while a loop runs in this process
        self._progress = threading.Condition()
        self._position: int | None = None  # the last checkpoint this process committed or read
        self.error: BaseException | None = None

    # ------------------------------------------------- database (subclasses)
    def _connect(self) -> Any:
        """A new connection for the runner's loop."""
        raise NotImplementedError

    def connect(self) -> Any:
        """A new connection for queries of the read model."""
        raise NotImplementedError

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def _commit(self, conn: Any) -> None:
        conn.execute("COMMIT")

    def _rollback(self, conn: Any) -> None:
        try:
            conn.execute("ROLLBACK")
        except Exception:  # no transaction left to roll back (the database ended it on the error)
            pass

    def _close(self, conn: Any) -> None:
        conn.close()

    # ------------------------------------------------- checkpoint
    def _ensure_tables(self, conn: Any) -> None:
        self._begin(conn)
        try:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} "
                         "(projection VARCHAR PRIMARY KEY, position BIGINT NOT NULL)")
            self.projection.setup(_InTransaction(conn))
            self._commit(conn)
        except BaseException:
            self._rollback(conn)
            raise

    def _read_checkpoint(self, conn: Any) -> int:
        p = self.placeholder
        row = conn.execute(f"SELECT position FROM {CHECKPOINT_TABLE} WHERE projection = {p}",
                           [self.name]).fetchone()
        return int(row[0]) if row else 0

    def _write_checkpoint(self, conn: Any, position: int) -> None:
        p = self.placeholder
        conn.execute(f"INSERT INTO {CHECKPOINT_TABLE} (projection, position) VALUES ({p}, {p}) "
                     "ON CONFLICT (projection) DO UPDATE SET position = excluded.position", [self.name, position])

    def _apply(self, conn: Any, records: list[Any], position: int, new_position: int) -> None:
        """One transaction: check the checkpoint is ``position``, apply
        ``records``, move the checkpoint to ``new_position``."""
        self._begin(conn)
        try:
            stored = self._read_checkpoint(conn)
            if stored != position:
                raise _Moved(stored)
            db = _InTransaction(conn)
            for record in records:
                try:
                    self.projection.handle(db, record, self.serializer)
                except Exception as e:
                    e.add_note(f"projection {self.name!r}: the event at position {record.position} "
                               f"({record.type!r} in {record.stream_id!r}) failed; its batch was rolled back and "
                               f"the checkpoint stays at {position}")
                    raise
            self._write_checkpoint(conn, new_position)
            self._commit(conn)
        except BaseException:
            self._rollback(conn)
            raise
        with self._progress:
            self._position = new_position
            self._progress.notify_all()

    # ------------------------------------------------- the loop
    def _loop(self, until: int | None) -> None:
        """Applies events until stopped, or (``until``) once the checkpoint
        reaches that position."""
        conn = self._connect()
        try:
            self._ensure_tables(conn)
            position = self._read_checkpoint(conn)
            with self._progress:
                self._position = position
                self._progress.notify_all()
            while not self._stop.is_set():
                if until is not None and position >= until:
                    return
                sub = self.store.subscribe(from_position=position, filter=self._filter)
                try:
                    position = self._follow(conn, sub, position, until)
                except _Moved as moved:
                    position = moved.position
                    with self._progress:
                        self._position = position
                        self._progress.notify_all()
                else:
                    return
                finally:
                    sub.close()
        finally:
            self._close(conn)

    def _follow(self, conn: Any, sub: Any, position: int, until: int | None) -> int:
        wait_s = self.poll_interval_s if until is None else min(self.poll_interval_s, 0.05)
        while not self._stop.is_set():
            first = sub.poll(timeout=wait_s)
            if first is None:
                # Caught up. Positions the filter skipped still move the
                # checkpoint, so that lag reads 0 when idle.
                reached = int(sub.position)
                if reached > position:
                    self._apply(conn, [], position, reached)
                    position = reached
                if until is not None and position >= until:
                    return position
                continue
            batch = [first]
            while len(batch) < self.batch_size:
                record = sub.poll(timeout=0)
                if record is None:
                    break
                batch.append(record)
            new_position = batch[-1].position + 1
            self._apply(conn, batch, position, new_position)
            position = new_position
            if until is not None and position >= until:
                return position
        return position

    def _run_guarded(self, until: int | None) -> None:
        if not self._running.acquire(blocking=False):
            raise ProjectionError(f"projection {self.name!r} is running in this process already")
        try:
            self.error = None
            self._loop(until)
        finally:
            self._running.release()

    # ------------------------------------------------- public
    def catch_up(self) -> int:
        """Applies every event up to the store's end as of now, in the calling
        thread; returns the checkpoint reached."""
        self._stop.clear()
        self._run_guarded(int(self.store.end_position))
        assert self._position is not None
        return self._position

    def run_forever(self, *, handle_signals: bool = True) -> None:
        """Follows the store until ``stop()`` (from another thread or a signal
        handler) - for a process of its own (``python -m ...`` or a
        multiprocessing target). ``handle_signals``: when called in the main
        thread, SIGTERM and SIGINT stop it cleanly (after the current batch)."""
        self._stop.clear()
        previous: dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: self._stop.set())
        try:
            self._run_guarded(None)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def start(self) -> "ProjectionRunner":
        """Runs the projection on a daemon thread of this process."""
        if self._thread is not None and self._thread.is_alive():
            raise ProjectionError(f"projection {self.name!r} is started already")
        self._stop.clear()
        self.error = None

        def target() -> None:
            try:
                self._run_guarded(None)
            except BaseException as e:  # kept for stop()/wait_for() to raise
                self.error = e
                with self._progress:
                    self._progress.notify_all()

        self._thread = threading.Thread(target=target, name=f"tidelog-projection-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stops the loop after its current batch (waits for the thread). Raises
        ``ProjectionError`` from the error that stopped the thread, if one did."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            self._thread = None
        self._raise_error()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise ProjectionError(f"projection {self.name!r} stopped on an error: {self.error!r}") from self.error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "ProjectionRunner":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wait_for(self, position: int, timeout: float | None = None) -> bool:
        """Waits until this process's runner has committed a checkpoint >=
        ``position`` (e.g. ``write_result.positions[-1] + 1``, to read your own
        writes). False on timeout; ``ProjectionError`` if the runner failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self._position is None or self._position < position:
                self._raise_error()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._progress.wait(0.5 if left is None else min(left, 0.5))
        return True

    @property
    def position(self) -> int:
        """The committed checkpoint (the next store position to apply), read
        from the database (so it sees runners in other processes)."""
        conn = self.connect()
        try:
            try:
                return self._read_checkpoint(conn)
            except Exception:  # no checkpoint table yet: nothing applied
                return 0
        finally:
            conn.close()

    @property
    def lag(self) -> int:
        """How many store positions the checkpoint is behind the store's end."""
        return max(0, int(self.store.end_position) - self.position)

    def rebuild(self) -> int:
        """Drops the read model and the checkpoint, then replays from position
        0 up to the store's end (a running thread is stopped first and started
        again after). Returns the checkpoint reached."""
        was_running = self.running
        if was_running:
            self.stop()
        conn = self._connect()
        try:
            self._ensure_tables(conn)
            self._begin(conn)
            try:
                self.projection.drop(_InTransaction(conn))
                conn.execute(f"DELETE FROM {CHECKPOINT_TABLE} WHERE projection = {self.placeholder}", [self.name])
                self._commit(conn)
            except BaseException:
                self._rollback(conn)
                raise
        finally:
            self._close(conn)
        reached = self.catch_up()
        if was_running:
            self.start()
        return reached
