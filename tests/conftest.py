"""Shared fixtures: a real Mosquitto on a free loopback port, the simulated store,
and one end-to-end demo run that several tests inspect."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from heatmap.aggregator.broker import RunningBroker, start_mosquitto
from sensing.runtime.mqtt_link import BrokerAddress, connect, make_client

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two pytest-xdist workers on two cores: numpy's OpenBLAS threads (one per core in
    # each worker, and in the children they start) spin against each other, the
    # locator's bench took 74 s instead of 5. Set before any test module imports numpy.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"


SHARED_SESSION_FIXTURES = ("demo_run", "firmware_build")
"""session fixtures too costly to build once per pytest-xdist worker (the demo's store
hours, the AVR firmware): every module using one runs on one worker"""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each module in one pytest-xdist group (``--dist loadgroup``): its module
    fixtures are built once, on one worker; a module that uses one of
    :data:`SHARED_SESSION_FIXTURES` joins that fixture's group instead. Without xdist
    the marks change nothing."""
    shared: dict[Path, str] = {}
    for item in items:
        names = getattr(item, "fixturenames", ())
        for name in SHARED_SESSION_FIXTURES:
            if name in names:
                shared.setdefault(item.path, name)
    for item in items:
        group = shared.get(item.path) or item.path.name
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository (CI places it there)."""
    if not (DATA / "README.md").exists():
        pytest.fail(f"real captures not found at {DATA}")
    return DATA


def _need_mosquitto() -> None:
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.fail("mosquitto is required for the tests (apt-get install mosquitto)")


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """A private Mosquitto broker for the whole session."""
    _need_mosquitto()
    b = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield b
    b.stop()


@dataclass
class Recorder:
    """Records every message of a subscription (topic, payload, retain)."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))


@pytest.fixture
def recorder_factory() -> Iterator[object]:
    clients: list[mqtt.Client] = []

    def make(addr: BrokerAddress, topic: str = "#") -> Recorder:
        rec = Recorder()
        c = make_client(addr, f"test-recorder-{len(clients)}-{id(rec)}")
        c.on_message = rec.on_message
        subscribed = threading.Event()
        c.on_subscribe = lambda *_a: subscribed.set()
        connect(c, addr)
        c.subscribe(topic, qos=1)
        clients.append(c)
        # the subscription is live before the test goes on (else a fast node's
        # live messages can be missed, and only come back as retained ones)
        assert subscribed.wait(10), f"no SUBACK for {topic}"
        return rec

    yield make
    for c in clients:
        c.loop_stop()
        c.disconnect()


def _settle(rec: Recorder, quiet_s: float = 0.5, max_s: float = 10.0) -> None:
    """Wait until no new message arrived for ``quiet_s`` (bounded by ``max_s``)."""
    import time

    deadline = time.monotonic() + max_s
    n = -1
    while time.monotonic() < deadline and n != len(rec.messages):
        n = len(rec.messages)
        time.sleep(quiet_s)


@dataclass
class DemoRun:
    out: Path
    result: object
    mqtt: Recorder


@pytest.fixture(scope="session")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory, mosquitto: RunningBroker
) -> Iterator[DemoRun]:
    """One short demo through a real Mosquitto, with every MQTT message recorded."""
    from heatmap.simulate.demo import default_scenario, run_demo

    out = tmp_path_factory.mktemp("demo")
    rec = Recorder()
    c = make_client(mosquitto.address, "test-demo-recorder")
    c.on_message = rec.on_message
    connect(c, mosquitto.address)
    c.subscribe("#", qos=1)
    try:
        res = run_demo(out, default_scenario(0.5, seed=7), external_broker=mosquitto.address)
        _settle(rec)
    finally:
        c.loop_stop()
        c.disconnect()
    yield DemoRun(out, res, rec)


def notify_socket(path: Path) -> tuple[socket.socket, list[str]]:
    """A systemd notify socket at ``path`` (NOTIFY_SOCKET for a daemon under test), and
    the list its messages are appended to while the socket is open."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    got: list[str] = []

    def listen() -> None:
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=listen, daemon=True).start()
    return sock, got
