"""The version: one source (pyproject.toml), exposed as tidelog.__version__, with a CHANGELOG entry."""
from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

import tidelog

ROOT = Path(__file__).resolve().parent.parent
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


def test_version_is_the_installed_distributions():
    assert tidelog.__version__ == importlib.metadata.version("tidelog")
    assert SEMVER.match(tidelog.__version__), tidelog.__version__


def test_version_is_pyprojects():
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("no pyproject.toml beside the tests")
    assert tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"] == tidelog.__version__


def test_changelog_has_an_entry_for_this_version():
    changelog = ROOT / "CHANGELOG.md"
    if not changelog.exists():
        pytest.skip("no CHANGELOG.md beside the tests")
    headings = re.findall(r"^## \[([^\]]+)\]", changelog.read_text(encoding="utf-8"), re.M)
    assert tidelog.__version__ in headings, f"CHANGELOG.md has no '## [{tidelog.__version__}]' section"
