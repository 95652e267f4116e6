#!/usr/bin/env bash
# Run the whole test suite (installs system libraries first).
# Tests that need ../shared/data skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Headless Chromium for the web viewer's browser test (it skips with a message if absent).
bash scripts/install-chromium.sh || true
# The CF checker for the tests that check written files (they skip with a message if absent).
bash scripts/install-cfchecker.sh || true
cargo test --workspace --release "$@"
