"""``tidelog demo``, the README's first command, on a small scale."""
from tidelog.demo import run_demo


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert run_demo(200_000, 100, 16_384, str(tmp_path / "d"), 20_000) == 0
    out = capsys.readouterr().out
    assert "ingest (durable, fsync mode)" in out
    assert "consumer group 'dashboard', 2 members: 200,000 rows" in out and "lag 0" in out
    assert "tidelog/SQLite durable ingest" in out
