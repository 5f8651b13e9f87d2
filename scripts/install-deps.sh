#!/usr/bin/env bash
# Installs every Debian 12 package mia needs to build, test and run, idempotently,
# and selects OpenBLAS as the system BLAS (Debian's libtorch otherwise runs on the
# reference BLAS, about 19x slower). The only install step of the project: the
# Makefile calls it when something is missing. Safe to run again at any time.
#
#   scripts/install-deps.sh               build, test, benchmark, validate deploy/
#   scripts/install-deps.sh --bench       the same (the benchmarks' peers, PyTorch
#                                         included, are test packages)
#   scripts/install-deps.sh --build-only  only what building mia and mia-server
#                                         needs (the Dockerfile's build stage;
#                                         configure with -DMIA_BUILD_TESTS=OFF
#                                         -DMIA_BUILD_BENCH=OFF)
#   ... --no-torch                        without Debian's LibTorch and OpenBLAS: for
#                                         a build against another LibTorch named by
#                                         -DCMAKE_PREFIX_PATH (docs/gpu.md; the CUDA
#                                         image, deploy/docker/Dockerfile.cuda, on
#                                         Ubuntu 24.04, whose package names are these)
#   ... --list                            print the packages, install nothing
set -euo pipefail

mode=all
list=false
torch=true
for arg in "$@"; do
  case "$arg" in
    --build-only) mode=build ;;
    --bench) mode=bench ;;
    --list) list=true ;;
    --no-torch) torch=false ;;
    *) echo "install-deps: unknown argument $arg (--build-only, --bench, --no-torch, --list)" >&2; exit 2 ;;
  esac
done

BUILD_PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config
  # core libraries
  libabsl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev zlib1g-dev
  libdeflate-dev
  libssl-dev
  # the server's JWT checks (server/auth.cc)
  libjwt-dev
  # tokenizers: GPT-2's pre-tokenization regex (Unicode properties) through PCRE2
  libpcre2-dev
  # service: gRPC, protobuf (protoc and its C++/Python plugins), storage, metrics
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libsqlite3-dev
  prometheus-cpp-dev
  # the PostgreSQL job store and work queue of several replicas (--store=postgresql://...)
  libpq-dev
  # the shared artifact store's S3 client (AWS SigV4 signing built in)
  libcurl4-openssl-dev
)
TEST_PACKAGES=(
  git time
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev python3-numpy
  # the service's tests: health/reflection protos, Python clients, sqlite3 CLI
  grpc-proto python3-grpcio python3-protobuf sqlite3
  # the Python client (clients/python): YAML job files
  python3-yaml
  # throwaway TLS certificates in tests/integration/server_test.sh and deploy/validate.sh
  openssl
  # real data shipped as a package: images, and text (/usr/share/games/fortunes;
  # `fortunes` pulls in `fortunes-min`)
  dataset-fashion-mnist fortunes
  # examples/lm_bundle.py's PyTorch half (tests/cli/lm_bundle_example_test.py)
  # and the plain-PyTorch peer of the language-model benchmark
  python3-torch
  # deploy/validate.sh (a test): Go with sprig renders the Helm chart
  golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev
  # tests/browser: headless chromium renders report.html and the dashboard
  # (driven by npm puppeteer-core; as root it runs with --no-sandbox)
  chromium
  # tests/postgres: a real PostgreSQL 15 (initdb, pg_ctl) for the PostgreSQL
  # store and work queue tests and several replicas on one database
  postgresql-15
)
# The comparison benchmarks need nothing beyond the test packages today
# (python3-torch is one of them); --bench stays for scripts that pass it.
BENCH_PACKAGES=()
# training engine: LibTorch (CPU) on OpenBLAS, unless another LibTorch is used
if $torch; then
  BUILD_PACKAGES+=(libtorch-dev libopenblas0-openmp)
fi
PACKAGES=("${BUILD_PACKAGES[@]}")
if [ "$mode" = bench ]; then
  PACKAGES+=(${BENCH_PACKAGES[@]+"${BENCH_PACKAGES[@]}"})
  mode=all
fi
if [ "$mode" = all ]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
  # ... and Node.js with npm for the Kubernetes schemas; a machine that already
  # has node and npm (e.g. from NodeSource) keeps them.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
  fi
fi

if $list; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#PACKAGES[@]} packages present"
fi

$torch || exit 0
# Select OpenBLAS (OpenMP build) for libblas.so.3 and liblapack.so.3.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
  alt="${lib}-${arch}"
  want="/usr/lib/${arch}/openblas-openmp/${lib}"
  if [ -e "$want" ] && update-alternatives --query "$alt" >/dev/null 2>&1; then
    cur=$(update-alternatives --query "$alt" | awk '/^Value:/{print $2}')
    if [ "$cur" != "$want" ]; then
      $SUDO update-alternatives --set "$alt" "$want"
    fi
  fi
done
blas=$(readlink -f "/usr/lib/${arch}/libblas.so.3" || true)
case "$blas" in
  *openblas*) echo "install-deps: BLAS is OpenBLAS ($blas)";;
  *) echo "install-deps: WARNING: BLAS is $blas, not OpenBLAS" >&2;;
esac
