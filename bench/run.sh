#!/usr/bin/env bash
# Runs every benchmark case in its own process (so peak RSS is per case) and an
# end-to-end `mia score` on a large synthetic bundle. Results go to
# docs/benchmarks.md by hand, with this command: `make bench`.
set -euo pipefail
BUILD=${1:-build}
REPS=${REPS:-7}
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for c in rmia rmia-online lira bootstrap; do
  "$BUILD/bench/mia_bench" "$c" "$REPS"
done
# End to end: 10 models, 50,000 audit points, 10,000 population points,
# logits over 100 classes; RMIA offline (a tuned) and LiRA online with 1,000
# bootstrap resamples each, report written.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BUILD/client/mia" make-bundle --out "$tmp/big.npz" --models 10 --points 50000 \
  --population 10000 --classes 100 --seed 5 2>/dev/null
ls -l "$tmp/big.npz" | awk '{printf "bundle: %.1f MB\n", $5 / 1e6}'
/usr/bin/time -f "mia score end to end: %e s wall, peak RSS %M KB" \
  "$BUILD/client/mia" score --bundle "$tmp/big.npz" --attack rmia-offline,lira \
  --out "$tmp/report" -q > /dev/null
cat "$tmp/report/timing.log"; echo
