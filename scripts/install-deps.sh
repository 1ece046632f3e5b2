#!/usr/bin/env bash
# Installs every Debian package pcifleet needs to build, test and demo.
# Safe to run again: packages already present are not reinstalled.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libpci-dev pciutils pci.ids
  libxml2-dev
  libczmq-dev libzmq3-dev libsodium-dev
  libkrb5-dev libsystemd-dev uuid-dev  # headers for controller/cli_lazy.c
  libjemalloc-dev  # pcifleetd's allocator (CMakeLists.txt)
  libprotobuf-c-dev protobuf-c-compiler
  libsqlite3-dev sqlite3
  libcmocka-dev
  clang llvm
  valgrind jq curl iproute2 strace
  groff-base faketime
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
