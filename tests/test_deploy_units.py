"""The systemd units in deploy/: valid for systemd, and the report's command line right."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sensing.cli.main import build_parser

UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_verify(tmp_path: Path) -> None:
    files = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer"))
    assert len(files) >= 3
    for f in files:
        shutil.copy(f, tmp_path)
    r = subprocess.run(
        ["systemd-analyze", "verify", *[str(tmp_path / f.name) for f in files]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    # the binaries named in ExecStart are not installed here: only that may be said
    problems = [
        line
        for line in (r.stdout + r.stderr).splitlines()
        if line.strip() and "is not executable" not in line and "No such file" not in line
    ]
    assert not problems, problems


def _report_argv(tmp_path: Path, radio: Path | None) -> list[str]:
    """The report unit's ExecStart as systemd would run it (its $$ and %% unescaped),
    with the footfall binary replaced by a script printing its arguments."""
    shim = tmp_path / "footfall"
    shim.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    shim.chmod(0o755)
    unit = (UNITS / "footfall-report.service").read_text()
    line = next(s for s in unit.splitlines() if s.startswith("ExecStart="))
    cmd = line.removeprefix("ExecStart=").replace("$$", "$").replace("%%", "%")
    cmd = cmd.replace("/usr/local/bin/footfall", str(shim))
    env = {"PATH": os.environ["PATH"], "FOOTFALL_RADIO": str(radio or "/nonexistent")}
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_report_unit_runs_the_report_of_the_day(tmp_path: Path) -> None:
    argv = _report_argv(tmp_path, None)
    a = build_parser().parse_args(argv)  # the arguments footfall really accepts
    assert a.cmd == "report" and a.day == "today" and a.config and a.radio is None
    assert a.out.startswith("/var/lib/footfall/reports/20")
    radio = tmp_path / "radio_model.json"
    radio.write_text("{}")
    assert build_parser().parse_args(_report_argv(tmp_path, radio)).radio == str(radio)
