#!/usr/bin/env bash
# The main job on the shipped default model: install what is missing, build, then
# compile the Fashion-MNIST CNN (models/fmnist_cnn.onnx, trained by `fewmul train`)
# to C, run it on 1,000 shipped test images (outputs and accuracy), and print its
# latency and its per-layer cost report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target fewmul >/dev/null
model=${1:-models/fmnist_cnn.onnx}
fewmul=build/fewmul
echo "== fewmul info $model"
$fewmul info "$model"
echo
echo "== fewmul compile $model -o out/fmnist_cnn"
$fewmul compile "$model" -o out/fmnist_cnn
echo
echo "== fewmul run: 1,000 Fashion-MNIST test images"
$fewmul run out/fmnist_cnn --input models/fmnist_test1000.npy --labels models/fmnist_test1000_labels.npy -o out/fmnist_results
echo
echo "== fewmul cost $model"
$fewmul cost "$model"
echo
echo "== fewmul bench out/fmnist_cnn --batch 1 --threads 1"
$fewmul bench out/fmnist_cnn --batch 1 --threads 1 --iters 100
