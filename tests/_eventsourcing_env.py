"""A fresh log folder per test for the eventsourcing-library tests (tidelog.eventsourcing)."""
from __future__ import annotations

import gc
import os
import shutil
import tempfile
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

import tidelog.eventsourcing as tes

#: Environment keys a test sets in os.environ (the application-level cases read them there).
ENV_KEYS = ("PERSISTENCE_MODULE", "TIDELOG_PATH")


def close_logs_under(folder: str) -> None:
    """Closes the shared logs of folders under ``folder`` that a test left open
    (applications and runners the library's cases do not close)."""
    gc.collect()  # unreferenced factories and recorders give their claims back
    root = os.path.realpath(folder) + os.sep
    with tes._LOGS_LOCK:
        left = [(k, v) for k, v in tes._LOGS.items() if k.startswith(root)]
        for k, _ in left:
            del tes._LOGS[k]
    for _, shared in left:
        shared.log.close()


class TidelogEnvMixin:
    """setUp: a new temp log folder in ``self.log_path``, named in os.environ with
    PERSISTENCE_MODULE; tearDown: closes the factories made by ``make_factory`` and any
    log left open, restores os.environ, removes the folder."""

    def setUp(self) -> None:
        self._tmp_dir = tempfile.mkdtemp(prefix="tidelog-es-")
        self.log_path = os.path.join(self._tmp_dir, "log")
        self._saved_env = {k: os.environ.get(k) for k in ENV_KEYS}
        os.environ["PERSISTENCE_MODULE"] = "tidelog.eventsourcing"
        os.environ["TIDELOG_PATH"] = self.log_path
        self._factories: list[InfrastructureFactory[Any]] = []
        self.before_base_setup()
        super().setUp()  # type: ignore[misc]

    def before_base_setup(self) -> None:
        """Runs after the folder exists, before the library case's setUp."""

    def tearDown(self) -> None:
        try:
            super().tearDown()  # type: ignore[misc]
        finally:
            for f in self._factories:
                f.close()
            self._factories.clear()
            close_logs_under(self._tmp_dir)
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def make_env(self, name: str = "", **extra: str) -> Environment:
        return Environment(name, {"PERSISTENCE_MODULE": "tidelog.eventsourcing",
                                  "TIDELOG_PATH": self.log_path, **extra})

    def make_factory(self, name: str = "", **extra: str) -> tes.TidelogFactory:
        f = InfrastructureFactory.construct(self.make_env(name, **extra))
        assert isinstance(f, tes.TidelogFactory)
        self._factories.append(f)
        return f
