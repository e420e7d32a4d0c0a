"""Sampling a generator: seeded latents, drawn on the CPU (so a seed gives the same images on any device)
and run in batches. The one place every command, the search and the report sample from."""

from __future__ import annotations

import torch
from torch import nn


def latents(n: int, latent_size: int, seed: int) -> torch.Tensor:
    """``n`` latent vectors, the same for a given seed on every machine."""
    return torch.randn(n, latent_size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(net: nn.Module, z: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Images (float, on the CPU) for the latents ``z``, in batches of ``batch_size`` on the net's device."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(net.parameters()).device
    return torch.cat([net(zb.to(device)).float().cpu() for zb in z.split(batch_size)])


def sample_images(net: nn.Module, n: int, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """``n`` images from ``net`` (a generator with a ``genome``) for the latents of ``seed``."""
    return generate(net, latents(n, net.genome.latent_size, seed), batch_size)


class LatentStream:
    """Latent batches from one seeded CPU stream: ``take(n)`` continues where the last call stopped,
    so a metric that asks for 10k images in batches sees the same latents whatever the batch size."""

    def __init__(self, latent_size: int, seed: int):
        self.latent_size = latent_size
        self.generator = torch.Generator().manual_seed(seed)

    def take(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_size, generator=self.generator)
