#!/bin/bash
# gpu_cuda.sh - the CUDA backend (--emit cuda): every PyTorch fixture compiles with nvcc
# (warnings as errors, the backend's build flags); where an NVIDIA GPU is present (nvidia-smi
# lists one) each also runs and its outputs match the C backend's within 1e-5 + 1e-5 * |C|.
# Says which was done. Skips (77) when nvcc is not installed.
# Usage: bash gpu_cuda.sh <fewmul-binary> <source-dir> <scratch-dir>   (77 = skipped)
. "$(dirname "$0")/lib/common.sh"
export PATH=$PATH:/usr/local/cuda/bin
command -v "${NVCC:-nvcc}" >/dev/null || { echo "SKIP: nvcc is not installed (CUDA toolkit)"; exit 77; }
enter_work
FIX=$SRC/tests/e2e/pytorch
gpu=0
nvidia-smi -L >/dev/null 2>&1 && gpu=1
[ $gpu = 1 ] || echo "note: no NVIDIA GPU: the CUDA models are compiled with nvcc, not run"
while read -r name _; do
  case "$name" in ''|'#'*) continue ;; esac
  if ! "$FEWMUL" compile "$FIX/$name.onnx" -o "g_$name" --emit cuda -q >cc.log 2>&1; then
    bad "$name: compile --emit cuda: $(head -c 400 cc.log)"; continue
  fi
  ok "$name: model.cu built by nvcc -Werror all-warnings"
  [ $gpu = 1 ] || continue
  command -v node >/dev/null || { echo "note: node missing: outputs not compared"; continue; }
  "$FEWMUL" compile "$FIX/$name.onnx" -o "c_$name" -q >cc.log 2>&1 || { bad "$name: compile (C)"; continue; }
  "$FEWMUL" run "c_$name" --input "$FIX/${name}_input.npy" -o "rc_$name" -q >run.log 2>&1 || { bad "$name: run (C)"; continue; }
  if ! "$FEWMUL" run "g_$name" --input "$FIX/${name}_input.npy" --device cuda:0 -o "rg_$name" -q >run.log 2>&1; then
    bad "$name: run (CUDA): $(head -c 300 run.log)"; continue
  fi
  for f in "rc_$name"/*.npy; do
    if out=$(node "$SRC/tests/e2e/npy_compare.js" "rg_$name/$(basename "$f")" "$f" --atol 1e-5 --rtol 1e-5 2>&1); then
      ok "$name: ran on the GPU: CUDA vs C: $out"
    else bad "$name: CUDA vs C: $out"; fi
  done
done <"$FIX/models.txt"
finish gpu_cuda
