#!/usr/bin/env bash
# Quick start: build finecast and downscale the bundled Alps sample
# (data/sample: 0.25 degree forecast + ETOPO5 terrain) to 3 km.
# Output: out/demo/alps_3km.nc and a map out/demo/alps_t2m.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p finecast
bin="${CARGO_TARGET_DIR:-target}/release/finecast"
mkdir -p out/demo
"$bin" -v downscale \
  --input data/sample/forecast_alps_0p25.nc \
  --terrain data/sample/terrain_alps_etopo5.nc \
  --region 45.5,48,5.8,10.6 --resolution 3km \
  --method lapse --vars t2m,u10,v10,tp \
  --out out/demo/alps_3km.nc
"$bin" info out/demo/alps_3km.nc
"$bin" map out/demo/alps_3km.nc --var t2m --out out/demo/alps_t2m.png
