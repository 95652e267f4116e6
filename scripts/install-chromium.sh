#!/usr/bin/env bash
# Install headless Chromium (Debian package `chromium`) for the web viewer's
# browser test (crates/cli/tests/serve.rs: viewer_loads_tiles_and_click_shows_a_value).
# Safe to run repeatedly; needs root (CI runs as root). Exits 0 when Chromium
# is present afterwards, 1 otherwise (the test then skips with a message).
set -uo pipefail
for bin in chromium chromium-browser google-chrome; do
  if command -v "$bin" >/dev/null 2>&1; then
    echo "browser already installed: $(command -v "$bin")"
    exit 0
  fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "cannot install chromium: needs root and apt-get" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
if command -v chromium >/dev/null 2>&1; then
  echo "installed $(chromium --version 2>/dev/null || echo chromium)"
  exit 0
fi
echo "chromium could not be installed" >&2
exit 1
