"""``serve()``: a FlightServer until SIGTERM or SIGINT, then a graceful stop
(what ``tidelog serve`` runs)."""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable

from ._server import DEFAULT_LOCATION, FlightServer

logger = logging.getLogger("tidelog.flight")

#: How long a stop waits for calls in progress (a DoPut whose client sends
#: nothing more, a DoGet whose client stopped reading) before giving up on them.
DEFAULT_SHUTDOWN_GRACE_S = 10.0


def serve(log_or_path: Any, location: Any = DEFAULT_LOCATION, *, ready: Callable[[FlightServer], None] | None = None,
          shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S, **options: Any) -> bool:
    """Serves ``log_or_path`` over Arrow Flight (``FlightServer(log_or_path,
    location, **options)``) until SIGTERM or SIGINT, then stops: new calls are
    refused, streams end at their next batch, the log is flushed and closed.
    ``ready(server)`` is called once the server accepts calls.

    Returns True after a clean stop; False when calls were still in progress
    ``shutdown_grace_s`` seconds after the signal (or a second signal came):
    the log is then flushed (every append made so far is durable, every
    acknowledged batch was already) but not closed, and the caller should exit
    the process (``os._exit``) rather than wait for those calls. Signals are
    handled when called from the main thread.
    """
    server = FlightServer(log_or_path, location, **options)
    stop = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    try:
        try:
            if ready is not None:
                ready(server)
            while not stop.wait(1.0):
                pass
        except BaseException:
            server.close()
            raise
        logger.info("tidelog flight: stopping")
        stop.clear()  # a second signal: stop waiting for the calls in progress
        failure: list[BaseException] = []

        def close() -> None:
            try:
                server.close()
            except BaseException as e:  # noqa: BLE001 - raised by the main thread below
                failure.append(e)

        closer = threading.Thread(target=close, name="tidelog flight shutdown", daemon=True)
        closer.start()
        waited = 0.0
        while closer.is_alive() and waited < shutdown_grace_s and not stop.is_set():
            closer.join(0.1)
            waited += 0.1
        if not closer.is_alive():
            if failure:
                raise failure[0]
            return True
        logger.warning("tidelog flight: calls still in progress after %.0f s; flushing the log and leaving them",
                       waited)
        if not server.log.read_only:
            server.log.flush()
        return False
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
