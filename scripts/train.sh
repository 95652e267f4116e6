#!/usr/bin/env bash
# Reproduce the shipped weights from the shared sample data
# (FINECAST_SHARED_DATA, default ../shared/data):
#   scripts/train.sh                              2 m temperature (scripts/train-t2m.toml)
#   scripts/train.sh scripts/train-precip.toml    precipitation
#   scripts/train.sh scripts/train-wind.toml      10 m wind
#
# Usage: scripts/train.sh [CONFIG.toml] [--resume] [--steps N] [--time-limit SECONDS]
# Runs `finecast train --config CONFIG.toml`. Checkpoints and the loss curve
# (loss.csv, loss.png) go to the configuration's checkpoint_dir; with --resume
# an interrupted run continues from its last checkpoint.
#
# The run uses the `test` profile (workspace crates at opt-level 1, all
# dependencies, Burn included, at opt-level 2), so it reuses the artefacts of
# `cargo test` instead of compiling Burn a second time in release mode.
# Shipped runs stopped at their time limits (see docs/model-card.md).
set -euo pipefail
cd "$(dirname "$0")/.."
config="scripts/train-t2m.toml"
if [[ $# -gt 0 && "$1" == *.toml ]]; then
  config="$1"
  shift
fi
exec cargo run --profile test -p finecast -- train --config "$config" "$@"
