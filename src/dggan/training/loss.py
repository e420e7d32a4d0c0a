"""The GAN objective: WGAN-GP (Gulrajani et al. 2017) with ProgGAN's drift term, as the paper trains.

Critic: E[D(fake)] - E[D(real)] + lambda * E[(||grad D(x_hat)|| - 1)^2] + drift * E[D(real)^2], with x_hat
on the line between a real and a fake image. Generator: -E[D(fake)].
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

Autocast = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True)
class CriticTerms:
    """The critic loss and the parts of it worth logging (all on the device, no host sync)."""

    loss: torch.Tensor
    gp: torch.Tensor
    d_real: torch.Tensor
    d_fake: torch.Tensor
    drift: torch.Tensor  # E[D(real)^2], unweighted like gp (ProgGAN logs its epsilon penalty the same way)


@dataclass(frozen=True)
class WGANGP:
    gp_lambda: float = 10.0
    drift: float = 0.001

    def critic(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor,
               autocast: Autocast, one_pass: bool = True) -> CriticTerms:
        """Critic loss on detached ``fake``. ``one_pass`` scores real and fake in one forward (valid when
        minibatch-stddev groups cannot straddle the two halves)."""
        with autocast():
            if one_pass:
                d_real, d_fake = D(torch.cat([real, fake])).float().chunk(2)
            else:
                d_real, d_fake = D(real).float(), D(fake).float()
            mixed = torch.lerp(fake.float(), real, eps).requires_grad_(True)
            d_mixed = D(mixed).float()
        (grad,) = torch.autograd.grad(d_mixed.sum(), mixed, create_graph=True)
        gp = (grad.flatten(1).norm(dim=1) - 1.0).square().mean()
        drift = d_real.square().mean()
        loss = d_fake.mean() - d_real.mean() + self.gp_lambda * gp + self.drift * drift
        return CriticTerms(loss, gp, d_real.mean(), d_fake.mean(), drift)

    @staticmethod
    def generator(D: nn.Module, fake: torch.Tensor, autocast: Autocast) -> torch.Tensor:
        with autocast():
            return -D(fake).float().mean()
