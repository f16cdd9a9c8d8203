#!/usr/bin/python3
"""gen_import_fixtures.py - PyTorch-exported fixtures for tests/e2e/import_onnx.sh
(`fewmul train --from model.onnx`, trainer/onnx_import.c), beside the ones of
tools/gen_pytorch_fixtures.py (tests/e2e/pytorch), which the test uses too.

    tests/e2e/import/mix.onnx          opset 13, dynamic batch: input normalisation (Sub/Div by
                                       buffers), Conv+BN (kept), dilated grouped conv, ReLU6 (Clip),
                                       depthwise stride-2 conv, Sigmoid, ConvTranspose, Concat,
                                       x * tanh(x), MaxPool, LeakyRelu, Sub of a constant,
                                       AvgPool, Flatten, MatMul + Add (a parameter), Linear
    tests/e2e/import/mix_input.npy     float32 (3, 3, 16, 16) in [0, 1]
    tests/e2e/import/mix_output.npy    PyTorch's output (3, 5)
    tests/e2e/import/noweights.onnx    Relu -> GlobalAveragePool -> Flatten: no initialisers

Run with Debian's torch:  /usr/bin/python3 tools/gen_import_fixtures.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "e2e", "import")


class Mix(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.2, 0.3]).view(1, 3, 1, 1))
        self.c1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(8)
        self.g = nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=4)
        self.d = nn.Conv2d(8, 8, 3, 2, 1, groups=8)
        self.up = nn.ConvTranspose2d(8, 4, 2, 2)
        self.c2 = nn.Conv2d(12, 8, 1, bias=False)
        self.w = nn.Parameter(torch.randn(8 * 4 * 4, 16) * 0.1)
        self.b = nn.Parameter(torch.randn(16) * 0.1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):                                     # N,3,16,16
        x = (x - self.mean) / self.std
        x = F.relu(self.bn1(self.c1(x)))                      # N,8,16,16
        a = F.relu6(self.g(x))
        b = self.up(torch.sigmoid(self.d(x)))                 # N,4,16,16
        y = self.c2(torch.cat([a, b], 1))                     # N,8,16,16
        y = y * torch.tanh(y)
        y = F.leaky_relu(F.max_pool2d(y, 2), 0.1) - 0.5       # N,8,8,8
        y = torch.flatten(F.avg_pool2d(y, 2), 1)              # N,128
        y = F.relu(y @ self.w + self.b)
        y = F.dropout(y, 0.3, self.training)
        return self.fc(y)


class NoWeights(nn.Module):
    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(x), 1), 1)


def main():
    torch.manual_seed(7)
    os.makedirs(OUT, exist_ok=True)
    m = Mix()
    with torch.no_grad():   # non-trivial BN statistics
        m.bn1.running_mean.uniform_(-0.2, 0.2)
        m.bn1.running_var.uniform_(0.5, 1.5)
        m.bn1.weight.uniform_(0.5, 1.5)
        m.bn1.bias.uniform_(-0.2, 0.2)
    m.eval()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        y = m(x)
    torch.onnx.export(m, x, os.path.join(OUT, "mix.onnx"), opset_version=13, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    np.save(os.path.join(OUT, "mix_input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(OUT, "mix_output.npy"), y.numpy().astype(np.float32))
    torch.onnx.export(NoWeights().eval(), torch.rand(1, 3, 8, 8), os.path.join(OUT, "noweights.onnx"), opset_version=13,
                      input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})


if __name__ == "__main__":
    main()
