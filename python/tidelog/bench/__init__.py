"""The tidelog benchmark suite: ``tidelog bench`` (or ``python -m tidelog.bench``).

* core.py       - the Contender and Workload interfaces, data, helpers
* workloads.py  - the six workloads (and the registry of all ten)
* targets.py    - the workloads behind target benchmarks (records, copies, damage)
* many_processes.py - many processes on one log (spawned workers, _child.py)
* events.py     - the event store (tidelog.es) against the eventsourcing library
* contenders/   - tidelog, the physical limits, the peers (SQLite, DuckDB, LMDB, the eventsourcing
                  library, Apache Kafka through confluent-kafka and its Java producer)
* kafka/        - a real single-node Kafka broker from Maven Central jars, started once per run
* runner.py     - runs them, medians, spreads, ratios; JSON
* table.py      - the comparison table and headline ratios
* plots.py      - matplotlib figures
* render.py     - the Markdown section of docs/BENCHMARKS.md from a results JSON
"""
from .core import Contender, Metric, Skip, Target, Workload
from .runner import Options, load_json, run_suite, write_json

__all__ = ["Contender", "Metric", "Options", "Skip", "Target", "Workload", "load_json", "run_suite", "write_json"]
