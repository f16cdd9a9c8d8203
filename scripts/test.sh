#!/usr/bin/env bash
# Installs what is missing, builds (warnings are errors), and runs every test:
# unit tests, the CLI end-to-end tests, the ONNX backend conformance suite, the
# unit and end-to-end tests again under ASan+UBSan (the fewmul binary is sanitised;
# the model .so files it builds with cc are not; conformance stays out of this leg,
# it would take too long), and a bounded run of each fuzzer (tests/fuzz/run.sh:
# FEWMUL_FUZZ_SECONDS per target, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DFM_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${FEWMUL_QUICK:-0}" != 1 ]; then
  echo "== sanitiser build (ASan+UBSan): unit and end-to-end tests"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFM_SANITIZE=ON -DFM_WERROR=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j"$jobs" -R '^(unit|e2e)/')
  if [ -f tests/fuzz/run.sh ]; then
    echo "== fuzzers (bounded, ASan+UBSan)"
    bash tests/fuzz/run.sh "${FEWMUL_FUZZ_SECONDS:-20}"
  fi
fi
