#!/usr/bin/env bash
# Create .venv and install talkrec with its test dependencies (CPU-only PyTorch first, so
# that pip never resolves the multi-GB CUDA build). Idempotent: re-running is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.talkrec-installed
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
HNSWLIB_NO_NATIVE=1 .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev,ann]"
echo "$want" > "$stamp"
