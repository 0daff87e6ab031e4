"""The ``tidelog`` command as a new user meets it: help, --version, ``python -m
tidelog``, help with examples for every verb, one-line errors with the
documented exit codes, plain output without rich, verify on a missing folder,
bench that writes nothing unasked and fits the page. Every call is a real
subprocess."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _helpers import assert_cli_error, run_tidelog

import tidelog

VERBS = [["topics"], ["topics", "list"], ["topics", "describe"], ["topics", "create"], ["topics", "alter"],
         ["topics", "delete"], ["topics", "compact"], ["produce"], ["consume"], ["groups"], ["groups", "list"],
         ["groups", "describe"], ["groups", "reset-offsets"], ["groups", "delete"], ["stats"], ["export"],
         ["verify"], ["serve"], ["bench"], ["demo"]]


def test_no_arguments_prints_help():
    proc = run_tidelog()
    assert proc.returncode == 0 and proc.stderr == ""
    out = proc.stdout
    for verb in ("topics", "produce", "consume", "groups", "stats", "export", "verify", "serve", "bench", "demo"):
        assert f"    {verb} " in out, verb
    assert "exit codes:" in out and "130" in out and "examples:" in out


def test_version():
    proc = run_tidelog("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"tidelog {tidelog.__version__}"


def test_python_dash_m_forms():
    for module in ("tidelog", "tidelog.cli"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith("tidelog "), (module, proc.stderr)


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_has_help_with_examples(verb):
    proc = run_tidelog(*verb, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "example" in proc.stdout and "tidelog " + verb[0] in proc.stdout.split("example", 1)[1]


def test_a_verb_group_alone_prints_its_help():
    proc = run_tidelog("groups")
    assert proc.returncode == 0 and "reset-offsets" in proc.stdout and "examples:" in proc.stdout


@pytest.mark.parametrize("args, fragments", [
    (["nosuchverb"], ["invalid choice", "nosuchverb"]),
    (["consume"], ["required"]),
    (["consume", "d", "t", "--format", "yaml"], ["--format", "yaml"]),
    (["consume", "d", "t", "-n", "0"], ["0 is below 1"]),
    (["consume", "d", "t", "--from", "soonish"], ["--from", "soonish"]),
    (["produce", "d", "t", "--on-error", "maybe"], ["--on-error"]),
    (["produce", "d", "t", "--batch-bytes", "lots"], ["not a size"]),
    (["topics", "create"], ["required"]),
    (["groups", "reset-offsets", "d", "g"], ["one of the arguments"]),
])
def test_bad_arguments_are_one_line_exit_2(args, fragments):
    line = assert_cli_error(run_tidelog(*args), 2, *fragments)
    assert "--help" in line


@pytest.mark.parametrize("verb", [["topics", "list"], ["topics", "describe"], ["topics", "delete"],
                                  ["topics", "alter"], ["produce"], ["consume"], ["groups", "list"], ["stats"]])
def test_a_missing_log_folder_is_named_and_not_created(tmp_path, verb):
    missing = tmp_path / "nope"
    extra = {"describe": ["t"], "delete": ["t"], "alter": ["t", "--set", "retention_ms=1"], "produce": ["t"],
             "consume": ["t"]}.get(verb[-1], [])
    assert_cli_error(run_tidelog(*verb, missing, *extra, input=""), 2, f"{missing} does not exist")
    assert not missing.exists()
    (tmp_path / "plain").mkdir()
    assert_cli_error(run_tidelog(*verb, tmp_path / "plain", *extra, input=""), 2, "not a tidelog log folder")
    (tmp_path / "file").write_text("x")
    assert_cli_error(run_tidelog(*verb, tmp_path / "file", *extra, input=""), 2, "is a file")


def test_verify_of_a_missing_folder_says_it_does_not_exist(tmp_path):
    assert_cli_error(run_tidelog("verify", tmp_path / "missing"), 2, "does not exist")
    (tmp_path / "file").write_text("x")
    assert_cli_error(run_tidelog("verify", tmp_path / "file"), 2, "is a file")
    (tmp_path / "plain").mkdir()
    assert_cli_error(run_tidelog("verify", tmp_path / "plain"), 2, "not a tidelog log folder")


def test_verify_of_a_log(tmp_path):
    with tidelog.open(tmp_path / "data") as log:
        with log.producer() as p:
            p.send(log.create_topic("t").name, value=b"v", key=b"k")
    proc = run_tidelog("verify", tmp_path / "data")
    assert proc.returncode == 0 and "no damage" in proc.stdout


def _without_rich(tmp_path) -> dict:
    """An environment where ``import rich`` fails, as on an install without it."""
    shadow = tmp_path / "shadow"
    (shadow / "rich").mkdir(parents=True)
    (shadow / "rich" / "__init__.py").write_text("raise ImportError('rich is not installed (test)')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}


def test_no_rich_means_plain_output_not_a_crash(tmp_path):
    env = _without_rich(tmp_path)
    data = tmp_path / "data"
    assert run_tidelog("topics", "create", data, "t", env=env).returncode == 0
    assert run_tidelog("produce", data, "t", input="a\nb\n", env=env).returncode == 0
    for args in (["topics", "list", data], ["stats", data], ["consume", data, "t", "--format", "table"]):
        proc = run_tidelog(*args, env=env)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert "TOPIC" in run_tidelog("topics", "list", data, env=env).stdout


def test_bench_writes_no_file_unasked_and_fits_100_columns(tmp_path):
    scratch = tmp_path / "scratch"
    proc = run_tidelog("bench", "--smoke", "-w", "ingest", "-c", "tidelog", "os.write", "--dir", scratch, "--quiet",
                       cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch"]  # no tidelog-bench.json
    widths = [len(line) for line in proc.stdout.splitlines()]
    assert widths and max(widths) <= 100, max(widths)
    assert "vs limit" in proc.stdout and "tidelog" in proc.stdout
    out = tmp_path / "r.json"
    proc = run_tidelog("bench", "--smoke", "-w", "ingest", "-c", "os.write", "--dir", scratch, "--quiet",
                       "--json", out, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and out.exists()
