"""A private Mosquitto broker: ``mosquitto -c <its own config>`` on a free
loopback port, for the demo, the benchmarks and the tests.

Anonymous clients, no persistence, and limits chosen by the caller: the
in-flight window (``max_inflight_messages``, how many QoS 1 messages the
broker sends before it waits for PUBACKs) and the queue of each persistent
subscriber (``max_queued_messages``, beyond which mosquitto drops messages; 0:
unbounded). It is not a production broker: it listens on 127.0.0.1 only.

    with PrivateMosquitto(max_inflight=1000, max_queued=0) as broker:
        bridge = MqttBridge(log, topic="readings", broker=broker.url, subscribe="sensors/#", ...)

``find_mosquitto()`` says where the program is (or None); the constructor
raises ``BrokerError`` with the reason when it is missing or exits at start.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

from ...errors import BrokerError

START_TIMEOUT_S = 10.0
# Debian and Homebrew install the daemon outside a normal user's PATH.
_SBIN = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The path of the ``mosquitto`` program, or None when it is not installed."""
    return shutil.which("mosquitto") or next((p for p in _SBIN if os.path.exists(p)), None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_port_free(port: int) -> None:
    """Another listener on the port would answer for a mosquitto that failed to bind it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as mosquitto does: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise BrokerError(f"cannot start mosquitto on port {port}: {e.strerror}") from None


class PrivateMosquitto:
    """A running ``mosquitto`` of its own (see the module docstring).

    ``directory``: where its config and log go (a temporary folder, removed at
    ``stop()``, when None). ``port``: a fixed port (restarting a broker on the
    same one); a free one when None. ``log``: keep mosquitto's log in
    ``directory``/mosquitto.log (``log_path``) rather than discarding it."""

    def __init__(self, directory: str | os.PathLike | None = None, *, max_inflight: int = 1000,
                 max_queued: int = 1_000_000, port: int | None = None, log: bool = True):
        exe = find_mosquitto()
        if exe is None:
            raise BrokerError("the mosquitto program is not installed (Debian: apt-get install mosquitto)")
        if port is not None:
            _check_port_free(port)
        self._own_directory = directory is None
        self.directory = tempfile.mkdtemp(prefix="tidelog-mosquitto-") if directory is None else os.fspath(directory)
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.directory, "mosquitto.log") if log else None
        conf = os.path.join(self.directory, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"max_inflight_messages {max_inflight}\nmax_queued_messages {max_queued}\n"
                    + (f"log_dest file {self.log_path}\n" if log else "log_dest none\n"))
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=self._stderr, stderr=subprocess.STDOUT)
        try:
            self._wait_for_port()
        except BaseException:
            self.kill()
            raise

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                if self.proc.poll() is None:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        status = self.proc.poll()
        self._stderr.seek(0)
        said = self._stderr.read()[-2000:].decode(errors="replace").strip().replace("\n", " | ")
        how = f"exited with status {status}" if status is not None else f"not listening after {START_TIMEOUT_S:g} s"
        raise BrokerError(f"mosquitto did not start on port {self.port}: {how}" + (f": {said}" if said else ""))

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; removes its own temporary folder."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()

    def kill(self) -> None:
        """SIGKILL (a broker crash)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close()

    def _close(self) -> None:
        self._stderr.close()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivateMosquitto:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["PrivateMosquitto", "find_mosquitto", "free_port"]
