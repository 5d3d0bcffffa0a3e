"""Key rotation: after an epoch roll the old key is unrecoverable.

A real node process (this file run with ``--child``) replays a real capture that
crosses one or many roll hours through the node pipeline, with its key file.
Then, without ever holding an old key itself:

* it walks every object reachable from the garbage collector (and what they
  refer to) for any old key, raw or hex, given only a 4-byte prefix and a
  SHA-256 of each key by the parent;
* the parent reads the child's whole writable memory (``/proc/<pid>/mem``) for
  every old key, raw and hex in both cases, whole and by halves (a freed
  buffer's first bytes become the allocator's free-list link): zero hits; the
  current key exactly once (the ring's ``bytearray``: proof the scan sees the
  heap, and that no copy lies around to become an old key at the next roll);
* every file written (key directory, state directory, published batches) is
  scanned for the old keys, and the old key file's inode, held open by the
  parent across the roll, reads back as zeros.

A memory scan only sees copies that survive until it runs, and the allocator
soon reuses freed blocks; so white-box tests pin the properties that make the
erasure hold by construction: every keyed HMAC gets the ``bytearray`` itself,
the ratchet's digests and every old key are zeroed in place, and the key file's
text never reaches ``json`` with the key in it. (Each of those was checked to
fail when the corresponding line of ``sensing/privacy/pseudonym.py``,
``key_memory.py`` or ``key_file.py`` is broken.)
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FOOTFALL_DATA", ROOT.parent / "shared" / "data"))
BRNO1 = DATA / "wifi-probes-brno-esp32-occupancy/sc6-61_2024-03-14_position_1_1420-1720.pcap"
IPHONE11M = DATA / "wifi-probes-baccichet-labelled/iPhone11-M_anonymized.pcap"
RATCHET = b"footfall/ratchet/v1"


# -- the node process ----------------------------------------------------------------------


def _reachable_hits(hints: dict[str, list[list[str]]]) -> list[Any]:
    """[objects scanned, [[key index, form], ...] of every hinted key found in a
    reachable bytes/bytearray/str]."""
    raw = [(bytes.fromhex(p), h) for p, h in hints["raw"]]
    hexes = [(p.encode(), h) for p, h in hints["hex"]]
    gc.collect()
    leaves: dict[int, bytes | bytearray | str] = {}
    for o in gc.get_objects():
        for r in gc.get_referents(o):
            if isinstance(r, bytes | bytearray | str):
                leaves[id(r)] = r
    found: set[tuple[int, str]] = set()
    for leaf in leaves.values():
        blob: bytes
        if isinstance(leaf, str):
            if len(leaf) < 64 or not leaf.isascii():
                continue
            blob = leaf.lower().encode()
        else:
            blob = bytes(leaf)
            for i, (prefix, digest) in enumerate(raw):
                at = blob.find(prefix)
                while at >= 0:
                    if hashlib.sha256(blob[at : at + 32]).hexdigest() == digest:
                        found.add((i, "raw"))
                    at = blob.find(prefix, at + 1)
            blob = blob.lower()
        for i, (hprefix, digest) in enumerate(hexes):
            at = blob.find(hprefix)
            while at >= 0:
                if hashlib.sha256(blob[at : at + 64]).hexdigest() == digest:
                    found.add((i, "hex"))
                at = blob.find(hprefix, at + 1)
    return [len(leaves), sorted([i, f] for i, f in found)]


def _replay(keyfile: Path, capture: Path, out: Path) -> tuple[int, int, int]:
    """Replay ``capture`` as a node would; (epoch, rolls, observations)."""
    from sensing.capture.capture_file import read_records
    from sensing.node.batcher import Batcher
    from sensing.node.pipeline import NodeFilters, NodePipeline
    from sensing.privacy.key_file import KeyFile
    from sensing.privacy.pseudonym import Pseudonymizer
    from sensing.wire import payloads

    kf = KeyFile(keyfile)
    ring, sched = kf.load()
    pseudo = Pseudonymizer(ring, sched, keyfile=kf)
    pipe = NodePipeline.for_node(pseudo, NodeFilters(), out / "state")
    batcher = Batcher("obs", header={"node": "n1"})
    with (out / "obs.jsonl").open("wb") as f:
        for rec in read_records(capture):
            o = pipe.process(rec)
            if o is not None:
                done = batcher.add(o.t_ms, [o.pid, o.rssi, o.band, o.flags])
                if done is not None:
                    f.write(payloads.encode(done) + b"\n")
        last = batcher.flush()
        if last is not None:
            f.write(payloads.encode(last) + b"\n")
    # the store closes: the next roll comes from the wall clock with no frame after it,
    # the case where remnants of the old key would survive longest
    pipe.tick(sched.bounds_ms(ring.epoch)[1] + 60_000)
    _KEEP.append(pipe)  # the node keeps running with its current key
    return ring.epoch, pseudo.rolls, pipe.emitted


_KEEP: list[object] = []


def child(keyfile: Path, capture: Path, out: Path) -> None:
    hints = json.loads(sys.stdin.readline())
    epoch, rolls, emitted = _replay(keyfile, capture, out)
    print(json.dumps({"epoch": epoch, "rolls": rolls, "emitted": emitted}), flush=True)
    sys.stdin.readline()  # the parent has read our memory (before we allocate much more)
    print(json.dumps(_reachable_hits(hints)), flush=True)
    sys.stdin.readline()


# -- the test --------------------------------------------------------------------------------


def _forms(key: bytes) -> list[tuple[str, bytes]]:
    """The key raw, hex and HEX, whole and in overlapping halves: a freed buffer
    keeps most of its bytes, but its first 8 become the allocator's free-list link."""
    out = []
    for form, b in (("raw", key), ("hex", key.hex().encode()), ("HEX", key.hex().upper().encode())):
        n = len(b)
        out += [(form, b), (f"{form}[:1/2]", b[: n // 2])]
        out += [(f"{form}[1/4:3/4]", b[n // 4 : 3 * n // 4]), (f"{form}[1/2:]", b[n // 2 :])]
    return out


def _scan_memory(pid: int, keys: list[bytes]) -> tuple[dict[tuple[int, str], int], int]:
    hits: dict[tuple[int, str], int] = {}
    total = 0
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", buffering=0)  # noqa: SIM115
    except (PermissionError, FileNotFoundError) as e:
        pytest.skip(f"cannot read another process's memory here: {e}")
    with mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "rw" not in parts[1]:
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except OSError:
                continue
            total += len(data)
            for i, k in enumerate(keys):
                for form, needle in _forms(k):
                    n = data.count(needle)
                    if n:
                        hits[(i, form)] = hits.get((i, form), 0) + n
    assert total > 1 << 20, "read less than 1 MiB of the child's memory"
    return hits, total


@pytest.mark.parametrize(
    ("capture", "start", "roll_hour", "tz"),
    [
        (BRNO1, date(2024, 3, 13), 15, "UTC"),  # one roll at 15:00 UTC, mid-capture
        (IPHONE11M, date(2023, 5, 4), 4, "Europe/Rome"),  # two sessions 21.8 days apart
    ],
    ids=["brno-1-roll", "iphone11m-many-rolls"],
)
def test_old_key_is_nowhere_after_a_roll(
    tmp_path: Path, capture: Path, start: date, roll_hour: int, tz: str
) -> None:
    from sensing.privacy.key_file import KeyFile

    keydir, out = tmp_path / "keys", tmp_path / "node"
    out.mkdir()
    kf = KeyFile.provision(keydir / "store.key", start, roll_hour, tz)
    ring, _ = kf.load()
    keys = [ring.key_bytes_for_store()]
    ring.erase()
    for _ in range(40):
        keys.append(hmac.digest(keys[-1], RATCHET, "sha256"))
    hints = {
        "raw": [[k[:4].hex(), hashlib.sha256(k).hexdigest()] for k in keys],
        "hex": [[k.hex()[:8], hashlib.sha256(k.hex().encode()).hexdigest()] for k in keys],
    }
    old_inode = os.open(kf.path, os.O_RDONLY)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(kf.path), str(capture), str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(hints) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, "the node process died"
        report = json.loads(line)
        memory, scanned = _scan_memory(proc.pid, keys[: report["epoch"] + 2])
        proc.stdin.write("\n")
        proc.stdin.flush()
        n_objects, reachable = json.loads(proc.stdout.readline())
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    e = report["epoch"]
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    print(
        f"\n{capture.name}: {report['rolls']} rolls to epoch {e}, {report['emitted']} "
        f"observations; scanned {scanned / 2**20:.1f} MiB of process memory, {n_objects:,} "
        f"reachable bytes/str objects, {len(files)} files, for {e} old keys"
    )
    assert report["rolls"] >= 2 and e >= 2 and report["emitted"] > 100
    assert e < len(keys) - 1
    # reachable objects: at most the current key, raw (the ring's bytearray)
    assert [h for h in reachable if h != [e, "raw"]] == []
    # the whole writable memory: no old key in any form, the current key once
    assert {k: n for k, n in memory.items() if k[0] != e} == {}
    assert memory == {(e, f): 1 for f in ("raw", "raw[:1/2]", "raw[1/4:3/4]", "raw[1/2:]")}
    # files: the current key only in the key file, old keys nowhere
    for f in files:
        blob = f.read_bytes()
        for i, k in enumerate(keys):
            if i == e and f == kf.path:
                continue
            assert not any(n in blob for _, n in _forms(k)), (f.name, i)
    assert json.loads(kf.path.read_text())["epoch"] == e
    assert keys[e].hex() in kf.path.read_text()
    # the previous key file's inode (unlinked by the atomic replace) was zeroed
    size = os.fstat(old_inode).st_size
    assert size > 0 and os.pread(old_inode, size, 0) == bytes(size)
    os.close(old_inode)


def test_ratchet_digests_are_wiped_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``bytes`` hmac returns for each ratchet step is zeroed once copied, and
    every key the ratchet stepped from is zeroed in place."""
    import sensing.privacy.pseudonym as ps

    made: list[bytes] = []
    used: list[bytearray] = []
    real = hmac.digest

    def spy(key: Any, msg: bytes, digest: str) -> bytes:
        d = real(key, msg, digest)
        if msg == RATCHET:
            made.append(d)  # keep references so the objects cannot be reused
            used.append(key)
        return d

    monkeypatch.setattr(ps.hmac, "digest", spy)
    ring = ps.KeyRing(bytearray(range(32)), 0)
    ring.roll_to(5)
    assert len(made) == 5 and all(d == bytes(32) for d in made)  # digests wiped
    assert len(used) == 5 and all(k == bytes(32) for k in used)  # old keys zeroed
    assert ring.key_bytes_for_store() != bytes(32)


def test_keys_are_only_ever_used_as_bytearrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every HMAC keyed by a node key gets the ``bytearray`` itself, never a copy,
    and the padded key blocks of the per-frame hash are bytearrays zeroed after use;
    the key file's text is blanked before JSON sees it, and written without it."""
    import sensing.privacy.key_file as kf_mod
    import sensing.privacy.key_memory as km
    import sensing.privacy.pseudonym as ps

    kinds: list[type] = []
    pads: list[Any] = []
    texts: list[str] = []
    real_digest, real_sha256 = hmac.digest, ps.hashlib.sha256
    real_loads, real_dumps = json.loads, json.dumps

    def digest(key: Any, msg: bytes, d: str) -> bytes:
        kinds.append(type(key))
        return real_digest(key, msg, d)

    def sha256(data: Any = b"", **kw: Any) -> Any:
        pads.append(data)  # a padded key block: must be a bytearray, zeroed after use
        return real_sha256(data, **kw)

    def loads(text: Any, **kw: Any) -> Any:
        texts.append(str(text))
        return real_loads(text, **kw)

    def dumps(obj: Any, **kw: Any) -> str:
        out = real_dumps(obj, **kw)
        texts.append(out)
        return out

    monkeypatch.setattr(ps.hmac, "digest", digest)
    monkeypatch.setattr(ps.hashlib, "sha256", sha256)
    monkeypatch.setattr(kf_mod.json, "loads", loads)
    monkeypatch.setattr(km.json, "dumps", dumps)
    kf = kf_mod.KeyFile.provision(tmp_path / "store.key", date(2026, 1, 1), 4, "UTC")
    ring, sched = kf.load()
    k0 = ring.key_bytes_for_store()
    p = ps.Pseudonymizer(ring, sched, keyfile=kf)
    ring.pid(b"\x00" * 6)
    ring.sig(b"\x01\x00")
    p.tick(sched.bounds_ms(3)[0])
    ring.pid(b"\x00" * 6)
    assert ring.epoch == 3 and len(kinds) == 3 and set(kinds) == {bytearray}  # ratchet
    assert len(pads) == 2 * 3 and all(type(p) is bytearray and not any(p) for p in pads)
    assert texts and not any(k0.hex() in t for t in texts)
    assert not any(ring.key_bytes_for_store().hex() in t for t in texts)


def test_group_or_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    from firmware_bridge.errors import ConfigError
    from sensing.privacy.key_file import KeyFile

    kf = KeyFile.provision(tmp_path / "store.key", date(2026, 1, 1), 4, "UTC")
    kf.path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        kf.load()


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--child":
    child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
