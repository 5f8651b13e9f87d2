#!/usr/bin/env bash
# The demo audit without a server (`make demo-local`): `mia audit --config configs/demo.yaml` trains a
# small CNN target and 3 reference models on Fashion-MNIST (Debian's
# dataset-fashion-mnist), computes their signals, attacks the target with RMIA,
# LiRA and LOSS, and writes the report. A rerun reuses the trained models.
set -euo pipefail
BUILD=${1:-build}
"$BUILD/client/mia" audit --config configs/demo.yaml --out demo-out/report
echo
echo "Report: demo-out/report (summary.md, result.json, scores.csv, roc.svg, roc_log.svg,"
echo "        models.json, signals.npz, timing.log); models cached in mia-runs/demo"
