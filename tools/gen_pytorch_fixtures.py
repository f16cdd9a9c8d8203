#!/usr/bin/python3
"""gen_pytorch_fixtures.py - PyTorch-exported ONNX fixtures for tests/e2e/pytorch_models.sh.

Builds a handful of small models with fixed seeds, puts them in eval mode with
non-trivial BatchNorm statistics, exports each with torch.onnx.export and writes

    tests/e2e/pytorch/<name>.onnx         the exported model
    tests/e2e/pytorch/<name>_input.npy    float32 input, batch 3
    tests/e2e/pytorch/<name>_output.npy   PyTorch's output on that input
    tests/e2e/pytorch/README.md           the models, opsets and ONNX op types
    tests/e2e/pytorch/models.txt          the list the test reads: name and batch (N or fixed)

Run with Debian's torch (never the pyenv python on PATH):

    /usr/bin/python3 tools/gen_pytorch_fixtures.py [OUTDIR]

Python and torch are needed only to regenerate the fixtures; the test itself
(tests/e2e/pytorch_models.sh) needs only fewmul, a C compiler and node.
"""
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "e2e", "pytorch")
BATCH = 3


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s)


class ResNetTiny(nn.Module):
    """CIFAR-style ResNet: 8-channel stem, one BasicBlock per stage at 8/16/32 channels."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.layer3 = BasicBlock(16, 32, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


class LeNetish(nn.Module):
    """MaxPool, AvgPool, flatten with x.view(x.size(0), -1) (Shape/Gather/Unsqueeze/Concat/Reshape
    in the export), Dropout (removed by the eval-mode export), LogSoftmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool2 = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        x = self.drop(F.relu(self.fc1(x)))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(20, 32)
        self.l2 = nn.Linear(32, 32)
        self.l3 = nn.Linear(32, 24)
        self.l4 = nn.Linear(24, 16)
        self.l5 = nn.Linear(16, 5)
        self.leaky = nn.LeakyReLU(0.1)

    def forward(self, x):
        x = torch.relu(self.l1(x))
        x = torch.sigmoid(self.l2(x))
        x = torch.tanh(self.l3(x))
        x = self.leaky(self.l4(x))
        return torch.softmax(self.l5(x), dim=-1)


class ConvMix(nn.Module):
    """Depthwise, grouped and dilated convs, reflect padding, ConvTranspose2d, nearest and
    bilinear upsampling, concat of branches, Hardswish/Hardsigmoid, BN, mean over H and W."""

    def __init__(self, classes=7):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)                  # depthwise
        self.grp = nn.Conv2d(8, 8, 3, padding=1, groups=2)                  # grouped
        self.dil = nn.Conv2d(8, 8, 3, padding=2, dilation=2)                # dilated
        self.hs = nn.Hardswish()
        self.hsig = nn.Hardsigmoid()
        self.down = nn.Conv2d(24, 16, 3, stride=2)                          # after reflect pad
        self.up_t = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)       # 8x8 -> 16x16
        self.up_t2 = nn.ConvTranspose2d(16, 4, 3, stride=2, padding=1, output_padding=1, groups=4)
        self.mix = nn.Conv2d(8 + 4 + 16 + 16, 12, 1)
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))                                   # N,8,16,16
        a = self.hs(self.dw(x))
        b = self.hsig(self.grp(x))
        c = F.relu6(self.dil(x))
        y = torch.cat([a, b, c], 1)                                         # N,24,16,16
        y = F.pad(y, (1, 1, 1, 1), mode="reflect")                          # N,24,18,18
        y = F.relu(self.down(y))                                            # N,16,8,8
        t = self.up_t(y)                                                    # N,8,16,16
        t2 = self.up_t2(y)                                                  # N,4,16,16
        n = F.interpolate(y, scale_factor=2, mode="nearest")                # N,16,16,16
        bl = F.interpolate(y, size=(16, 16), mode="bilinear", align_corners=False)
        z = self.mix(torch.cat([t, t2, n, bl], 1))                          # N,12,16,16
        return self.fc(z.mean([2, 3]))


class ExportOps(nn.Module):
    """Ops typical of exports: permute, reshape(-1, ...), matmul with a parameter, clamp,
    x * 0.5 + 1, layer_norm over the last dim, torch.flatten(x, 1)."""

    def __init__(self, classes=6):
        super().__init__()
        self.W = nn.Parameter(torch.randn(4, 16) * 0.5)
        self.ln = nn.LayerNorm(16)
        self.fc = nn.Linear(48 * 16, classes)

    def forward(self, x):                                                   # N,4,6,8
        y = x.permute(0, 2, 3, 1)                                           # N,6,8,4
        y = y.reshape(-1, 4)                                                # N*48,4
        y = torch.matmul(y, self.W)                                         # N*48,16
        y = torch.clamp(y, -1.5, 2.0)
        y = y * 0.5 + 1
        y = y.reshape(-1, 48, 16)                                           # N,48,16
        y = self.ln(y)
        y = torch.flatten(y, 1)                                             # N,768
        return self.fc(y)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def randomize_bn(model, in_shape, gen):
    """Non-trivial BN statistics: a few train-mode forwards on shifted, scaled random data,
    then random affine parameters."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    model.train()
    for bn in bns:
        bn.momentum = None   # cumulative average over the forwards below
    with torch.no_grad():
        for _ in range(4):
            x = torch.randn((16,) + in_shape, generator=gen) * 1.5 + 0.3
            model(x)
        for bn in bns:
            c = bn.num_features
            bn.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(c, generator=gen) * 0.2)
            bn.momentum = 0.1


def spread(model, gain, head):
    """Scales conv and linear weights by gain (PyTorch's default init shrinks activations
    layer by layer) and the last Linear by head more, so the outputs are O(1) and differ
    between the samples of the batch."""
    with torch.no_grad():
        layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        for m in layers:
            m.weight.mul_(gain)
        layers[-1].weight.mul_(head)


def argmax_margin(y):
    """Smallest gap between the largest and second largest value of a row."""
    top2 = torch.topk(y, 2, dim=1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def export(model, x, path, opset, dynamic, keep_bn):
    """keep_bn: TrainingMode.PRESERVE on an eval-mode model skips the exporter's eval peephole,
    so BatchNormalization nodes stay in the graph instead of being folded into the convs."""
    kw = {}
    if keep_bn:
        kw["training"] = torch.onnx.TrainingMode.PRESERVE
    if dynamic:
        kw["dynamic_axes"] = {"input": {0: "N"}, "output": {0: "N"}}
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"],
                      output_names=["output"], do_constant_folding=True, **kw)


def pb_fields(buf):
    """Yields (field, wiretype, value) of one protobuf message (value: int or bytes)."""
    i, n = 0, len(buf)

    def varint():
        nonlocal i
        shift = v = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while i < n:
        key = varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            yield field, wt, varint()
        elif wt == 1:
            yield field, wt, buf[i:i + 8]
            i += 8
        elif wt == 2:
            ln = varint()
            yield field, wt, buf[i:i + ln]
            i += ln
        elif wt == 5:
            yield field, wt, buf[i:i + 4]
            i += 4
        else:
            raise ValueError("unsupported wire type %d" % wt)


def onnx_summary(path):
    """(opset, op types in first-use order with counts, node count, initializer count)."""
    data = open(path, "rb").read()
    opset, graph = None, b""
    for f, _, v in pb_fields(data):
        if f == 7:          # ModelProto.graph
            graph = v
        elif f == 8:        # ModelProto.opset_import
            dom, ver = "", None
            for g, _, w in pb_fields(v):
                if g == 1:
                    dom = w.decode()
                elif g == 2:
                    ver = w
            if dom in ("", "ai.onnx"):
                opset = ver
    ops, nodes, inits = {}, 0, 0
    for f, _, v in pb_fields(graph):
        if f == 1:          # GraphProto.node
            nodes += 1
            for g, _, w in pb_fields(v):
                if g == 4:  # NodeProto.op_type
                    t = w.decode()
                    ops[t] = ops.get(t, 0) + 1
        elif f == 5:        # GraphProto.initializer
            inits += 1
    return opset, ops, nodes, inits


# ---------------------------------------------------------------------------
# the fixtures: name, constructor, input shape (without batch), opset, dynamic batch,
# BatchNormalization nodes kept in the graph (else folded into the convs by the exporter),
# (weight gain, extra gain of the last Linear) (see spread), notes
# ---------------------------------------------------------------------------
FIXTURES = [
    ("resnet_tiny", ResNetTiny, (3, 32, 32), 13, True, True, (1.7, 2.0),
     "BatchNormalization nodes kept (TrainingMode.PRESERVE on the eval-mode model). "
     "CIFAR-style ResNet: conv-BN-ReLU stem (8 ch), 3 stages of 1 BasicBlock at 8/16/32 ch, "
     "stride-2 stages with 1x1 conv+BN projection shortcuts, residual Add, "
     "AdaptiveAvgPool2d(1), flatten, Linear to 10."),
    ("lenet", LeNetish, (1, 28, 28), 11, True, False, (1.7, 6.0),
     "LeNet-ish: MaxPool2d, AvgPool2d, x.view(x.size(0), -1) "
     "(Shape->Gather->Unsqueeze->Concat->Reshape on the symbolic batch), Dropout "
     "(dropped by the eval-mode export), Linear, ReLU, LogSoftmax."),
    ("mlp", MLP, (20,), 13, False, False, (2.0, 8.0),
     "MLP with Linear/ReLU/Sigmoid/Tanh/LeakyReLU/Softmax; the only fixture with a fixed "
     "batch (input 3x20)."),
    ("convmix", ConvMix, (3, 16, 16), 17, True, False, (1.7, 20.0),
     "Default export (the exporter folds the BN into the stem conv). "
     "Depthwise, grouped and dilated convs, BN, Hardswish/Hardsigmoid/ReLU6, concat of "
     "branches, F.pad reflect, ConvTranspose2d (plain and grouped with output_padding), "
     "F.interpolate nearest (scale 2) and bilinear (size=16x16), mean over [2,3], Linear."),
    ("export_ops", ExportOps, (4, 6, 8), 13, True, False, (1.0, 2.0),
     "permute, reshape(-1, 4), matmul with a parameter, clamp, x * 0.5 + 1, reshape(-1, 48, 16), "
     "layer_norm over the last dim (decomposed at opset 13), torch.flatten(x, 1), Linear."),
    ("export_ops17", ExportOps, (4, 6, 8), 17, True, False, (1.0, 2.0),
     "The export_ops model exported at opset 17 (layer_norm becomes LayerNormalization)."),
]


def main():
    warnings.filterwarnings("ignore", category=UserWarning)
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    rows = []
    for idx, (name, ctor, shape, opset, dynamic, keep_bn, (gain, head), notes) in enumerate(FIXTURES):
        seed = 1000 + idx if name != "export_ops17" else 1000 + 4   # same weights as export_ops
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = ctor()
        spread(model, gain, head)
        randomize_bn(model, shape, gen)
        model.eval()
        x = torch.randn((BATCH,) + shape, generator=gen)
        with torch.no_grad():
            y = model(x)
        # the test compares argmaxes: keep them far from ties
        assert argmax_margin(y) > 1e-2, "%s: argmax margin %g" % (name, argmax_margin(y))
        onnx_path = os.path.join(OUT, name + ".onnx")
        export(model, x, onnx_path, opset, dynamic, keep_bn)
        np.save(os.path.join(OUT, name + "_input.npy"), np.ascontiguousarray(x.numpy(), dtype=np.float32))
        np.save(os.path.join(OUT, name + "_output.npy"), np.ascontiguousarray(y.numpy(), dtype=np.float32))
        got_opset, ops, nodes, inits = onnx_summary(onnx_path)
        params = sum(p.numel() for p in model.parameters())
        print("%-13s opset %s  %3d nodes  %6d params  in %s  out %s\n    %s" % (
            name, got_opset, nodes, params, list(x.shape), list(y.shape),
            " ".join("%s(%d)" % kv for kv in ops.items())))
        rows.append((name, got_opset, dynamic, list(x.shape), list(y.shape), nodes, params, ops, notes))

    with open(os.path.join(OUT, "models.txt"), "w") as f:
        f.write("# name batch (N: symbolic batch axis, a number: fixed) - read by pytorch_models.sh\n")
        for name, opset, dynamic, ish, *_ in rows:
            f.write("%s %s\n" % (name, "N" if dynamic else ish[0]))
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("# PyTorch-exported fixtures\n\n"
                "Small models exported by `torch.onnx.export` (torch %s), with fixed seeds, in eval\n"
                "mode with non-trivial BatchNorm statistics, and PyTorch's outputs on a batch-3 input.\n"
                "`tests/e2e/pytorch_models.sh` compiles each with `fewmul compile`, runs it with\n"
                "`fewmul run` and compares with `<name>_output.npy` (and checks the fixtures against\n"
                "ONNX Runtime when `tools/ort` is installed).\n\n"
                "Regenerate (needs Debian's python3-torch; do not use the pyenv python):\n\n"
                "    /usr/bin/python3 tools/gen_pytorch_fixtures.py\n\n"
                "Files per model: `<name>.onnx`, `<name>_input.npy` (float32), `<name>_output.npy`;\n"
                "`models.txt` lists the models the test runs and their batch axis.\n"
                "Graph input `input`, output `output`; the batch axis is the symbolic `N` except\n"
                "where noted.\n\n" % torch.__version__)
        f.write("| model | opset | batch | input | output | nodes | params |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        for name, opset, dynamic, ish, osh, nodes, params, ops, notes in rows:
            f.write("| %s | %s | %s | %s | %s | %d | %d |\n" % (
                name, opset, "N (dynamic)" if dynamic else "3 (fixed)",
                "x".join(map(str, ish)), "x".join(map(str, osh)), nodes, params))
        f.write("\n## ONNX op types per model (count of nodes)\n")
        for name, opset, dynamic, ish, osh, nodes, params, ops, notes in rows:
            f.write("\n### %s (opset %s)\n\n%s\n\n" % (name, opset, notes))
            f.write(", ".join("%s (%d)" % kv for kv in sorted(ops.items())) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print("wrote %d fixtures to %s (%d bytes)" % (len(rows), OUT, total))


if __name__ == "__main__":
    main()
