"""A real headless Chromium for the HTML pages' tests: Debian's ``chromium`` driven over
the DevTools protocol (CDP) on loopback, a page opened from disk with the network off.

``chromium`` is a module fixture (import it into the test module: ``from chromium_page
import chromium``); :class:`DevTools` drives its page.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
A4_PT = (595.0, 842.0)
"""A4 in PDF points (210 × 297 mm)"""
WIDTH_PX = 900
"""the window a page is opened in (a laptop's browser, not full screen)"""


class DevTools:
    """One Chromium page driven over the DevTools protocol (CDP), with every console
    message, log entry and uncaught exception it produced."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 2**20, open_timeout=10)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv(timeout=max(end - time.monotonic(), 0.01)))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg["result"])
            self.events.append(msg)
        raise TimeoutError(method)

    def wait_for(self, event: str, timeout_s: float = 30.0) -> None:
        end = time.monotonic() + timeout_s
        if any(e.get("method") == event for e in self.events):
            return
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv(timeout=max(end - time.monotonic(), 0.01)))
            self.events.append(msg)
            if msg.get("method") == event:
                return
        raise TimeoutError(event)

    def open_offline(self, page: Path) -> None:
        """Open ``page`` from disk in a :data:`WIDTH_PX` window with the network off,
        and wait for its load event."""
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Network.emulateNetworkConditions", offline=True, latency=0,
                  downloadThroughput=-1, uploadThroughput=-1)  # fmt: skip
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH_PX, height=1200,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.call("Page.navigate", url=page.as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"][
            "value"
        ]

    def images(self) -> list[tuple[bool, int, int, float]]:
        """Each image of the page: loaded, natural width and height, width drawn."""
        shown = self.evaluate(
            "JSON.stringify(Array.from(document.images).map(i => "
            "[i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]))"
        )
        return [tuple(i) for i in json.loads(shown)]  # type: ignore[misc]

    def screenshot_and_pdf(self, out: Path) -> bytes:
        """The whole page as ``out/screenshot.png`` (to look at) and printed as
        ``out/printed.pdf``; the PDF's bytes."""
        height = self.evaluate("document.documentElement.scrollHeight")
        clip = {"x": 0, "y": 0, "width": WIDTH_PX, "height": height, "scale": 1}
        shot = self.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
        )
        (out / "screenshot.png").write_bytes(base64.b64decode(shot["data"]))
        pdf = base64.b64decode(self.call("Page.printToPDF", preferCSSPageSize=True)["data"])
        (out / "printed.pdf").write_bytes(pdf)
        return pdf

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(str(p["exceptionDetails"]))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(str(p.get("args")))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out


def pdf_page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    """Each page's MediaBox width and height, PDF points."""
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    return [(float(w), float(h)) for w, h in boxes]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless Chromium listening for DevTools on a free loopback port; its page's
    websocket URL."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < end, "chromium did not open its DevTools port in 30 s"
            assert proc.poll() is None, "chromium exited"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        yield pages[0]["webSocketDebuggerUrl"]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
