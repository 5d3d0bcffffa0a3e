"""CLI shape: the node side never loads the aggregator's heavy libraries."""

import subprocess
import sys


def test_parser_builds_without_heavy_imports() -> None:
    code = (
        "import sys, sensing.cli.main as c; c.build_parser(); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('matplotlib', 'scipy', 'numpy', 'shapely', 'heatmap', 'pydantic', 'paho', 'scapy')]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert out == "[]"


def test_usage_error_exits_2_and_version_works() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    v = subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert v.returncode == 0 and v.stdout.startswith("footfall ")


def test_output_into_a_closed_pipe_stops_quietly() -> None:
    """`footfall … | head -1`: the reader goes away; no traceback, exit 141 as the shell's."""
    import os
    import subprocess
    import sys

    import heatmap.spatial.data

    plan = os.path.join(os.path.dirname(heatmap.spatial.data.__file__), "default_store.toml")
    r, w = os.pipe()
    os.close(r)  # nobody reads: the first write fails with EPIPE
    try:
        code = (
            "import sys; from sensing.cli.main import main; "
            f"sys.exit(main(['floorplan', {plan!r}]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], stdout=w, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(w)
    assert done.returncode == 141, done.stderr
    assert b"Traceback" not in done.stderr
