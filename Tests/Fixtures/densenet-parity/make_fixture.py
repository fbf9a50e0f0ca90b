#!/usr/bin/env python3
"""Generate the DenseNet-BC-100 logits-parity fixture (run once; the output is committed).

    /tmp/venv-torch/bin/python Tests/Fixtures/densenet-parity/make_fixture.py \
        /work/shared/reference/um-densenet-bc100-cifar10.state

Loads the UM reference's pretrained CIFAR-10 DenseNet-BC-100 (non-affine BatchNorm, growth 12,
input normalised inside the model) into the DenseNet3 definition below (written for this fixture
after the OOD-detection reference code, attribute names equal to the checkpoint's, loaded with
strict=True), draws 16 seeded inputs in [0, 1] ([16, 3, 32, 32], torch.Generator seed 20260129:
0.8 x bilinear-upsampled 8x8 uniform noise + 0.2 x uniform pixel noise), computes the logits in eval mode and writes `parity.safetensors` next to this script:

  inputs  f32 [16, 3, 32, 32]  (x01 - mean) / std per channel: what umtrain's model takes
                               (umtrain normalises outside the model, in the data pipeline)
  logits  f32 [16, 10]         the reference model's output for x01 (normaliser inside)

metadata: seed, mean, std, torch version, checkpoint sha256, and `state_dict`: the
checkpoint's entries as JSON [[name, shape, dtype], ...] in order (names without `module.`).
"""
import hashlib
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

MEAN = [125.3 / 255, 123.0 / 255, 113.9 / 255]
STD = [63.0 / 255, 62.1 / 255, 66.7 / 255]
SEED = 20260129


class Normalizer(nn.Module):
    """Stateless per-channel (x - mean) / std, as the reference applies inside its model."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        m = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
        s = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - m) / s


class Bottleneck(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        inter = 4 * growth
        self.bn1 = nn.BatchNorm2d(cin, affine=False)
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, inter, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(inter, affine=False)
        self.conv2 = nn.Conv2d(inter, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, affine=False)
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv1(self.relu(self.bn1(x))), 2)


class DenseBlock(nn.Module):
    def __init__(self, n, cin, growth):
        super().__init__()
        self.layer = nn.Sequential(*[Bottleneck(cin + i * growth, growth) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class DenseNet3(nn.Module):
    def __init__(self, depth=100, num_classes=10, growth=12, reduction=0.5):
        super().__init__()
        n = (depth - 4) // 6
        c = 2 * growth
        self.normalizer = Normalizer(MEAN, STD)
        self.conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.block1 = DenseBlock(n, c, growth)
        c += n * growth
        self.trans1 = Transition(c, int(math.floor(c * reduction)))
        c = int(math.floor(c * reduction))
        self.block2 = DenseBlock(n, c, growth)
        c += n * growth
        self.trans2 = Transition(c, int(math.floor(c * reduction)))
        c = int(math.floor(c * reduction))
        self.block3 = DenseBlock(n, c, growth)
        c += n * growth
        self.bn1 = nn.BatchNorm2d(c, affine=False)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(c, num_classes)
        self.in_planes = c

    def forward(self, x):
        out = self.conv1(self.normalizer(x))
        out = self.trans1(self.block1(out))
        out = self.trans2(self.block2(out))
        out = self.relu(self.bn1(self.block3(out)))
        out = F.avg_pool2d(out, 8).view(-1, self.in_planes)
        return self.fc(out)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/reference/um-densenet-bc100-cifar10.state"
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt["state_dict"].items()}
    model = DenseNet3()
    model.load_state_dict(sd, strict=True)
    model.eval()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(SEED)
    # Smooth structure (8x8 noise, bilinear upsampling) plus pixel noise, so the 16 inputs
    # reach several classes rather than all falling into one; values stay in [0, 1].
    coarse = torch.rand(16, 3, 8, 8, generator=g, dtype=torch.float32)
    fine = torch.rand(16, 3, 32, 32, generator=g, dtype=torch.float32)
    smooth = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    x01 = (0.8 * smooth + 0.2 * fine).clamp(0, 1).contiguous()
    with torch.no_grad():
        logits = model(x01)
    inputs = model.normalizer(x01).contiguous()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parity.safetensors")
    meta = {"seed": str(SEED), "mean": json.dumps(MEAN), "std": json.dumps(STD),
            "torch": torch.__version__, "checkpoint_sha256": sha,
            "generator": "Tests/Fixtures/densenet-parity/make_fixture.py",
            # The reference's state dict (after stripping `module.`) as [name, shape, dtype], in
            # order, so naming parity is testable without the 3 MB checkpoint.
            "state_dict": json.dumps([[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()],
                                     separators=(",", ":"))}
    save_file({"inputs": inputs, "logits": logits.contiguous()}, out, metadata=meta)
    print(f"wrote {out}; logits[0] = {logits[0].tolist()}; argmax = {logits.argmax(1).tolist()}")


if __name__ == "__main__":
    main()
