"""The broker's names on every provisioning command: one check (pki.check_server_names),
one error, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensing.cli.main import main


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["provision", "store", "--out", "{d}/site", "--broker-host"], "--broker-host"),
        (["provision", "certs", "--out", "{d}/pki", "--broker-host"], "--broker-host"),
        (["provision", "central", "--stores", "s1", "--out", "{d}/c", "--host"], "--host"),
    ],
)
@pytest.mark.parametrize("name", ["mqtt://box.local", "box local", " "])
def test_a_url_a_space_or_nothing_is_not_a_broker_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], option: str, name: str
) -> None:
    args = [a.replace("{d}", str(tmp_path)) for a in argv]
    assert main([*args, "box.local", *args[-1:], name]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"footfall: error: {option} {name!r}: a DNS name or an IP address"]
    assert not list(tmp_path.iterdir())  # nothing written
