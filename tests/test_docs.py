"""The documentation's examples run as written, and the documentation talks to users.

Which blocks run: every fenced block opened with exactly ```python in README.md and in
the user-guide pages (docs/index.md, docs/guide/*.md). Blocks meant as shell commands or
output are fenced as ``` (no language), ```console or ```text and are not run.

How they run (the convention): the blocks of one file run in the order they appear, in
one fresh interpreter (a subprocess) whose working directory is a new, empty temporary
folder, and they share one namespace. So a block may use what the blocks above it in
the same file made (names, a log folder such as ``data/``), as a reader going down the
page would; it never sees anything from another file. A failure names the file and the
line of the block's opening fence.

The examples use small data, so the whole module takes a few seconds.

The other tests here check that README.md and the guide link only to files in the
repository and that nothing a user reads (README, docs/, the benchmark suite's strings)
speaks of the project's internal work items instead of features.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TIMEOUT_S = 120

FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$")


def example_files() -> list[Path]:
    """The Markdown files whose ```python blocks are examples to run (those that have any)."""
    files = [ROOT / "README.md", DOCS / "index.md"]
    files += sorted((DOCS / "guide").glob("*.md"))
    return [f for f in files if f.exists() and python_blocks(f)]


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line of the opening fence, code) of every ```python block of a Markdown file."""
    blocks: list[tuple[int, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m.group("fence"), m.group("info").strip(), i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if info == "python":
            blocks.append((start, textwrap.dedent("\n".join(body)) + "\n"))
    return blocks


RUNNER = r"""
import sys, traceback
path, blocks = sys.argv[1], eval(sys.stdin.read())
ns = {"__name__": "__main__"}
for line, code in blocks:
    try:
        exec(compile(code, f"{path}:{line} (block opened on this line)", "exec"), ns)
    except BaseException:
        print(f"\n*** the ```python block of {path} opened at line {line} failed:\n", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


@pytest.mark.parametrize("path", example_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path: Path, tmp_path: Path) -> None:
    blocks = python_blocks(path)
    rel = str(path.relative_to(ROOT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPATH")}
    proc = subprocess.run([sys.executable, "-c", RUNNER, rel], input=repr(blocks), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{rel}: an example failed\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_readme_has_examples_and_quick_start() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(python_blocks(ROOT / "README.md")) >= 4
    assert "duckdb.sql(" in text
    # .ci/run runs the first two lines of the Quick start block: keep them commands.
    quick = text.split("## Quick start", 1)[1].split("```", 2)[1].strip().splitlines()
    assert quick[0].startswith('pip install ".[demo]" ') and "tidelog demo" in quick[0]
    assert quick[1].startswith('pip install ".[test]"') and "pytest" in quick[1]


LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def _user_pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md"] + sorted(DOCS.rglob("*.md"))


@pytest.mark.parametrize("path", _user_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    bad = []
    for m in LINK.finditer(text):
        target = m.group("target")
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = (path.parent / target.split("#", 1)[0]).resolve()
        if not file.is_relative_to(ROOT) or not file.exists():
            bad.append(target)
    assert not bad, f"{path.relative_to(ROOT)} links to what the repository does not hold: {bad}"
    assert "shared/" not in text, f"{path.relative_to(ROOT)} mentions a folder outside the repository"


# "session" as a word, not as in Kafka's session.timeout.ms setting.
JARGON = re.compile(r"\bissues? ?#?\d|\bissue-\d|\bsessions?\b(?!\.)|\blater issues?\b|\bclosing notes?\b", re.I)


def _user_facing_text() -> list[Path]:
    files = _user_pages()
    files += sorted((ROOT / "python" / "tidelog" / "bench").rglob("*.py"))
    return files


@pytest.mark.parametrize("path", _user_facing_text(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_jargon(path: Path) -> None:
    hits = [f"{n}: {line.strip()}" for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if JARGON.search(line)]
    assert not hits, f"{path.relative_to(ROOT)} speaks of internal work items, not features:\n" + "\n".join(hits)
