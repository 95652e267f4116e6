#!/usr/bin/env bash
# Reproduce the shipped 2 m temperature weights:
#   weights/finecast-t2m-resnet-v1.bpk + weights/finecast-t2m-resnet-v1.json
# from the shared sample data (FINECAST_SHARED_DATA, default ../shared/data).
#
# Usage: scripts/train.sh [CONFIG.toml] [--resume] [--steps N] [--time-limit SECONDS]
# Checkpoints and the loss curve (loss.csv) go to target/train-t2m/; with
# --resume an interrupted run continues from its last checkpoint.
#
# The run uses the `test` profile (workspace crates at opt-level 1, all
# dependencies, Burn included, at opt-level 2), so it reuses the artefacts of
# `cargo test` instead of compiling Burn a second time in release mode.
# The shipped run stopped at its 3000 s time limit (see docs/model-card.md).
set -euo pipefail
cd "$(dirname "$0")/.."
config="scripts/train-t2m.toml"
if [[ $# -gt 0 && "$1" == *.toml ]]; then
  config="$1"
  shift
fi
exec cargo run --profile test -p finecast-model --example train -- "$config" "$@"
