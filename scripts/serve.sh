#!/usr/bin/env bash
# The one command that serves the Last.fm demo space: set up .venv (idempotent), build
# spaces/lastfm from ../shared/data (or $TALKREC_DATA) if it is not built yet, then serve the
# HTTP API and the web page on http://127.0.0.1:${PORT:-8000}/ (API docs at /docs).
# Set TALKREC_API_KEY to protect the write endpoint (POST /api/items).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
SPACE=${TALKREC_SPACE:-spaces/lastfm}
if [ ! -f "$SPACE/space.json" ]; then
  echo "building $SPACE (first run only; takes a while)" >&2
  .venv/bin/talkrec build configs/lastfm.yaml --output "$SPACE"
fi
exec .venv/bin/talkrec serve --space "$SPACE" --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" "$@"
