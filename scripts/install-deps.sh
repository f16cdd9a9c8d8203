#!/usr/bin/env bash
# Installs the Debian (and npm) packages fewmul needs that are missing.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs="build-essential cmake pkg-config protobuf-c-compiler libprotobuf-c-dev libonnx-dev
      libopenblas-dev libonnx-testdata dataset-fashion-mnist clang llvm-dev
      pocl-opencl-icd ocl-icd-opencl-dev opencl-headers libclang-rt-14-dev
      python3-torch python3-torchvision python3-onnx
      openmpi-bin libopenmpi-dev"

missing=""
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# ONNX Runtime (reference runtime for tests and benchmarks). Optional: tests skip
# with a message when it is absent. Its install script downloads a binary, which
# is blocked here, so it is installed with --ignore-scripts (the CPU library ships
# inside the package).
if [ "${FEWMUL_NO_ORT:-0}" != 1 ] && [ ! -d tools/ort/node_modules/onnxruntime-node ]; then
  echo "install-deps: installing onnxruntime-node (npm)"
  (cd tools/ort && npm install --silent --no-audit --no-fund --ignore-scripts >/dev/null 2>&1) ||
    echo "install-deps: onnxruntime-node could not be installed; ORT comparisons will be skipped"
fi
exit 0
