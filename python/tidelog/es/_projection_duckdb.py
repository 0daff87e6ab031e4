"""``DuckDBProjectionRunner``: a projection into a DuckDB database file.

DuckDB is optional: it is imported when a runner is made, and its absence is
an ``ImportError`` naming the package to install.

DuckDB lets one process open a database file for writing, and within it one
database instance shared by every ``duckdb.connect(path)`` of that process
(same configuration). So query the read model from the runner's process, with
``runner.connect()``; other processes can read the file once the runner is
stopped. Each batch is one DuckDB transaction (optimistic: a conflict with
another connection's write raises at commit, rolls the batch back and stops
the runner with that error).

Concurrency: as ``ProjectionRunner``.
"""
from __future__ import annotations

import os
from typing import Any

from ._projection import Projection, ProjectionRunner


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as e:
        raise ImportError("DuckDBProjectionRunner needs the duckdb package: pip install duckdb") from e
    return duckdb


class DuckDBProjectionRunner(ProjectionRunner):
    """Runs ``projection`` into the DuckDB database at ``path``."""

    def __init__(self, store: Any, projection: Projection, path: str | os.PathLike, **kwargs: Any) -> None:
        self._duckdb = _duckdb()
        path = os.fspath(path)
        if path in ("", ":memory:") or path.startswith(":memory:"):
            raise ValueError("a projection's DuckDB database is a file (queries and restarts must see it)")
        super().__init__(store, projection, **kwargs)
        self.path = path

    def _connect(self) -> Any:
        return self._duckdb.connect(self.path)

    def connect(self) -> Any:
        """A new connection (to this process's instance of the database) for queries."""
        return self._duckdb.connect(self.path)

    def _begin(self, conn: Any) -> None:
        conn.begin()

    def _commit(self, conn: Any) -> None:
        conn.commit()

    def _rollback(self, conn: Any) -> None:
        try:
            conn.rollback()
        except Exception:  # no transaction left (DuckDB aborted it on the error)
            pass
