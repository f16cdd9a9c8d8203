#!/bin/bash
# run.sh [SECONDS] - fuzzes the ONNX loader: builds tests/fuzz/fuzz_onnx with clang
# (libFuzzer + ASan + UBSan, the libraries instrumented too) in its own build dir and
# runs it for SECONDS (default 60) on a seed corpus of small backend-test models plus
# a model with model-local functions. Exits non-zero on any crash, leak or report;
# the reproducer is left in the build dir (crash-*, leak-*, ...).
#   FM_FUZZ_BUILD=dir  build dir (default: build-fuzz in the source tree)
#   FM_FUZZ_JOBS=n     parallel fuzzing processes (default 1)
set -euo pipefail
secs=${1:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FM_FUZZ_BUILD:-$src/build-fuzz}
data=/usr/share/libonnx-testdata/data

command -v clang >/dev/null || { echo "run.sh: clang is not installed" >&2; exit 77; }
san="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DFM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DFM_NATIVE=OFF "-DCMAKE_C_FLAGS=$san" >/dev/null
if ! cmake --build "$build" -j"$(nproc)" --target fuzz_onnx >"$build/fuzz-build.log" 2>&1; then
  tail -40 "$build/fuzz-build.log" >&2
  exit 1
fi

corpus=$build/fuzz-corpus
mkdir -p "$corpus"
if [ -d "$data" ]; then
  for t in node/test_add node/test_constant node/test_conv_with_strides_padding \
           node/test_layer_normalization_2d_axis0_expanded node/test_reshape_reordered_all_dims \
           node/test_if node/test_gemm_default_single_elem_vector_bias \
           pytorch-converted/test_BatchNorm2d_eval pytorch-operator/test_operator_conv; do
    [ -f "$data/$t/model.onnx" ] && cp "$data/$t/model.onnx" "$corpus/$(basename "$t").onnx"
  done
else
  echo "run.sh: $data is absent: seeding with the generated model only" >&2
fi
export FM_FUZZ_SEED_DIR=$corpus
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
jobs=${FM_FUZZ_JOBS:-1}
extra=()
[ "$jobs" -gt 1 ] && extra=(-jobs="$jobs" -workers="$jobs")
./tests/fuzz/fuzz_onnx -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  "${extra[@]}" "$corpus"
