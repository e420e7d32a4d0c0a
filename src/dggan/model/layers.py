"""ProgGAN's building blocks: equalized learning rate, pixel norm, minibatch standard deviation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def he_scale(weight: torch.Tensor) -> float:
    """Equalized-lr runtime scale sqrt(2 / fan_in) for a [out, in, ...] weight."""
    return math.sqrt(2.0 / (weight[0].numel()))


class EqualizedConv2d(nn.Module):
    """Conv with weights stored as N(0, 1) and scaled at run time; same padding, so resolution is kept.

    ``activation`` adds LeakyReLU(0.2); ``pixel_norm`` then normalises each pixel's feature vector (G only).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, activation: bool = True, pixel_norm: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.scale = he_scale(self.weight)
        self.padding = kernel // 2
        self.activation = activation
        self.use_pixel_norm = pixel_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        if self.activation:
            x = F.leaky_relu(x, LRELU_SLOPE)
        if self.use_pixel_norm:
            x = pixel_norm(x)
        return x


class EqualizedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, activation: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = he_scale(self.weight)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias)
        return F.leaky_relu(x, LRELU_SLOPE) if self.activation else x


class LatentToFeatures(EqualizedLinear):
    """G's input: pixel-normed z -> equalized linear -> 4x4 feature map -> LeakyReLU -> pixel norm."""

    def __init__(self, latent_size: int, channels: int):
        super().__init__(latent_size, channels * 16, activation=True)
        self.channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return pixel_norm(super().forward(pixel_norm(z)).view(-1, self.channels, 4, 4))


class FlattenLinear(EqualizedLinear):
    """D's 4x4 dense layer: flatten the feature map, then an equalized linear layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))


class MinibatchStdConv(EqualizedConv2d):
    """D's last conv: minibatch standard deviation feature, then a 3x3 conv (one extra input channel)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, group_size: int = 4):
        super().__init__(in_ch + 1, out_ch, kernel, activation=True)
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(minibatch_stddev(x, self.group_size))


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append the mean feature standard deviation over groups of ``group_size`` consecutive samples.

    Groups are contiguous, so concatenating batches whose sizes are multiples of the group size never
    mixes their statistics (the trainer relies on this to score real and fake in one pass).
    """
    n, c, h, w = x.shape
    g = min(group_size, n)
    if n % g != 0:
        g = n
    y = x.view(n // g, g, c, h, w).float()
    y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [n // g]
    # Each group's value for each of its members: a broadcast, not repeat_interleave, whose output size some
    # torch versions read back on CUDA (a host sync, which a CUDA graph capture refuses).
    y = y.to(x.dtype)[:, None].expand(n // g, g).reshape(n, 1, 1, 1).expand(n, 1, h, w)
    return torch.cat([x, y], dim=1)
