"""Benchmarks of tidelog: run with ``python -m pytest benches -q --benchmark-only``
(``python benches/report.py`` runs them and prints a PASS/FAIL table).

``pyproject.toml`` sets ``testpaths = ["tests"]``, so a plain ``pytest`` or
``pytest tests`` never collects this folder.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))


def _scratch_dir():
    """A scratch folder on the same file system as the system temp dir
    (override with TIDELOG_BENCH_DIR), removed afterwards: some benchmarks
    write gigabytes."""
    root = os.environ.get("TIDELOG_BENCH_DIR") or None
    if root:
        os.makedirs(root, exist_ok=True)
    path = tempfile.mkdtemp(prefix="tidelog-bench-", dir=root)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bench_dir():
    yield from _scratch_dir()


@pytest.fixture(scope="module")
def module_bench_dir():
    yield from _scratch_dir()
