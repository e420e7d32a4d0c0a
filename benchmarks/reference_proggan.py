"""A plain, hand-written ProgGAN (pytorch_GAN_zoo style) and its WGAN-GP training step.

This file deliberately imports nothing from ``dggan``: it is the independent yardstick that
``tests/test_reference_params.py`` checks dggan against (parameter counts, outputs, one training step)
and that ``benchmarks/bench_train.py`` times dggan's growable networks and ``Trainer.step`` against.

Every resolution has its own fixed ``nn.Module`` whose layers are attributes written out by hand and
whose ``forward`` spells out every call -- no layer plan, no ModuleDict, no loop over steps. Parameters
are registered in forward order, so ``zip(ref.parameters(), dggan_net.parameters())`` pairs them.

Building blocks (ProgGAN, Karras et al. 2018):

- equalized learning rate: weights stored as N(0, 1), multiplied by sqrt(2 / fan_in) at run time
  (pytorch_GAN_zoo multiplies the layer *output* instead, which also scales the bias; here the weight is
  scaled so the math is exactly dggan's, and the comparison isolates the cost of the abstraction);
- pixel norm after every G conv, LeakyReLU(0.2), nearest-neighbour upsampling, 2x2 average pooling;
- minibatch standard deviation over contiguous groups of 4, as one extra feature map before D's 4x4 conv;
- 1x1 toRGB (linear) and fromRGB (LeakyReLU).

The training step (``ReferenceTrainer``) is one WGAN-GP iteration with ProgGAN's drift term, written
to be the same math as ``dggan.training.trainer.Trainer.step``: G forward once; D on cat(real, fake.detach()) in one
pass; the gradient penalty on a random interpolate; D update; the G loss reuses the same fake with the
updated D; Adam(betas 0, 0.99, foreach); EMA of G via ``torch._foreach_lerp_``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
MBSTD_GROUP = 4


# ---------------------------------------------------------------------------------------- building blocks
def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def down2(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def minibatch_stddev(x: torch.Tensor, group_size: int = MBSTD_GROUP) -> torch.Tensor:
    """Append the mean over features of the per-group standard deviation (contiguous groups)."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    if n % g != 0:
        g = n
    y = x.view(n // g, g, c, h, w).float()
    y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    y = y.to(x.dtype).repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, h, w)
    return torch.cat([x, y], dim=1)


class EqConv2d(nn.Module):
    """Same-padding conv with equalized learning rate (no activation: the caller writes it out)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.scale = math.sqrt(2.0 / (in_ch * kernel * kernel))
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqLinear(nn.Module):
    """Linear layer with equalized learning rate (no activation)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = math.sqrt(2.0 / in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


Channels = int | Mapping[int, int]


def _widths(channels: Channels, resolution: int) -> dict[int, int]:
    """Width per scale 4..resolution: one int for all scales (ProgGAN's CIFAR-10 setting) or a mapping."""
    scales = [4 * 2**i for i in range(int(math.log2(resolution)) - 1)]
    if isinstance(channels, int):
        return {res: channels for res in scales}
    return {res: int(channels[res]) for res in scales}


# ---------------------------------------------------------------------------------------- generators
class Generator8(nn.Module):
    resolution = 8

    def __init__(self, latent_size: int, channels: Channels, image_channels: int = 3):
        super().__init__()
        ch = _widths(channels, self.resolution)
        self.c4 = ch[4]
        self.dense4 = EqLinear(latent_size, ch[4] * 16)
        self.conv4 = EqConv2d(ch[4], ch[4], 3)
        self.conv8_0 = EqConv2d(ch[4], ch[8], 3)
        self.conv8_1 = EqConv2d(ch[8], ch[8], 3)
        self.torgb8 = EqConv2d(ch[8], image_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.dense4(pixel_norm(z)))
        x = pixel_norm(x.view(-1, self.c4, 4, 4))
        x = pixel_norm(lrelu(self.conv4(x)))
        x = up2(x)
        x = pixel_norm(lrelu(self.conv8_0(x)))
        x = pixel_norm(lrelu(self.conv8_1(x)))
        return self.torgb8(x)


class Generator16(nn.Module):
    resolution = 16

    def __init__(self, latent_size: int, channels: Channels, image_channels: int = 3):
        super().__init__()
        ch = _widths(channels, self.resolution)
        self.c4 = ch[4]
        self.dense4 = EqLinear(latent_size, ch[4] * 16)
        self.conv4 = EqConv2d(ch[4], ch[4], 3)
        self.conv8_0 = EqConv2d(ch[4], ch[8], 3)
        self.conv8_1 = EqConv2d(ch[8], ch[8], 3)
        self.conv16_0 = EqConv2d(ch[8], ch[16], 3)
        self.conv16_1 = EqConv2d(ch[16], ch[16], 3)
        self.torgb16 = EqConv2d(ch[16], image_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.dense4(pixel_norm(z)))
        x = pixel_norm(x.view(-1, self.c4, 4, 4))
        x = pixel_norm(lrelu(self.conv4(x)))
        x = up2(x)
        x = pixel_norm(lrelu(self.conv8_0(x)))
        x = pixel_norm(lrelu(self.conv8_1(x)))
        x = up2(x)
        x = pixel_norm(lrelu(self.conv16_0(x)))
        x = pixel_norm(lrelu(self.conv16_1(x)))
        return self.torgb16(x)


class Generator32(nn.Module):
    resolution = 32

    def __init__(self, latent_size: int, channels: Channels, image_channels: int = 3):
        super().__init__()
        ch = _widths(channels, self.resolution)
        self.c4 = ch[4]
        self.dense4 = EqLinear(latent_size, ch[4] * 16)
        self.conv4 = EqConv2d(ch[4], ch[4], 3)
        self.conv8_0 = EqConv2d(ch[4], ch[8], 3)
        self.conv8_1 = EqConv2d(ch[8], ch[8], 3)
        self.conv16_0 = EqConv2d(ch[8], ch[16], 3)
        self.conv16_1 = EqConv2d(ch[16], ch[16], 3)
        self.conv32_0 = EqConv2d(ch[16], ch[32], 3)
        self.conv32_1 = EqConv2d(ch[32], ch[32], 3)
        self.torgb32 = EqConv2d(ch[32], image_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.dense4(pixel_norm(z)))
        x = pixel_norm(x.view(-1, self.c4, 4, 4))
        x = pixel_norm(lrelu(self.conv4(x)))
        x = up2(x)
        x = pixel_norm(lrelu(self.conv8_0(x)))
        x = pixel_norm(lrelu(self.conv8_1(x)))
        x = up2(x)
        x = pixel_norm(lrelu(self.conv16_0(x)))
        x = pixel_norm(lrelu(self.conv16_1(x)))
        x = up2(x)
        x = pixel_norm(lrelu(self.conv32_0(x)))
        x = pixel_norm(lrelu(self.conv32_1(x)))
        return self.torgb32(x)


# ---------------------------------------------------------------------------------------- discriminators
class Discriminator8(nn.Module):
    resolution = 8

    def __init__(self, channels: Channels, image_channels: int = 3):
        super().__init__()
        ch = _widths(channels, self.resolution)
        self.fromrgb8 = EqConv2d(image_channels, ch[8], 1)
        self.conv8_0 = EqConv2d(ch[8], ch[8], 3)
        self.conv8_1 = EqConv2d(ch[8], ch[4], 3)
        self.conv4 = EqConv2d(ch[4] + 1, ch[4], 3)
        self.dense4 = EqLinear(ch[4] * 16, ch[4])
        self.out = EqLinear(ch[4], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.fromrgb8(x))
        x = lrelu(self.conv8_0(x))
        x = down2(lrelu(self.conv8_1(x)))
        x = lrelu(self.conv4(minibatch_stddev(x)))
        x = lrelu(self.dense4(x.flatten(1)))
        return self.out(x)


class Discriminator16(nn.Module):
    resolution = 16

    def __init__(self, channels: Channels, image_channels: int = 3):
        super().__init__()
        ch = _widths(channels, self.resolution)
        self.fromrgb16 = EqConv2d(image_channels, ch[16], 1)
        self.conv16_0 = EqConv2d(ch[16], ch[16], 3)
        self.conv16_1 = EqConv2d(ch[16], ch[8], 3)
        self.conv8_0 = EqConv2d(ch[8], ch[8], 3)
        self.conv8_1 = EqConv2d(ch[8], ch[4], 3)
        self.conv4 = EqConv2d(ch[4] + 1, ch[4], 3)
        self.dense4 = EqLinear(ch[4] * 16, ch[4])
        self.out = EqLinear(ch[4], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.fromrgb16(x))
        x = lrelu(self.conv16_0(x))
        x = down2(lrelu(self.conv16_1(x)))
        x = lrelu(self.conv8_0(x))
        x = down2(lrelu(self.conv8_1(x)))
        x = lrelu(self.conv4(minibatch_stddev(x)))
        x = lrelu(self.dense4(x.flatten(1)))
        return self.out(x)


class Discriminator32(nn.Module):
    resolution = 32

    def __init__(self, channels: Channels, image_channels: int = 3):
        super().__init__()
        ch = _widths(channels, self.resolution)
        self.fromrgb32 = EqConv2d(image_channels, ch[32], 1)
        self.conv32_0 = EqConv2d(ch[32], ch[32], 3)
        self.conv32_1 = EqConv2d(ch[32], ch[16], 3)
        self.conv16_0 = EqConv2d(ch[16], ch[16], 3)
        self.conv16_1 = EqConv2d(ch[16], ch[8], 3)
        self.conv8_0 = EqConv2d(ch[8], ch[8], 3)
        self.conv8_1 = EqConv2d(ch[8], ch[4], 3)
        self.conv4 = EqConv2d(ch[4] + 1, ch[4], 3)
        self.dense4 = EqLinear(ch[4] * 16, ch[4])
        self.out = EqLinear(ch[4], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.fromrgb32(x))
        x = lrelu(self.conv32_0(x))
        x = down2(lrelu(self.conv32_1(x)))
        x = lrelu(self.conv16_0(x))
        x = down2(lrelu(self.conv16_1(x)))
        x = lrelu(self.conv8_0(x))
        x = down2(lrelu(self.conv8_1(x)))
        x = lrelu(self.conv4(minibatch_stddev(x)))
        x = lrelu(self.dense4(x.flatten(1)))
        return self.out(x)


GENERATORS: dict[int, type[nn.Module]] = {8: Generator8, 16: Generator16, 32: Generator32}
DISCRIMINATORS: dict[int, type[nn.Module]] = {8: Discriminator8, 16: Discriminator16, 32: Discriminator32}


def build_reference(resolution: int, channels: Channels, latent_size: int = 128,
                    image_channels: int = 3) -> tuple[nn.Module, nn.Module]:
    """The hand-written (G, D) for ``resolution`` (8, 16 or 32)."""
    if resolution not in GENERATORS:
        raise ValueError(f"the reference is written out for {sorted(GENERATORS)} px, not {resolution}")
    return (GENERATORS[resolution](latent_size, channels, image_channels),
            DISCRIMINATORS[resolution](channels, image_channels))


# ---------------------------------------------------------------------------------------- training step
class ReferenceSampler:
    """Random batches from a uint8 [N, C, H, W] array: float in [-1, 1], area-downsampled, no flips."""

    def __init__(self, images: np.ndarray, resolution: int, batch_size: int, seed: int,
                 device: torch.device):
        self.images, self.resolution, self.batch_size, self.device = images, resolution, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.empty(0, dtype=torch.long)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > len(self.perm):
            self.perm = torch.randperm(len(self.images), generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch_size].numpy()
        self.pos += self.batch_size
        x = torch.as_tensor(np.asarray(self.images[idx])).float().div_(127.5).sub_(1.0)
        stored = x.shape[-1]
        if stored != self.resolution:
            x = F.avg_pool2d(x, stored // self.resolution)
        return x.to(self.device, non_blocking=True)


class ReferenceTrainer:
    """Hand-written WGAN-GP + drift step, same math as ``dggan.training.trainer.Trainer.step`` (no fade-in, fp32).

    Seeds follow the same convention as dggan's trainer (data ``seed + 1``, noise ``seed + 2``) so that,
    given the same initial weights and images, both produce the same numbers step for step.
    """

    def __init__(self, G: nn.Module, D: nn.Module, images: np.ndarray, *, batch_size: int = 16,
                 lr: float = 1e-3, betas: tuple[float, float] = (0.0, 0.99), gp_lambda: float = 10.0,
                 drift: float = 0.001, ema_beta: float = 0.999, latent_size: int = 128, seed: int = 0,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.G = G.to(self.device)
        self.D = D.to(self.device)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas, foreach=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas, foreach=True)
        self.g_params = list(self.G.parameters())
        self.ema_params = list(self.G_ema.parameters())
        self.batch_size, self.latent_size = batch_size, latent_size
        self.gp_lambda, self.drift, self.ema_beta = gp_lambda, drift, ema_beta
        self.sampler = ReferenceSampler(images, G.resolution, batch_size, seed + 1, self.device)
        self.rng = torch.Generator(device=self.device).manual_seed(seed + 2)
        self.concat = batch_size % min(MBSTD_GROUP, batch_size) == 0

    def step(self) -> torch.Tensor:
        """Draw a batch and the noise, then one D step and one G step; returns the stats vector."""
        real = self.sampler.next()
        z = torch.randn(self.batch_size, self.latent_size, device=self.device, generator=self.rng)
        eps = torch.rand(self.batch_size, 1, 1, 1, device=self.device, generator=self.rng)
        return self.step_on(real, z, eps)

    def step_on(self, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """[loss_d, loss_g, gp, mean D(real), mean D(fake), mean D(real)^2] after one iteration on these inputs."""
        fake = self.G(z)
        detached = fake.detach()
        if self.concat:
            d_real, d_fake = self.D(torch.cat([real, detached])).chunk(2)
        else:
            d_real, d_fake = self.D(real), self.D(detached)
        mixed = torch.lerp(detached, real, eps).requires_grad_(True)
        d_mixed = self.D(mixed)
        (grad,) = torch.autograd.grad(d_mixed.sum(), mixed, create_graph=True)
        gp = (grad.flatten(1).norm(dim=1) - 1.0).square().mean()
        drift = d_real.square().mean()
        loss_d = d_fake.mean() - d_real.mean() + self.gp_lambda * gp + self.drift * drift
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        loss_g = -self.D(fake).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=self.g_params)
        self.opt_g.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.ema_params, self.g_params, 1.0 - self.ema_beta)
        return torch.stack([loss_d, loss_g, gp, d_real.mean(), d_fake.mean(), drift]).detach()
