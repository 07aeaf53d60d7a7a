#!/usr/bin/env bash
# The system packages the tests need, from Debian's archive: chromium (the browser test) and
# espeak-ng (the speech clips of the audio tests). Installs only what is missing, with sudo
# only when not root; runs `apt-get update` and retries when the first install fails (a fresh
# machine has no package lists). Idempotent: with both installed it does nothing.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
echo "installing ${missing[*]} (apt-get)" >&2
if ! "${sudo[@]}" apt-get -o Acquire::Retries=5 install -y --no-install-recommends "${missing[@]}"; then
  "${sudo[@]}" apt-get -o Acquire::Retries=5 update
  "${sudo[@]}" apt-get -o Acquire::Retries=5 install -y --no-install-recommends "${missing[@]}"
fi
