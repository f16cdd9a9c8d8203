#!/usr/bin/python3
"""winograd_models.py - PyTorch exports (plain Conv) for bench/winograd_bench.sh.

    /usr/bin/python3 bench/winograd_models.py OUTDIR

Writes OUTDIR/resnet20.onnx (CIFAR ResNet-20, widths 16-32-64, option-A shortcuts as
1x1 stride-2 convs) and OUTDIR/resnet18w.onnx (the Winograd-aware seed's ResNet-18 for
CIFAR at width 0.5: stem 32, stages 32-64-128-256, stride-2 3x3 convs replaced by maxpool
2x2 + a stride-1 conv), both in eval mode with a symbolic batch, opset 13. Untrained
weights (seeded): speed does not depend on them. Needs Debian's python3-torch.
"""
import sys
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride, pool):
        super().__init__()
        self.pool = nn.MaxPool2d(2) if (stride == 2 and pool) else None
        s = 1 if pool else stride
        self.c1 = nn.Conv2d(cin, cout, 3, s, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.pool(x) if self.pool is not None else x
        y = torch.relu(self.b1(self.c1(y)))
        y = self.b2(self.c2(y))
        return torch.relu(y + (self.short(x) if self.short is not None else x))


class Net(nn.Module):
    def __init__(self, stem, widths, blocks, pool):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU())
        layers, cin = [], stem
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(Block(cin, w, 2 if (i > 0 and j == 0) else 1, pool))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def export(net, path):
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(1, 3, 32, 32)
    torch.onnx.export(net, x, path, opset_version=13, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    torch.manual_seed(0)
    export(Net(16, [16, 32, 64], [3, 3, 3], False), f"{out}/resnet20.onnx")
    torch.manual_seed(0)
    export(Net(32, [32, 64, 128, 256], [2, 2, 2, 2], True), f"{out}/resnet18w.onnx")
