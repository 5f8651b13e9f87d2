#!/usr/bin/env bash
# On a CUDA machine without apt (the lent device, ../shared/gpu/README.md),
# from the project root, after bench/gpu/pack.sh on the Debian machine: one
# prepared command per device call, each stage under its own time limit,
# every log under $OUT (or /tmp/gpu-check).
#
#   bash bench/gpu/check.sh build tests bench      # about 6-8 min on 16 cores
#   bash bench/gpu/check.sh audits                 # about 6 min
#   bash bench/gpu/check.sh variants               # about 5 min, if time is left
#
# build:  unpacks the packed Debian packages, configures against the
#         machine's PyTorch (torch.utils.cmake_prefix_path; CUDA required,
#         no S3 client) and builds the CLI, the training and pipeline tests
#         and the training benchmark into build-cuda/.
# tests:  the training tests (their GPU cases run here) and the pipeline
#         tests (train.device auto: on the GPU).
# bench:  mia_training_bench on the GPU: 16 Purchase MLPs stacked against one
#         after another; rows on the device or copied per batch; bf16.
# audits: ../shared/gpu's four audits (Purchase, the demo, 16 CNNs on
#         Fashion-MNIST, WRN-28-2) with nvidia-smi sampling utilisation and
#         memory, then the plain-PyTorch reference of the same shapes
#         (pt_ref.py).
# variants: the 16-CNN and WRN audits again with each of the GPU options
#         (train.data_on_device: false, precision: bf16, channels_last: true).
set -u
S=$(cd "$(dirname "$0")/../.." && pwd); G=$S/.gpu; B=${BUILD:-$S/build-cuda}
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
stages=${*:-build tests bench audits variants}
t0=$(date +%s); el() { echo "== [$(($(date +%s) - t0))s] $*"; }
[ -d "$G/debs" ] || { echo "no .gpu/: run bash bench/gpu/pack.sh on the Debian machine and carry .gpu"; exit 2; }

if [[ $stages == *build* ]]; then
  el build
  nvidia-smi -L; python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI)'
  TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}; export PATH=$CUDA_HOME/bin:$PATH
  # A package is unpacked only when the system lacks one of its programs or
  # libraries (unpacking over a newer library can break /); headers and .pc
  # files (-dev) whenever the package is not installed.
  libs=$(ldconfig -p)
  for d in "$G"/debs/*.deb "$G"/extra/*.deb; do
    p=$(dpkg-deb -f "$d" Package)
    dpkg -s "$p" >/dev/null 2>&1 && continue
    need=0; [[ $p == *-dev ]] && need=1
    for f in $(dpkg-deb -c "$d" | awk '{print $6}' | grep -E '^\./usr/bin/|/lib/.*\.so\.[0-9]'); do
      case "$f" in
        ./usr/bin/*) [ -e "${f#.}" ] || need=1 ;;
        *) grep -q "/$(basename "$f")\$" <<< "$libs" || need=1 ;;
      esac
    done
    if [ $need = 1 ]; then dpkg -x "$d" /; fi
  done
  ldconfig
  cmake -S "$S" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TP" \
    -DMIA_REQUIRE_CUDA=ON -DMIA_WITH_S3=OFF -DMIA_BUILD_TESTS=ON -DMIA_BUILD_BENCH=ON \
    > "$OUT/configure.txt" 2>&1 || { tail -40 "$OUT/configure.txt"; exit 1; }
  grep "LibTorch" "$OUT/configure.txt"
  timeout 420 nice ninja -C "$B" -k 0 mia mia_training_test mia_pipeline_test mia_training_bench \
    > "$OUT/build.txt" 2>&1
  rc=$?; grep -E "error:|FAILED" "$OUT/build.txt" | head -40; el "build rc=$rc"
  [ $rc = 0 ] || exit 1
fi

if [[ $stages == *tests* ]]; then
  el tests
  timeout 120 "$B/tests/training/mia_training_test" > "$OUT/training_test.txt" 2>&1
  echo "training tests rc=$?: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/training_test.txt" | tr '\n' ' ')"
  grep -E "^\[  FAILED|DeviceBatchesGpu" "$OUT/training_test.txt" | head -20
  (cd "$B" && timeout 150 ./tests/pipeline/mia_pipeline_test > "$OUT/pipeline_test.txt" 2>&1)
  echo "pipeline tests rc=$?: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/pipeline_test.txt" | tr '\n' ' ')"
  grep -E "^\[  FAILED" "$OUT/pipeline_test.txt" | head -20
fi

if [[ $stages == *bench* ]]; then
  el bench
  for args in "16 3 0 0.165 auto cuda fp32 on" "16 3 0 0.165 auto cuda fp32 off" \
              "16 3 0 0.165 auto cuda bf16 on" "16 3 0 0.165 auto cpu fp32"; do
    echo "-- mia_training_bench $args"
    timeout 100 "$B/bench/mia_training_bench" $args 2>&1 | grep -E "device|batched:|sequential:|speedup"
  done | tee "$OUT/bench.txt"
fi

M=$B/client/mia
if [[ $stages == *audits* || $stages == *variants* ]]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 500 \
    > "$OUT/smi.csv" 2>&1 & smi=$!
  # name config-file timeout [extra train keys]. Since the review's checks
  # (issue 14) online RMIA and LiRA-offline need more models than two of the
  # configs have: the WRN audit runs their offline forms on disjoint splits
  # (the same training work), the demo trains 1 + 4 models instead of 1 + 3.
  audit() {
    sed -e "s#DATA_PURCHASE#$G/data/dataset_purchase.gz#" -e "s#DATA_FMNIST#$G/data/fashion-mnist#" \
        -e "s#DATA_CIFAR#/tmp/cifar#" -e "s#/tmp/gpu-runs/[a-z0-9]*#/tmp/gpu-runs/$1#" \
        -e "/^train:/ s#}\$#${4:+, $4}}#" \
        -e 's/attacks: \[rmia, lira-offline\], num_ref_models: 2,/attacks: [rmia-offline, lira-offline], num_ref_models: 2, splits: disjoint,/' \
        -e 's/lira-offline, loss\], num_ref_models: 3,/lira-offline, loss], num_ref_models: 4,/' \
        "$G/cfg/$2" > "/tmp/$1.yaml"
    local start=$(date +%s%N) from; from=$(wc -l < "$OUT/smi.csv")
    timeout "$3" "$M" audit --config "/tmp/$1.yaml" --out "$OUT/audit-$1" --quiet > "$OUT/audit-$1.log" 2>&1
    local rc=$? wall=$(( ($(date +%s%N) - start) / 1000000 ))
    echo "$1: rc=$rc wall=${wall} ms; GPU $(tail -n +"$from" "$OUT/smi.csv" | awk -F', ' '{u+=$2; n++; m=($3+0>m)?$3+0:m} END {if (n) printf "utilisation mean %.0f%%, memory peak %d MiB over %d samples", u/n, m, n}')"
    tail -2 "$OUT/audit-$1.log"; cat "$OUT/audit-$1/timing.log" 2>/dev/null
    grep -E "^\| 0 " "$OUT/audit-$1/summary.md" 2>/dev/null | head -6
  }
  python3 -c '
import numpy as np, os
os.makedirs("/tmp/cifar", exist_ok=True); r = np.random.default_rng(0)
for n in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    a = r.integers(0, 256, (10000, 3073), dtype=np.uint8); a[:, 0] %= 10; a.tofile(f"/tmp/cifar/{n}")'
fi
if [[ $stages == *audits* ]]; then
  el audits
  audit purchase gpu_purchase.yaml 60
  audit demo gpu_demo.yaml 60
  audit fm16 gpu_fmnist16.yaml 150
  audit wrn gpu_wrn.yaml 120
  el "plain PyTorch, same shapes"
  timeout 200 python3 "$G/pt_ref.py" "$G/data/fashion-mnist" 2>&1 | tee "$OUT/pt_ref.txt"
fi
if [[ $stages == *variants* ]]; then
  el variants
  audit fm16-host gpu_fmnist16.yaml 150 "data_on_device: false"
  audit fm16-bf16 gpu_fmnist16.yaml 100 "precision: bf16"
  audit fm16-cl gpu_fmnist16.yaml 100 "channels_last: true"
  audit wrn-bf16-cl gpu_wrn.yaml 100 "precision: bf16, channels_last: true"
fi
if [[ $stages == *audits* || $stages == *variants* ]]; then
  kill $smi 2>/dev/null
fi
el done
