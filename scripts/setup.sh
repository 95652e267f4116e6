#!/usr/bin/env bash
# Install what finecast needs from the system on a Debian machine (run as root):
# libnetcdf (the netcdf crate links it) and pkg-config. Needs a Rust toolchain
# (cargo >= 1.85, e.g. from rustup) already on PATH.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install a Rust toolchain (>= 1.85) first, e.g. with rustup" >&2
  exit 1
fi

missing=()
for pkg in libnetcdf-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
