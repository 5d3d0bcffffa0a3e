"""node.toml: defaults, relative paths, and errors that name the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware_bridge.errors import ConfigError
from sensing.node import config as node_config

REPO = Path(__file__).resolve().parents[1]
BASE = """
[node]
store = "s1"
id = "n1"
keyfile = "keys/store.key"
"""


def _load(tmp_path: Path, text: str) -> node_config.NodeConfig:
    p = tmp_path / "node.toml"
    p.write_text(text)
    return node_config.load(p)


def test_shipped_example_parses() -> None:
    cfg = node_config.load(REPO / "deploy" / "node.example.toml")
    assert cfg.live and cfg.require_sync and cfg.broker.port == 8883
    assert cfg.wifi.plan.bands == ("2.4GHz", "5GHz") and cfg.boards[0].name == "door/main"
    assert cfg.broker.address().tls is not None


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    cfg = _load(tmp_path, BASE + '[wifi]\npcap = "cap/wifi.pcap"\n')
    assert cfg.keyfile == tmp_path / "keys" / "store.key"
    assert cfg.wifi.pcap == tmp_path / "cap" / "wifi.pcap"
    assert (cfg.max_items, cfg.max_age_ms, cfg.realtime, cfg.live) == (500, 5000, False, False)
    assert cfg.spool_path == Path("/var/lib/footfall/spool.db")


def test_address_chaining_is_on_by_default_and_can_be_switched_off(tmp_path: Path) -> None:
    assert _load(tmp_path, BASE + '[wifi]\npcap = "a"\n').filters.chain_addresses
    off = _load(tmp_path, BASE + '[wifi]\npcap = "a"\n[capture]\nchain_addresses = false\n')
    assert not off.filters.chain_addresses


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[broker]\nport = 70000\n", "broker.port: must be within 1..65535"),
        ("[wifi]\npcap = 'a'\ninterface = 'wlan1'\n", "wifi: give interface or pcap"),
        ("[wifi]\ninterface = 'wlan1'\nchannels = [1, 15]\n", "15 is not a 2.4 or 5 GHz"),
        (
            "[wifi]\npcap = 'a'\n[batch]\nmax_itmes = 3\n",
            "batch.max_itmes: unknown key (did you mean 'max_items'?)",
        ),
        ("[wifi]\npcap = 'a'\n[[boards]]\nport = '/dev/ttyUSB0'\n", "give door or floor"),
        ("[wifi]\npcap = 'a'\n[[boards]]\nport = '/dev/x'\ndoor = 'm'\n", "mixes live"),
        ("[broker]\ncert = 'c.crt'\n[wifi]\npcap = 'a'\n", "give both cert and key"),
        ("", "no source"),
        ("[wifi]\npcap = 'a'\n[clock]\nrequire_sync = 'yes'\n", "clock.require_sync: must be"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _load(tmp_path, BASE + extra)


def test_node_id_must_be_a_topic_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"node\.id"):
        _load(tmp_path, BASE.replace('id = "n1"', 'id = "n/1"') + "[wifi]\npcap = 'a'\n")
    with pytest.raises(ConfigError, match="no such config file"):
        node_config.load(tmp_path / "missing.toml")
