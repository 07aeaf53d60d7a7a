#!/usr/bin/env bash
# The main job of the README: set up (idempotent), build the Last.fm demo space from
# ../shared/data (or $TALKREC_DATA) and print example searches and recommendations.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/talkrec build configs/lastfm.yaml --examples "$@"
