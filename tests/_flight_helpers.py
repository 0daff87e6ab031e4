"""A ``tidelog serve --flight`` server in another process, for the Flight tests
(imported as ``_flight_helpers``; conftest puts this folder on sys.path)."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 30


class ServerProcess:
    """``python -m tidelog.cli serve PATH --flight 127.0.0.1:0 ARGS...``; the
    location it bound is read from its first line of output."""

    def __init__(self, path, *args: str, host: str = "127.0.0.1"):
        self.path = str(path)
        self.proc = subprocess.Popen([sys.executable, "-m", "tidelog.cli", "serve", self.path, "--flight",
                                      f"{host}:0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self._line(START_TIMEOUT_S)
        if "Arrow Flight on " not in line:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"the server did not start: {line!r} {err.decode()!r}")
        self.location = line.split("Arrow Flight on ", 1)[1].split(" ", 1)[0]

    def _line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                return self.proc.stdout.readline().decode()
            if self.proc.poll() is not None:
                break
        return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
        """Sends ``sig`` and waits: (exit status, stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing runs after it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=30)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem): a self-signed EC certificate for localhost and
    127.0.0.1, valid for a day (made by the openssl command)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key
