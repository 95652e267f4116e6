#!/usr/bin/env bash
# The GPU path, benchmarked on a machine with an NVIDIA GPU and no Rust.
#
#   ./scripts/gpu-bench.sh prepare   # here: build, strip, pack into .gpu-bench/
#   ./scripts/gpu-bench.sh run       # there, from the repository root
#
# `prepare` builds the two benchmark binaries with `--features gpu` (Burn's
# Vulkan backend), strips and xz-compresses them (75 MB → 12 MB each),
# exports the shipped weights as safetensors, copies the ETOPO5 relief the
# e2e benchmark needs from ../shared/data, and downloads the Vulkan/EGL
# loader packages (Debian) that GPU machines without them need. The folder
# stays under the 64 MiB a device call may carry.
#
# `run` unpacks the loaders, points Vulkan at the NVIDIA driver, then in one
# session: the network on flex/AMX/Vulkan over tiles and one CONUS-sized
# 1060x1800 pass (model_runtime), PyTorch CUDA on the same network and shape
# (scripts/torch_model.py), and the end-to-end jobs with --device gpu (e2e).
# Results land in $OUT (or .gpu-bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."
pack=.gpu-bench

case "${1:-}" in
prepare)
  cargo build --release -p finecast --features gpu
  cargo bench -p finecast-benches --features gpu --no-run --message-format=json \
    --bench model_runtime --bench e2e >"$pack.build.json"
  rm -rf "$pack" && mkdir -p "$pack/bin" "$pack/shared/static" "$pack/debs"
  target=${CARGO_TARGET_DIR:-target}
  python3 - "$pack.build.json" "$pack/bin" <<'PY'
import json, shutil, sys
for line in open(sys.argv[1]):
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["kind"] == ["bench"]:
        shutil.copy(msg["executable"], f"{sys.argv[2]}/{msg['target']['name']}")
PY
  rm -f "$pack.build.json"
  strip "$pack"/bin/*
  xz -T0 -9 "$pack"/bin/*
  "$target/release/finecast" export-weights --out "$pack/model.safetensors"
  cp ../shared/data/static/etopo5_orog.nc "$pack/shared/static/"
  touch "$pack/shared/README.md"
  (cd "$pack/debs" && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  grep -qx "/$pack/" .git/info/exclude 2>/dev/null || echo "/$pack/" >>.git/info/exclude
  du -sh "$pack"
  echo "carry $pack and run: ./scripts/gpu-bench.sh run"
  ;;
run)
  out=${OUT:-$pack/out}
  mkdir -p "$out"
  for f in "$pack"/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  bin=/tmp/finecast-gpu-bench
  mkdir -p "$bin"
  for f in "$pack"/bin/*.xz; do xz -dc "$f" >"$bin/$(basename "$f" .xz)"; done
  chmod +x "$bin"/*
  if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
  export FINECAST_BENCH_DEVICE=gpu FINECAST_SHARED_DATA=$PWD/$pack/shared FINECAST_WORKSPACE=$PWD
  export FINECAST_PYTHON=${FINECAST_PYTHON:-python3}
  export FINECAST_WEIGHTS=$PWD/weights/finecast-t2m-resnet-v2.bpk
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt" || true
  "$bin/model_runtime" --bench 2>&1 | tee "$out/model_runtime.txt"
  python3 scripts/torch_model.py --weights "$pack/model.safetensors" \
    --tiles target/bench/tiles.safetensors | tee "$out/torch.json"
  python3 scripts/torch_model.py --weights "$pack/model.safetensors" --dtype bfloat16 | tee -a "$out/torch.json"
  "$bin/e2e" --bench 2>&1 | tee "$out/e2e.txt"
  cp target/bench/*.json target/bench/*.png "$out/" 2>/dev/null || true
  ;;
*)
  echo "usage: $0 prepare|run" >&2
  exit 2
  ;;
esac
