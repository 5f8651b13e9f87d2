#!/usr/bin/env bash
# The layering rules of DESIGN.md that the compiler cannot see, checked on the
# sources. Usage: layering_test.sh REPOSITORY_ROOT
set -u
cd "${1:?repository root}" || exit 1
pass=0
fail=0

# rule NAME -- files... : fails when any of the files matches PATTERN.
# Prints the offending lines (file:line: #include ...).
check() {
  local name=$1 pattern=$2
  shift 2
  local hits
  hits=$(grep -HnE "$pattern" "$@" 2>/dev/null)
  if [ -n "$hits" ]; then
    fail=$((fail + 1)); echo "FAIL $name"; echo "$hits" | sed 's/^/     /'
  else
    pass=$((pass + 1)); echo "ok   $name"
  fi
}

torch='#include [<"](torch/|ATen/|c10/|caffe2/)'
# The model spec is torch-free and below the trainer: core/models headers
# never reach up into core/training.
check "core/models headers do not include core/training" '#include "core/training/' core/models/*.h
check "core/models/model_spec.h is torch-free" "$torch|#include \"core/models/(layers|classifier|registry)" \
  core/models/model_spec.h
check "engine.h is torch-free" "$torch|#include \"core/models/(layers|classifier|registry|mlp|cnn)" \
  core/training/engine.h
check "lm_engine.h is torch-free" "$torch|#include \"core/models/(layers|classifier|registry|gpt)" \
  core/training/lm_engine.h
check "core/models/safetensors.h is torch-free" "$torch" core/models/safetensors.h core/models/safetensors.cc
# Only models/ and training/ use LibTorch.
torch_free=$(ls core/{common,io,metrics,attacks,report,audit,data,text,pipeline,jobs}/*.{h,cc} \
  client/*.{h,cc} server/*.{h,cc} 2>/dev/null)
# shellcheck disable=SC2086
check "no LibTorch outside core/models and core/training" "$torch" $torch_free
# shellcheck disable=SC2086
check "torch-free modules include no LibTorch model headers" \
  '#include "core/models/(layers|classifier|registry|mlp|cnn|alexnet|wide_resnet|vgg16|sparse_linear|gpt)\.h"' \
  $torch_free
# `mia` itself loads no LibTorch: in client/, only the audit command (a
# library of its own) reaches the training pipeline.
client_rest=$(ls client/*.{h,cc} | grep -v '^client/audit_command\.cc$')
# shellcheck disable=SC2086
check "client/ reaches the pipeline only from audit_command.cc" \
  '#include "core/(pipeline/pipeline|training/|models/(layers|classifier|registry))' $client_rest
# core/ is transport-free.
check "core/ includes no gRPC or API protos" '#include [<"](grpc|grpcpp|mia/v1)/' \
  $(ls core/*/*.{h,cc} 2>/dev/null)
# Each target declares its include directories: nothing global.
check "no global include_directories in CMake" '^[[:space:]]*include_directories[[:space:]]*\(' \
  $(find . -name CMakeLists.txt -not -path './build*' -not -path './.git/*')

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
