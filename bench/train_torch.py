#!/usr/bin/python3
"""train_torch.py - PyTorch training throughput on random data, the reference for
bench/train_bench.sh. Same architectures as fewmul's models/mnist_cnn.c and
models/resnet_cifar.c (resnet20), SGD with momentum 0.9, cross-entropy loss.

    /usr/bin/python3 bench/train_torch.py --model mnist_cnn|resnet20 [--steps 100]
        [--warmup 10] [--batch 64] [--threads 2]

Prints "samples_per_s: X" (timed steps only: forward, loss, backward, optimiser step)
and "step_ms: X". Exit 77 when torch is not importable.
"""
import argparse
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("train_torch: torch is not installed for %s (apt-get install python3-torch)" % sys.executable,
          file=sys.stderr)
    sys.exit(77)


def mnist_cnn(classes=10):
    """conv 32 3x3 -> relu -> conv 64 3x3 -> relu -> maxpool 2 -> dropout 0.25 -> flatten
    -> fc 128 -> relu -> dropout 0.5 -> fc classes (the Keras mnist_cnn example)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, classes))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:   # projection: 1x1 conv (stride 2) + BN
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNetCifar(nn.Module):
    """CIFAR ResNet of depth 6n + 2 (He et al. 2016), 16/32/64 channels."""

    def __init__(self, n=3, classes=10, width=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


MODELS = {
    "mnist_cnn": (mnist_cnn, (1, 28, 28)),
    "resnet20": (lambda: ResNetCifar(3), (3, 32, 32)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.01)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    ctor, shape = MODELS[a.model]
    model = ctor()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    # a small pool of random batches, made before the timing starts
    pool = [(torch.randn((a.batch,) + shape), torch.randint(0, 10, (a.batch,))) for _ in range(8)]

    def step(i):
        x, y = pool[i % len(pool)]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for i in range(a.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(a.steps):
        loss = step(i)
    dt = time.perf_counter() - t0
    if not torch.isfinite(loss):
        print("train_torch: the loss is not finite", file=sys.stderr)
        return 1
    print("torch %s, %d threads, %s: %d steps of %d in %.3fs" % (
        torch.__version__, torch.get_num_threads(), a.model, a.steps, a.batch, dt), file=sys.stderr)
    print("samples_per_s: %.1f" % (a.steps * a.batch / dt))
    print("step_ms: %.2f" % (1000 * dt / a.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
