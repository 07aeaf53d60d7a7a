#!/usr/bin/env bash
# Paper 002 study on both bundled datasets: both model families x every item-table
# initialisation, tables + learning curves in runs/sessions/{movielens,lastfm}/ (docs/sessions.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
.venv/bin/talkrec sessions configs/sessions-movielens.yaml
.venv/bin/talkrec sessions configs/sessions-lastfm.yaml
