#!/usr/bin/env bash
# The demo audit: writes a synthetic membership game as a signals bundle
# (8 models, 5,000 audit points, 2,000 population points, logits over 10
# classes), audits target models 0 and 1 with every attack, and writes the
# report to demo-out/. Called by `make demo` after the build.
set -euo pipefail
BUILD=${1:-build}
MIA="$BUILD/client/mia"
OUT=demo-out
mkdir -p "$OUT"
"$MIA" make-bundle --out "$OUT/bundle.npz" --models 8 --points 5000 --population 2000 \
  --classes 10 --leak 1.0 --targets 2 --seed 7
"$MIA" score --bundle "$OUT/bundle.npz" \
  --attack rmia,rmia-offline,lira,lira-offline,reference,population,loss \
  --out "$OUT/report"
echo
echo "Report: $OUT/report (summary.md, result.json, scores.csv, roc.svg, roc_log.svg, timing.log)"
