#!/usr/bin/python3
"""quantize_weights.py - rewrites every Conv/Gemm/MatMul weight of an ONNX model in
place as ternary (TWN: per output channel, threshold 0.7*mean|w|, one magnitude) or
power-of-two (sign * 2^round(log2|w|), exponents in [-7, 0], |w| < 2^-8 -> 0) float
weights, so that fewmul's weight analysis finds them in plain Conv (bench/addonly_bench.sh).

    /usr/bin/python3 bench/quantize_weights.py in.onnx out.onnx ternary|pow2
"""
import sys, numpy as np, onnx
from onnx import numpy_helper
src, dst, mode = sys.argv[1:4]
m = onnx.load(src)
conv_w = set(n.input[1] for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1)
for i, t in enumerate(m.graph.initializer):
    if t.name not in conv_w: continue
    w = numpy_helper.to_array(t).astype(np.float32)
    if w.ndim < 2: continue
    out = np.empty_like(w)
    for c in range(w.shape[0]):
        x = w[c]
        if mode == "ternary":
            d = 0.7 * np.abs(x).mean(); keep = np.abs(x) > d
            a = np.abs(x[keep]).mean() if keep.any() else 1.0
            out[c] = np.where(keep, np.sign(x) * a, 0)
        else:
            s = np.sign(x); e = np.clip(np.round(np.log2(np.abs(x) + 1e-30)), -7, 0)
            out[c] = np.where(np.abs(x) < 2.0 ** -8, 0, s * 2.0 ** e)
    m.graph.initializer[i].CopyFrom(numpy_helper.from_array(out.astype(np.float32), t.name))
onnx.save(m, dst)
