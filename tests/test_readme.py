"""The README's two commands are the ones that run: CI runs the test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = "python -m pytest -n 2 --dist loadgroup"
"""how the test command ends: pytest on two pytest-xdist workers, each module (and every
user of one costly session fixture, tests/conftest.py) on one worker"""


def _sh_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r'^README_TEST_COMMAND="(.*)"$', ci, flags=re.M)
    assert m, ".ci/run names no README_TEST_COMMAND"
    assert 'eval "$README_TEST_COMMAND"' in ci
    blocks = _sh_blocks((ROOT / "README.md").read_text())
    assert m.group(1) in blocks, "the README's test command differs from what CI runs"
    assert m.group(1).endswith(PYTEST)


def test_readme_opens_with_the_demo_and_the_tests_and_stays_short() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = _sh_blocks(text)
    assert blocks[0].endswith("footfall demo"), "the first command runs the demo"
    assert blocks[1].endswith(PYTEST), "the second runs the tests"
    head = text.splitlines()[:60]
    assert any("footfall demo" in line for line in head)
    assert len(text.splitlines()) <= 130


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (ROOT / target).exists(), f"README links to a missing {target}"
