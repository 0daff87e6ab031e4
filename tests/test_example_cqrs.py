"""examples/cqrs_bank.py runs: commands -> aggregate -> events -> projection -> queries."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "cqrs_bank.py")


def test_cqrs_bank_example(tmp_path):
    spec = importlib.util.spec_from_file_location("cqrs_bank", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cqrs_bank"] = module
    try:
        spec.loader.exec_module(module)
        out = module.main(str(tmp_path))
    finally:
        sys.modules.pop("cqrs_bank", None)
    assert out["alice"] == 60 * 100 - 2500 and out["bob"] == 2500 and out["total"] == 6000
    assert out["richest"] == [("alice", 3500), ("bob", 2500)]
    assert out["lag"] == 0 and out["snapshot_version"] == 49


def test_cqrs_bank_example_as_a_script(tmp_path):
    proc = subprocess.run([sys.executable, EXAMPLE, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "refused" in proc.stdout and "'total': 6000" in proc.stdout
