"""The log cleaner thread: one per read-write Log that has topics."""
from __future__ import annotations

import logging
import threading
import weakref

from ._cleaner import Cleaner, DEFAULT_DEDUPE_BUFFER_BYTES

logger = logging.getLogger("tidelog.compaction")

#: How often the thread looks for cleanable partitions (Kafka's
#: log.cleaner.backoff.ms is 15 s; one machine's cleaner can look more often).
CLEANER_INTERVAL_S = 1.0


class CleanerThread:
    """Runs cleaner passes over the compacted topics of one Log in the
    background, and applies topic configuration changes that other handles
    made (``alter_topic``). Passes run one partition at a time; a partition
    another process's cleaner holds is skipped until the next round.

    Thread-safe: start()/stop() from any thread; stop() waits for the pass in
    progress to abandon its rewrite (nothing it did not swap in is kept)."""

    def __init__(self, log, dedupe_buffer_bytes: int = DEFAULT_DEDUPE_BUFFER_BYTES,
                 interval_s: float = CLEANER_INTERVAL_S):
        self._log = weakref.ref(log)
        self._stop = threading.Event()
        self._interval_s = interval_s
        self._dedupe_buffer_bytes = dedupe_buffer_bytes
        self._thread = threading.Thread(target=self._run, name=f"tidelog-cleaner {log.path}", daemon=True)
        self._cleaner: Cleaner | None = None
        self.passes = 0
        self.errors = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            log = self._log()
            if log is None or log._closed:
                return
            self._round(log)
            del log

    def _round(self, log) -> None:
        cleaner = self._cleaner
        for topic in list(log._topics.values()):
            if self._stop.is_set():
                return
            if topic.closed:
                continue
            try:
                log._refresh_topic_config(topic)
            except Exception as e:  # noqa: BLE001 - a damaged topic.json must not stop the others
                self._note(f"topic {topic.name!r}: reading its configuration failed: {e}")
                continue
            if not topic.config.compacted:
                continue
            if cleaner is None:  # (its map only once a topic is compacted)
                cleaner = self._cleaner = Cleaner(self._dedupe_buffer_bytes, should_stop=self._stop.is_set)
            for p in range(topic.partitions):
                if self._stop.is_set() or topic.closed:
                    return
                try:
                    if cleaner.clean(topic, p, wait=False) is not None:
                        self.passes += 1
                except Exception as e:  # noqa: BLE001 - damage, a full disk: retried next round
                    if topic.closed or self._stop.is_set():
                        return
                    self._note(f"topic {topic.name!r} partition {p}: cleaner pass failed: {e}")

    def _note(self, message: str) -> None:
        self.errors += 1
        if message != self.last_error:
            logger.warning("tidelog cleaner: %s", message)
        self.last_error = message
