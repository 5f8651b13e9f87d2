#!/usr/bin/env bash
# Installs the npm package puppeteer-core (pinned by npm/package-lock.json,
# integrity hashes included) into DIR: it drives Debian's chromium for the
# browser tests of report.html and the dashboard (browser_test.js). A ctest
# fixture runs it before mia_browser_test. Usage:
#   fetch_puppeteer.sh DIR [NPM]
# Fails when npm fails, unless MIA_OFFLINE is set (the browser test then
# skips, saying so).
set -u
dir=${1:?usage: fetch_puppeteer.sh DIR [NPM]}
npm=${2:-npm}
here=$(cd "$(dirname "$0")" && pwd)
version=24.43.1
installed="$dir/node_modules/puppeteer-core/package.json"
if [ -f "$installed" ] && grep -q "\"version\": \"$version\"" "$installed" &&
   cmp -s "$here/npm/package-lock.json" "$dir/package-lock.json"; then
  echo "puppeteer-core $version already in $dir"
  exit 0
fi
mkdir -p "$dir" && cp "$here/npm/package.json" "$here/npm/package-lock.json" "$dir/" || exit 1
if timeout 300 "$npm" ci --prefix "$dir" --no-audit --no-fund --ignore-scripts; then
  exit 0
fi
if [ -n "${MIA_OFFLINE:-}" ]; then
  echo "npm ci failed; MIA_OFFLINE is set, so the browser test will skip" >&2
  exit 0
fi
echo "npm ci failed: the browser test needs the npm registry (set MIA_OFFLINE=1 to skip it)" >&2
exit 1
