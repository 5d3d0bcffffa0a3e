"""The layers are a contract the machine checks: import-linter on the real tree.

The contracts live in ``.importlinter`` (docs/architecture.md explains them). The
tree passes them, and a forbidden import planted in a copy of the tree breaks them:
the check would catch the mistake it exists for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sensing", "firmware_bridge", "heatmap")
# import-linter's command, installed beside this interpreter by the test extras
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(tree / ".importlinter"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _copy_tree(dst: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", dst / ".importlinter")
    return dst


@pytest.mark.slow
def test_the_tree_keeps_every_layer_contract(tmp_path: Path) -> None:
    r = _lint(_copy_tree(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("sensing/node/log.py", "import heatmap.spatial.floorplan", "nothing under sensing/"),
        ("firmware_bridge/protocol.py", "import sensing.wire.topics", "firmware_bridge imports"),
        ("heatmap/report/render.py", "import sensing.node.spool", "heatmap imports from the node"),
        ("heatmap/spatial/crb.py", "import heatmap.report.render", "heatmap layers"),
        ("sensing/wire/topics.py", "import sensing.node.spool", "sensing layers"),
        ("sensing/capture/radiotap.py", "import matplotlib", "heavy libraries"),
    ],
)
def test_a_forbidden_import_breaks_the_build(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    path = tree / module
    text = path.read_text()
    # after the module docstring and the future import, where an import would go
    anchor = "from __future__ import annotations\n"
    assert anchor in text, module
    path.write_text(text.replace(anchor, anchor + planted + "  # planted\n", 1))
    r = _lint(tree)
    assert r.returncode != 0, r.stdout
    broken = r.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, r.stdout
