#!/bin/bash
# run.sh [SECONDS] [TARGET...] - fuzzes the compiler's input paths: builds the libFuzzer
# targets with clang (libFuzzer + ASan + UBSan, the libraries instrumented too) in their
# own build dir and runs each for SECONDS (default $FEWMUL_FUZZ_SECONDS, else 30):
#   fuzz_onnx     ONNX loader and writer
#   fuzz_compile  load -> passes -> lowering -> memory plan (no C compiler)
#   fuzz_arrays   .npy / .pb readers
#   fuzz_idx      the trainer's gzip decoder and IDX reader
# (all four when no TARGET is named). Each starts from the checked-in seed corpus
# tests/fuzz/corpus/<compile|arrays|idx> (regenerate with make_corpus.sh) plus, for the
# model targets, a few small backend-test models. Exits non-zero on any crash, leak,
# timeout or sanitizer report; the reproducer is left in the build dir (crash-*, ...).
#   FM_FUZZ_BUILD=dir  build dir (default: build-fuzz in the source tree)
#   FM_FUZZ_JOBS=n     parallel fuzzing processes per target (default 1)
set -euo pipefail
secs=${1:-${FEWMUL_FUZZ_SECONDS:-30}}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_onnx fuzz_compile fuzz_arrays fuzz_idx)
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FM_FUZZ_BUILD:-$src/build-fuzz}
data=/usr/share/libonnx-testdata/data

command -v clang >/dev/null || { echo "run.sh: clang is not installed" >&2; exit 77; }
san="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DFM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DFM_NATIVE=OFF "-DCMAKE_C_FLAGS=$san" >/dev/null
if ! cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$build/fuzz-build.log" 2>&1; then
  tail -40 "$build/fuzz-build.log" >&2
  exit 1
fi

# The working corpus of each target lives in the build dir (libFuzzer adds to it).
seed() { # target seed-dir
  local corpus=$build/corpus-$1
  mkdir -p "$corpus"
  [ -d "$src/tests/fuzz/corpus/$2" ] && cp -n "$src/tests/fuzz/corpus/$2"/* "$corpus/" 2>/dev/null || true
  echo "$corpus"
}
models() { # corpus: small backend-test models
  local t
  [ -d "$data" ] || { echo "run.sh: $data is absent: seeding with the checked-in corpus only" >&2; return; }
  for t in node/test_add node/test_constant node/test_conv_with_strides_padding \
           node/test_layer_normalization_2d_axis0_expanded node/test_reshape_reordered_all_dims \
           node/test_if node/test_gemm_default_single_elem_vector_bias node/test_slice \
           node/test_expand_dim_changed node/test_tile node/test_range_int32_type_negative_delta \
           node/test_constantofshape_int_zeros pytorch-converted/test_BatchNorm2d_eval \
           pytorch-operator/test_operator_conv; do
    [ -f "$data/$t/model.onnx" ] && cp "$data/$t/model.onnx" "$1/$(basename "$t").onnx"
  done
  return 0
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs=${FM_FUZZ_JOBS:-1}
extra=()
[ "$jobs" -gt 1 ] && extra=(-jobs="$jobs" -workers="$jobs")
rc=0
for t in "${targets[@]}"; do
  case $t in
    fuzz_onnx) corpus=$(seed "$t" compile); models "$corpus"; export FM_FUZZ_SEED_DIR=$corpus ;;
    fuzz_compile) corpus=$(seed "$t" compile); models "$corpus" ;;
    fuzz_arrays) corpus=$(seed "$t" arrays)
      [ -d "$data" ] && for d in node/test_add node/test_cast_FLOAT_to_INT8 node/test_argmax_default_axis_example; do
        cp "$data/$d/test_data_set_0/"*.pb "$corpus/" 2>/dev/null || true
        for f in "$corpus"/input_*.pb "$corpus"/output_*.pb; do
          [ -f "$f" ] && mv "$f" "$corpus/$(basename "$d")_$(basename "$f")"
        done
      done ;;
    fuzz_idx) corpus=$(seed "$t" idx) ;;
    *) echo "run.sh: unknown target $t" >&2; exit 2 ;;
  esac
  echo "== $t: ${secs}s from $(ls "$corpus" | wc -l) seeds"
  if (cd "$build" && ./tests/fuzz/"$t" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=20 \
        -print_final_stats=1 "${extra[@]}" "$corpus" >"$build/$t.log" 2>&1); then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$build/$t.log" || true
  else
    tail -n 80 "$build/$t.log" >&2
    echo "run.sh: $t found a bug (log: $build/$t.log; reproducer: $build/crash-*|leak-*|timeout-*)" >&2
    rc=1
  fi
done
exit $rc
