"""The domain helpers' public names (aggregates, repositories, projections),
re-exported by tidelog.es."""
from ._aggregate import Aggregate
from ._domain_errors import (AggregateNotFoundError, ProjectionError, SnapshotWarning, UnknownEventError,
                             UpcastError)
from ._handlers import applies
from ._projection import Projection, ProjectionRunner
from ._projection_duckdb import DuckDBProjectionRunner
from ._projection_sqlite import SqliteProjectionRunner
from ._repository import Repository
from ._snapshots import SNAPSHOT_SCHEMA, Snapshot
from ._upcasting import Upcasters

__all__: list[str] = [
    "Aggregate", "AggregateNotFoundError", "DuckDBProjectionRunner", "Projection", "ProjectionError",
    "ProjectionRunner", "Repository", "SNAPSHOT_SCHEMA", "Snapshot", "SnapshotWarning", "SqliteProjectionRunner",
    "UnknownEventError", "UpcastError", "Upcasters", "applies",
]
