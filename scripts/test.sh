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

# The OpenCL backend on PoCL runs in a build without LLVM: PoCL loads LLVM 15 into the
# process, and a fewmul linked with LLVM 14 (the LLVM backend) crashes inside PoCL's
# program build (the two libLLVMs' C++ symbols clash). The gpu tests of the build above
# skip, saying so; here they run.
echo "== OpenCL backend on PoCL (build-gpu: -DFM_LLVM=OFF)"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DFM_WERROR=ON -DFM_LLVM=OFF >/dev/null
cmake --build build-gpu -j"$jobs"
(cd build-gpu && ctest --output-on-failure -j"$jobs" -R 'gpu')

if [ "${FEWMUL_QUICK:-0}" != 1 ]; then
  echo "== sanitiser build (ASan+UBSan): unit and end-to-end tests"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFM_SANITIZE=ON -DFM_WERROR=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  # the e2e tests that only repeat the release build's numerics on large models stay out
  # (CI time): the hostile-input, CLI, import and training tests run here
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j"$jobs" -R '^(unit|e2e)/' \
     -E 'e2e/(deployed_models|llvm_backend|gpu_|mpi_|winograd_pytorch|target_isa|sp_export|methods_export)')
  if [ -f tests/fuzz/run.sh ]; then
    echo "== fuzzers (bounded, ASan+UBSan)"
    bash tests/fuzz/run.sh "${FEWMUL_FUZZ_SECONDS:-20}"
  fi
fi
