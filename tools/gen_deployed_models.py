#!/usr/bin/python3
"""gen_deployed_models.py - the "models people deploy" of issue 16, exported from
Debian's python3-torchvision with random weights (speed and correctness do not
depend on them), for tests/e2e/deployed_models.sh and bench/deployed_bench.sh.

    /usr/bin/python3 tools/gen_deployed_models.py OUTDIR [--small] [name ...]

Writes per model OUTDIR/<name>.onnx (symbolic batch N), <name>_input.npy (batch 3,
float32, seeded) and <name>_output.npy (PyTorch's output on it). --small builds
reduced-width variants (fast enough for CI); without it the standard sizes are
built (for benchmarks). Needs Debian's python3-torch, python3-torchvision,
python3-onnx (scripts/install-deps.sh installs them); not the pyenv python.

The models, chosen to cover what MobileNet-style nets and attention blocks
spend their time on (depthwise/grouped convs, hard-swish/SiLU/GELU chains,
squeeze-and-excitation, pointwise convs, channel shuffles, LayerNorm, Softmax,
activation x activation MatMul):
  mobilenet_v2_o13        MobileNetV2, opset 13
  mobilenet_v3_small_o11  MobileNetV3-small (SE, hard-swish as elementwise ops), opset 11
  mobilenet_v3_small_o17  the same at opset 17 (HardSwish/HardSigmoid ops)
  shufflenet_v2_o11       ShuffleNetV2 x0.5 (channel shuffle: Reshape/Transpose), opset 11
  efficientnet_b0_o13     EfficientNet-B0 (SiLU, SE), opset 13
  convformer_o11          conv stem + 2 TransformerEncoderLayers (GELU, LayerNorm decomposed), opset 11
  convformer_o17          the same at opset 17 (LayerNormalization op)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision.models as tvm


class ConvFormer(nn.Module):
    """A conv + transformer text recogniser in miniature: a conv stem over a
    32xW line image, the columns as a sequence, transformer layers, a per-step
    classifier (CTC-style logits)."""

    def __init__(self, d=64, heads=4, layers=2, classes=37):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, d, 3, padding=1), nn.BatchNorm2d(d), nn.ReLU(),
            nn.MaxPool2d((4, 1)))
        enc = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0,
                                         activation="gelu", batch_first=True)
        self.enc = nn.TransformerEncoder(enc, layers)
        self.head = nn.Linear(d * 4, classes)

    def forward(self, x):                      # x (N, 1, 32, 64)
        f = self.stem(x)                       # (N, d, 4, 32)
        n, c, h, w = f.shape
        s = f.permute(0, 3, 1, 2).reshape(n, w, c * h // 4, 4).mean(3)  # (N, 32, d)
        s = self.enc(s)
        return self.head(torch.cat([s, s, s, s], dim=2))                  # (N, 32, classes)


def build(name, small):
    wm = 0.5 if small else 1.0
    if name.startswith("mobilenet_v2"):
        return tvm.mobilenet_v2(width_mult=wm), (3, 224, 224) if not small else (3, 96, 96)
    if name.startswith("mobilenet_v3_small"):
        return tvm.mobilenet_v3_small(width_mult=wm), (3, 224, 224) if not small else (3, 96, 96)
    if name.startswith("shufflenet_v2"):
        return tvm.shufflenet_v2_x0_5(), (3, 224, 224) if not small else (3, 96, 96)
    if name.startswith("efficientnet_b0"):
        m = tvm.efficientnet_b0()
        if small:   # keep the first four stages (SiLU, SE, depthwise 3x3 and 5x5)
            m.features = m.features[:5]
            m.classifier = nn.Sequential(nn.Flatten(), nn.Linear(80, 10))
            m.avgpool = nn.AdaptiveAvgPool2d(1)
        return m, (3, 224, 224) if not small else (3, 96, 96)
    if name.startswith("convformer"):
        return ConvFormer(), (1, 32, 64)
    raise SystemExit(f"gen_deployed_models: unknown model {name}")


MODELS = {
    "mobilenet_v2_o13": 13,
    "mobilenet_v3_small_o11": 11,
    "mobilenet_v3_small_o17": 17,
    "shufflenet_v2_o11": 11,
    "efficientnet_b0_o13": 13,
    "convformer_o11": 11,
    "convformer_o17": 17,
}


def randomise_bn(m, g):
    """Non-trivial BatchNorm statistics, so BN folding is exercised."""
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) * 0.5 + 0.75)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        raise SystemExit(__doc__)
    out = args[0]
    small = "--small" in args
    names = [a for a in args[1:] if not a.startswith("-")] or list(MODELS)
    os.makedirs(out, exist_ok=True)
    for name in names:
        if name not in MODELS:
            raise SystemExit(f"gen_deployed_models: unknown model {name} (known: {' '.join(MODELS)})")
        g = torch.Generator().manual_seed(1234)
        torch.manual_seed(1234)
        m, shape = build(name, small)
        with torch.no_grad():
            randomise_bn(m, g)
        m.eval()
        x = torch.randn((3,) + shape, generator=g)
        with torch.no_grad():
            y = m(x)
            # outputs of order 1 (torchvision's classifier init gives ~1e-3), so that
            # the tests' 1e-4 * (1 + |y|) tolerance is a relative one
            last = [mod for mod in m.modules() if isinstance(mod, nn.Linear)][-1]
            s = 2.0 / float(y.abs().max())
            last.weight.mul_(s)
            last.bias.mul_(s)
            y = m(x)
        path = os.path.join(out, name + ".onnx")
        torch.onnx.export(m, x, path, opset_version=MODELS[name],
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                          do_constant_folding=True)
        np.save(os.path.join(out, name + "_input.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out, name + "_output.npy"), y.numpy().astype(np.float32))
        print(f"{name}: opset {MODELS[name]}, input {tuple(x.shape)}, output {tuple(y.shape)}")


if __name__ == "__main__":
    main()
