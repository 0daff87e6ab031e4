"""The type stubs python/tidelog/_core.pyi and python/tidelog/kafka/_fastpath.pyi
agree with the compiled tidelog._core and tidelog.kafka._fastpath
(mypy's stubtest: every public name, signature and class attribute), so the stub
cannot drift from src/ unnoticed. The allowlist (.ci/stubtest-allowlist.txt)
holds only what Cython adds by itself."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_core_stub_matches_the_module(tmp_path):
    pytest.importorskip("mypy")
    allowlist = os.path.join(ROOT, ".ci", "stubtest-allowlist.txt")
    # Both Cython modules in one run, as .ci/run does (the allowlist names both).
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "tidelog._core", "tidelog.kafka._fastpath",
                        "--allowlist", allowlist,
                        "--mypy-config-file", os.devnull], capture_output=True, text=True, cwd=tmp_path,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
