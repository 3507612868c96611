#!/usr/bin/env bash
# Install everything OrbitLab's CLI, tests and twin need, from nothing, on Debian 12 (as root):
# the Debian packages of the real daemons, checkers and DHCP client, Graphviz (`orbitlab diagram`),
# CoreDNS (built with `go install`), Mermaid's parser for the tests (npm, from the lockfile
# in tools/mermaid) and a Python virtualenv in .venv with both packages (the library
# orbitlab-networks with its dev extra, the lab orbitlab-lab from lab/), editable, at the
# versions requirements.txt pins.
# Safe to run again: every step is skipped or a no-op when already done.
#
#   scripts/setup.sh               everything the CLI, the tests and the twin need
#   scripts/setup.sh --rehearsal   ... and the Pulumi CLI for `orbitlab emulate` and the
#                                  rehearsal tests (`orbitlab emulate build`: minutes, once)
set -euo pipefail

REHEARSAL=0
for argument in "$@"; do
  case "$argument" in
    --rehearsal) REHEARSAL=1 ;;
    *) echo "usage: $0 [--rehearsal]" >&2; exit 64 ;;
  esac
done

COREDNS_VERSION="v1.11.3"
DEBIAN_PACKAGES=(
  nftables frr haproxy iproute2 dnsutils iperf3 conntrack hping3 iputils-ping
  procps util-linux python3-venv ca-certificates graphviz fonts-dejavu-core
  dnsmasq-base udhcpc shellcheck
)

cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh installs Debian packages and must run as root (try: sudo $0)" >&2
  exit 1
fi

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The distribution's FRR service is not used: the twin runs its own daemons per namespace.
systemctl disable --now frr >/dev/null 2>&1 || true
# dnsmasq-base is the binary alone (no service). Should the full `dnsmasq` package be
# installed too, its system service (DNS on port 53 of this machine) is not ours either.
systemctl disable --now dnsmasq >/dev/null 2>&1 || true

if ! command -v coredns >/dev/null 2>&1 || ! coredns -version | grep -q "CoreDNS-${COREDNS_VERSION#v}"; then
  export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || { echo "Go is needed to build CoreDNS (go install)" >&2; exit 1; }
  say "building CoreDNS ${COREDNS_VERSION} with go install"
  GOBIN=/usr/local/bin GOFLAGS=-mod=mod go install "github.com/coredns/coredns@${COREDNS_VERSION}"
fi

# Mermaid's own parser, for the tests of `orbitlab diagram --format mermaid` (Node.js + npm).
# The stamp is the lockfile that was installed: a changed lockfile installs again.
MERMAID_STAMP=tools/mermaid/node_modules/.orbitlab-installed-lock.json
if ! cmp -s tools/mermaid/package-lock.json "$MERMAID_STAMP"; then
  command -v npm >/dev/null 2>&1 || { echo "npm is needed for tools/mermaid (Node.js)" >&2; exit 1; }
  say "installing Mermaid's parser (npm ci in tools/mermaid)"
  (cd tools/mermaid && npm ci --no-audit --no-fund --loglevel=error)
  cp tools/mermaid/package-lock.json "$MERMAID_STAMP"
fi

if [ ! -x .venv/bin/python ]; then
  say "creating the Python virtualenv in .venv"
  python3 -m venv .venv
fi
say "installing orbitlab-networks[dev] and orbitlab-lab (pinned by requirements.txt)"
.venv/bin/pip install -q --disable-pip-version-check -c requirements.txt -e ".[dev]" -e lab

if [ "$REHEARSAL" -eq 1 ]; then
  .venv/bin/orbitlab emulate build
fi
say "setup done"
