#!/usr/bin/env bash
# Python peers for the benchmarks: a virtual environment in .venv with
# onnxruntime, xarray and friends at pinned versions (from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-bench.txt
.venv/bin/python -c "import onnxruntime, xarray; print('python peers ready: onnxruntime', onnxruntime.__version__, 'xarray', xarray.__version__)"
