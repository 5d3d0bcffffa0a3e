"""A private MQTT broker on a free loopback port, for the demo and the tests.

Mosquitto when ``mosquitto`` is on PATH (always in tests and CI); otherwise the
embedded pure-Python amqtt broker in a background thread. Neither needs root or
a network beyond loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from firmware_bridge.errors import BrokerError
from sensing.runtime.mqtt_link import BrokerAddress


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_listening(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BrokerError(f"broker did not start listening on {host}:{port} in {timeout_s:.0f} s")


@dataclass
class RunningBroker:
    kind: str
    """mosquitto | amqtt"""
    address: BrokerAddress
    workdir: Path
    _proc: subprocess.Popen[bytes] | None = None
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = field(default=None)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop = None

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mosquitto_config(port: int, workdir: Path, host: str = "127.0.0.1", extra: str = "") -> Path:
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {host}\n"
        "allow_anonymous true\n"
        "persistence false\n"
        f"log_dest file {workdir / 'mosquitto.log'}\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        "max_queued_messages 1000000\n"
        "max_inflight_messages 0\n"
        "max_packet_size 8388608\n" + extra
    )
    return conf


def start_mosquitto(
    workdir: Path, conf: Path | None = None, port: int | None = None, host: str = "127.0.0.1"
) -> RunningBroker:
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    conf = conf or mosquitto_config(port, workdir, host)
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_listening(host, port)
    except BrokerError:
        proc.kill()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise BrokerError(f"mosquitto failed to start: {err.strip()}") from None
    return RunningBroker("mosquitto", BrokerAddress(host, port), workdir, _proc=proc)


def start_amqtt(workdir: Path, port: int | None = None) -> RunningBroker:
    from amqtt.broker import Broker

    host = "127.0.0.1"
    port = port or free_port(host)
    started = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        stop = asyncio.Event()
        holder["loop"], holder["stop"] = loop, stop
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

        async def main() -> None:
            broker = Broker(config)
            await broker.start()
            started.set()
            await stop.wait()
            await broker.shutdown()

        try:
            loop.run_until_complete(main())
        except Exception as e:  # surfaced to the caller below
            holder["error"] = e
            started.set()
        finally:
            loop.close()

    t = threading.Thread(target=run, name="amqtt-broker", daemon=True)
    t.start()
    if not started.wait(15) or "error" in holder:
        raise BrokerError(f"embedded amqtt broker failed to start: {holder.get('error')}")
    return RunningBroker(
        "amqtt",
        BrokerAddress(host, port, mqtt5=False),  # amqtt speaks MQTT 3.1.1 only
        workdir,
        _thread=t,
        _loop=holder["loop"],
        _stop=holder["stop"],
    )  # type: ignore[arg-type]


def start_private_broker(workdir: Path, prefer: str = "auto") -> RunningBroker:
    """Mosquitto if installed (or ``prefer="mosquitto"``), else embedded amqtt."""
    have = shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
    if prefer == "mosquitto" or (prefer == "auto" and have):
        return start_mosquitto(workdir)
    return start_amqtt(workdir)
