"""Exports: a topic's rows as Parquet, CSV or Arrow IPC files, or appended to
an Apache Iceberg table; once, or incrementally and exactly once.

Contract:

* **What is exported.** The rows of every partition in offset order, as
  ``topic.scan`` reads them: ``start_offset``/``end_offset`` (one-off file
  exports), ``start_time``/``end_time`` and ``columns`` select as they do
  there. Each run reads up to the end offsets it captured when it started; a
  writer appending meanwhile is not waited for (open the log read-only beside
  it). Nothing in the log is changed.
* **Bounded memory.** Rows stream frame by frame into the files; memory holds
  less than one row group per hive folder (``row_group_size`` rows, 1 Mi by
  default) within a 256 MiB budget over all folders, whatever the size of the
  topic.
* **Files** (``export_files``, ``Topic.to_parquet``, ``tidelog export``):
  ``<out>/[<key>=<value>/...]p<partition>-<first>-<end>.<ext>``, a file per
  partition and hive folder for the offsets ``[first, end)`` a run covered
  (20-digit offsets; ``-<n>`` before the extension when a folder got more than
  one). ``partition_by``: None, ``"date"`` (``date=YYYY-MM-DD`` from the UTC
  date of the topic's timestamp column, unless the topic has a column named
  ``date``), a column name or a tuple of them (integer, string, boolean or
  date columns; their values go to the folder names, as hive partitioning
  does, and nulls to ``__HIVE_DEFAULT_PARTITION__``). pyarrow
  (``pyarrow.dataset.dataset(out, partitioning="hive")``), DuckDB
  (``read_parquet('out/**/*.parquet', hive_partitioning=true)``) and Polars
  (``scan_parquet(..., hive_partitioning=True)``) read the folder.
  Parquet and Arrow IPC files are zstd-compressed unless told otherwise
  (``compression=``; pyarrow's default for Parquet would be snappy).
* **One-off file exports** write into a new or empty folder: the files are
  built in a hidden folder beside it, made durable, and renamed into place
  with one rename, so after a crash at any moment the folder holds the whole
  export or nothing (a dead run's hidden folder is removed by the next
  export to the same place).
* **Incremental file exports** (``incremental=True``, ``--incremental``):
  each run exports exactly the rows appended since the last run that
  completed: no row twice, none missed, whenever a run is killed. A run takes
  an exclusive lock on the folder (a second run gets ``LogLockedError``),
  deletes what a dead run left (temporary files, and data files past the
  checkpoint), writes its files under temporary names, fsyncs them, renames
  them to their final names, fsyncs the folders, and commits by replacing the
  checkpoint ``_tidelog_export.json`` atomically: per partition, the offset
  the export has reached, with the topic's identity, the format and the
  selection. A run killed before that commit is redone by the next run; one
  killed after it is not repeated. A run against another topic, format or selection is refused
  with ``InvalidArgumentError``, nothing written; a topic deleted and
  created again under the same name counts as another one when its folder
  has a new inode or it holds fewer offsets than the export. Readers listing the folder while
  a run commits may see part of that run's files (Iceberg has no such gap).
  Offsets that retention deleted before a run could read them are reported
  (``ExportResult.lost``, a ``UserWarning``) and skipped.
* **Iceberg** (``export_iceberg``, ``--format iceberg``): every run appends
  one snapshot whose summary records, per partition, the offset the table has
  reached (``tidelog.end-offsets``) with the topic's identity; data and
  offsets commit in one catalog commit, and the next run resumes from the
  newest snapshot that carries them. A run killed before its commit leaves
  only unreferenced data files (Iceberg's orphan files); a concurrent run's
  commit fails with ``IntegrityError``, nothing committed. pyiceberg is
  optional (``pip install 'tidelog[iceberg]'``): without it
  ``export_iceberg`` raises ``ImportError`` naming the package to install.
  Iceberg (format version 2) has no nanosecond timestamps: they are stored as
  microseconds.

The test suite slows file writing with the environment variable
``TIDELOG_EXPORT_TEST_SLEEP_S`` (seconds after each row group) so that its
SIGKILL tests hit runs mid-write; it is a test hook, not an option.

Entry points: ``Topic.to_parquet``, ``export_files``, ``export_iceberg``,
``tidelog export`` (tidelog.cli.export). Formats: docs/FORMAT.md, "Export
checkpoints".
"""
from ._checkpoint import NAME as CHECKPOINT_NAME
from ._files import DEFAULT_COMPRESSION, export_files
from ._iceberg import export_iceberg
from ._result import ExportResult, NoProgress
from ._spec import DEFAULT_ROW_GROUP_SIZE, FILE_FORMATS

__all__ = ["CHECKPOINT_NAME", "DEFAULT_COMPRESSION", "DEFAULT_ROW_GROUP_SIZE", "ExportResult", "FILE_FORMATS",
           "NoProgress", "export_files", "export_iceberg"]
