"""CLI shape: the node side never loads the aggregator's heavy libraries."""

import subprocess
import sys


def test_parser_builds_without_heavy_imports() -> None:
    code = (
        "import sys, sensing.cli as c; c.build_parser(); "
        "heavy = [m for m in ('matplotlib', 'scipy', 'numpy', 'shapely') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert out == "[]"


def test_usage_error_exits_2_and_version_works() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "sensing.cli", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    v = subprocess.run(
        [sys.executable, "-m", "sensing.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert v.returncode == 0 and v.stdout.startswith("footfall ")
