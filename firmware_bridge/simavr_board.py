"""The real door/floor firmware running under simavr, its UART on a pty.

``hardware/firmware/sim/board_sim.c`` loads a firmware ELF into simavr, puts
UART0 on a pseudo-terminal (simavr's ``uart_pty`` part) and drives the beam and
tile pins from a script whose times are simulated CPU cycles, so every run is
the same. This module builds it (``make``), writes scripts, and runs it: what a
:class:`~firmware_bridge.serial_link.SerialLink` reads from :attr:`SimavrBoard.port`
are the bytes a store's node would read from the board.

Needs a source checkout (``hardware/firmware``) and Debian's gcc-avr, avr-libc,
libsimavr-dev (+ gcc, make); :func:`missing_tools` says what is absent.

Timing: script times are given in ms and placed 3/4 into the millisecond; the firmware
samples its pins on each 1 ms tick, so an edge at ``t`` ms is stamped ``t + 1``
(:data:`TICK_LAG_MS`) in the frames, for every edge alike.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from firmware_bridge.errors import FootfallError

FIRMWARE_DIR = Path(__file__).resolve().parent.parent / "hardware" / "firmware"
F_CPU = 16_000_000
TICK_LAG_MS = 1
"""an edge scripted at t ms is stamped t + 1 by the firmware (see module doc)"""
BEAM_PINS = {"A": "D2", "B": "D3"}
"""door board: beam A (street side) on PD2, beam B (inside) on PD3; blocked = low"""
TILE_ROWS_PINS = "C0-C5"
TILE_COLS_PINS = "D2-D7"
TILES = 36
"""floor board default build: 6 x 6 tiles, rows on PC0..PC5, columns on PD2..PD7"""


class SimavrError(FootfallError, RuntimeError):
    """Building or running the firmware under simavr failed; the message says how."""


def missing_tools() -> list[str]:
    """What this machine lacks to build and simulate the firmware (empty: all there)."""
    missing = [
        t
        for t in ("avr-gcc", "avr-objcopy", "avr-nm", "avr-size", "make", "cc")
        if shutil.which(t) is None
    ]
    if not Path("/usr/include/simavr/parts/uart_pty.h").exists():
        missing.append("libsimavr-dev (simavr/parts/uart_pty.h)")
    for lib in ("simavr", "simavrparts"):
        if ctypes.util.find_library(lib) is None:
            missing.append(f"lib{lib}")
    if not (FIRMWARE_DIR / "Makefile").exists():
        missing.append(f"firmware sources ({FIRMWARE_DIR})")
    return missing


@dataclass(frozen=True, slots=True)
class FirmwareBuild:
    """Paths of one ``make`` of hardware/firmware."""

    build_dir: Path

    @property
    def door_elf(self) -> Path:
        return self.build_dir / "door.elf"

    @property
    def floor_elf(self) -> Path:
        return self.build_dir / "floor.elf"

    @property
    def board_sim(self) -> Path:
        return self.build_dir / "board_sim"

    @property
    def frame_tool(self) -> Path:
        return self.build_dir / "frame_tool"

    @property
    def door_tool(self) -> Path:
        return self.build_dir / "door_tool"

    def symbol(self, elf: Path, name: str) -> tuple[int, int]:
        """(data-space address, size in bytes) of a global in ``elf``."""
        out = subprocess.run(
            ["avr-nm", "-S", str(elf)], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[3] == name:
                return int(parts[0], 16) & 0xFFFF, int(parts[1], 16)
        raise SimavrError(f"no symbol {name} in {elf}")

    def size(self, elf: Path) -> dict[str, int]:
        """Flash and RAM bytes of ``elf`` (avr-size): text, data, bss; flash =
        text + data, ram = data + bss."""
        out = subprocess.run(
            ["avr-size", "-A", str(elf)], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        sec = {
            p[0]: int(p[1])
            for p in (line.split() for line in out.splitlines())
            if len(p) >= 2 and p[0].startswith(".") and p[1].isdigit()
        }
        text, data = sec.get(".text", 0), sec.get(".data", 0)
        bss = sec.get(".bss", 0) + sec.get(".noinit", 0)
        return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss}


def build(build_dir: Path, *, defs: str = "", timeout_s: float = 300) -> FirmwareBuild:
    """``make -C hardware/firmware BUILD=build_dir`` (firmware, host tools, harness)."""
    missing = missing_tools()
    if missing:
        raise SimavrError("cannot build the firmware, missing: " + ", ".join(missing))
    cmd = ["make", "-C", str(FIRMWARE_DIR), f"BUILD={Path(build_dir).resolve()}"]
    if defs:
        cmd.append(f"DEFS={defs}")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        raise SimavrError(f"firmware build failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return FirmwareBuild(Path(build_dir).resolve())


class SimScript:
    """Timed pin events for board_sim; times in ms since power-on.

    >>> s = SimScript()
    >>> s.beam(100, "A", True)
    >>> s.end(200)
    >>> print(s.text(), end="")
    1612000 pin D2 0
    3212000 end
    """

    def __init__(self, f_cpu: int = F_CPU, *, matrix: bool = False) -> None:
        self.f_cpu = f_cpu
        self._events: list[tuple[int, int, str]] = []
        self._header = f"matrix {TILE_ROWS_PINS} {TILE_COLS_PINS}\n" if matrix else ""

    def cycle(self, t_ms: float) -> int:
        """Simulated cycle of time ``t_ms``, placed three quarters into the
        millisecond: after the firmware has sampled its pins for that tick
        (the door board samples about 0.15 ms into a tick, the floor board's
        scan of 6 rows ends about 0.6 ms in)."""
        per_ms = self.f_cpu // 1000
        return round(t_ms * per_ms) + per_ms * 3 // 4

    def _add(self, t_ms: float, what: str) -> None:
        self._events.append((self.cycle(t_ms), len(self._events), what))

    def pin(self, t_ms: float, pin: str, level: int) -> None:
        self._add(t_ms, f"pin {pin} {1 if level else 0}")

    def beam(self, t_ms: float, beam: str, blocked: bool) -> None:
        """Door board: beam "A" or "B" blocked (pin low) or clear (pin high)."""
        self.pin(t_ms, BEAM_PINS[beam], 0 if blocked else 1)

    def tile(self, t_ms: float, tile: int, pressed: bool) -> None:
        """Floor board (script made with ``matrix=True``): press or release a tile."""
        if not self._header:
            raise ValueError("tile events need SimScript(matrix=True)")
        self._add(t_ms, f"tile {tile} {1 if pressed else 0}")

    def reset(self, t_ms: float) -> None:
        """Pull the board's reset line."""
        self._add(t_ms, "reset")

    def end(self, t_ms: float) -> None:
        self._add(t_ms, "end")

    def text(self) -> str:
        return self._header + "".join(f"{c} {what}\n" for c, _, what in sorted(self._events))


@dataclass(frozen=True, slots=True)
class SimResult:
    """How a board_sim run ended."""

    cycles: int
    tx_bytes: int
    """bytes the firmware's UART sent"""
    mem: dict[int, bytes] = field(default_factory=dict)
    """SRAM dumps asked for, by data-space address"""
    crashed: bool = False


class SimavrBoard:
    """One board_sim process: ``port`` is its UART's pty. Open the port, then
    :meth:`start`; the simulation runs as fast as the host allows.

    Parameters
    ----------
    build
        a :class:`FirmwareBuild`.
    elf
        the firmware to run (``build.door_elf`` or ``build.floor_elf``).
    script
        pin events; must end with ``end``.
    dumps
        (address, length) of SRAM to report at the end (:meth:`FirmwareBuild.symbol`).
    """

    def __init__(
        self,
        build: FirmwareBuild,
        elf: Path,
        script: SimScript | str,
        *,
        dumps: Sequence[tuple[int, int]] = (),
        startup_timeout_s: float = 10,
    ) -> None:
        text = script.text() if isinstance(script, SimScript) else script
        fd, name = tempfile.mkstemp(prefix="board_sim_", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self._script_path = Path(name)
        args = [str(build.board_sim), "-w"]
        for addr, length in dumps:
            args += ["-d", f"{addr:#x}:{length}"]
        args += [str(elf), str(self._script_path)]
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._n_dumps = len(dumps)
        self._result: SimResult | None = None
        self.port = ""
        try:
            while not self.port:
                line = self._line(startup_timeout_s)
                if line.startswith("pty "):
                    self.port = line[4:].strip()
        except BaseException:
            self.close()
            raise

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("board_sim: "):
                self._lines.put(line[len("board_sim: ") :].rstrip("\n"))
        self._lines.put(None)

    def _line(self, timeout_s: float) -> str:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise SimavrError(f"board_sim said nothing for {timeout_s} s") from None
        if line is None:
            self._proc.wait(timeout=5)
            self._stderr.seek(0)
            err = self._stderr.read()
            raise SimavrError(f"board_sim exited early: {err.strip()[-2000:]}")
        return line

    def start(self) -> None:
        """Run the simulation (the port should be open by now)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()

    def poll(self) -> SimResult | None:
        """The result once the script has ended and the UART fifo is written out."""
        if self._result is not None:
            return self._result
        with contextlib.suppress(queue.Empty):
            while True:
                line = self._lines.get_nowait()
                if line is None:
                    raise SimavrError("board_sim exited before the end of its script")
                if line.startswith("done "):
                    self._result = self._finish(line)
                    return self._result
        return None

    def wait(self, timeout_s: float) -> SimResult:
        deadline = time.monotonic() + timeout_s
        while (r := self.poll()) is None:
            if time.monotonic() > deadline:
                raise SimavrError(f"simulation not done after {timeout_s} s")
            time.sleep(0.01)
        return r

    def _finish(self, done_line: str) -> SimResult:
        kv = dict(item.split("=", 1) for item in done_line.split()[1:])
        mem: dict[int, bytes] = {}
        for _ in range(self._n_dumps):
            parts = self._line(10).split()
            if parts[0] == "mem":
                mem[int(parts[1], 16)] = bytes.fromhex(parts[2])
        return SimResult(int(kv["cycles"]), int(kv["tx"]), mem)

    def collect(self, timeout_s: float = 120) -> tuple[SimResult, bytes]:
        """Open the pty raw, run the whole script, return the result and every
        byte the UART sent."""
        import serial

        data = bytearray()
        with serial.Serial(self.port, timeout=0.05) as port:
            self.start()
            deadline = time.monotonic() + timeout_s
            result = None
            while result is None or len(data) < result.tx_bytes:
                if time.monotonic() > deadline:
                    raise SimavrError(
                        f"got {len(data)} UART bytes in {timeout_s} s, "
                        f"expected {result.tx_bytes if result else '?'}"
                    )
                data += port.read(max(1, port.in_waiting))
                result = result or self.poll()
        return result, bytes(data)

    def close(self) -> None:
        if self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._reader.join(timeout=5)
        if self._proc.stdout:
            self._proc.stdout.close()
        self._stderr.close()
        self._script_path.unlink(missing_ok=True)

    def __enter__(self) -> SimavrBoard:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
