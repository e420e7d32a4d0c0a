"""The GAN objectives, registered by name: ``TrainConfig.loss`` picks one, ``TrainConfig.loss_options`` sets it.

- ``wgan-gp`` (the default, the paper's): WGAN-GP (Gulrajani et al. 2017) with ProgGAN's drift term. Critic:
  E[D(fake)] - E[D(real)] + lambda * E[(||grad D(x_hat)|| - 1)^2] + drift * E[D(real)^2], with x_hat on the line
  between a real and a fake image. Generator: -E[D(fake)]. Its knobs are the top-level settings ``gp_lambda``
  and ``drift`` (kept there for compatibility), so it takes no ``loss_options``.
- ``r1``: StyleGAN2's non-saturating logistic loss with lazy R1 on real images (see ``R1``).

A loss is a class registered with ``@register_loss(name)`` where it is defined (a subclass of ``Loss``; its
dataclass fields are its options). ``stats`` names what ``critic`` logs beside loss_d and loss_g; a lazy
regulariser (``regularize_every`` > 0) runs as its own D step, and ``reg_stats`` names what it logs.
docs/extending.md adds one.

torch is imported inside the methods: naming a loss and checking its options (``TrainConfig``, ``SearchConfig``,
the CLI) stays free of torch, as every setting does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from .._util.settings import coerce
from ..errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

Autocast = Callable[[], AbstractContextManager[object]]
# What the trainer logs itself; a loss's stats may not take these names.
TRAINER_STATS = ("loss_d", "loss_g", "iteration", "alpha", "images_per_s")


class LossSettings(Protocol):
    """What a loss reads of the training settings (``TrainConfig``)."""

    loss: str
    loss_options: Mapping[str, Any]
    gp_lambda: float  # WGAN-GP's knobs, top-level settings for compatibility
    drift: float


@dataclass(frozen=True)
class Terms:
    """A loss to backpropagate and what to log of it (all on the device, no host sync): 0-dim tensors named as
    the loss's ``stats`` (``critic``) or ``reg_stats`` (``regularizer``) name them."""

    loss: torch.Tensor
    stats: dict[str, torch.Tensor]


class Loss:
    """A GAN objective. Subclass it as a frozen dataclass (its fields are the loss's options) and register it:

    - ``critic(D, real, fake, eps, autocast, one_pass)``: D's loss on detached ``fake`` (``eps``: one uniform
      number per image, for losses that interpolate; ``one_pass``: real and fake may be scored in one forward,
      minibatch-stddev groups cannot straddle the two halves), with the ``stats`` to log;
    - ``generator(D, fake, autocast)``: G's loss;
    - optionally a lazy regulariser: ``regularize_every`` > 0 runs ``regularizer(D, real, autocast)`` as a D step
      of its own at every iteration ``i`` with ``i % regularize_every == 0`` (a function of the iteration alone, so
      a resumed run does the same). Its stats are held between those steps. It runs eagerly, also when the
      iteration is a replayed CUDA graph, so the graph stays the same at every iteration.

    Everything a method computes is a tensor on the device: nothing may wait for the GPU (``.item()``, ``if``
    on a tensor), as a captured CUDA graph records the iteration once and replays it.
    """

    name: ClassVar[str] = ""  # set by ``register_loss``
    stats: ClassVar[tuple[str, ...]] = ()
    reg_stats: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, config: LossSettings) -> Loss:
        """The loss for these settings, its options (``loss_options``) converted to the fields' types and
        checked (a frozen dataclass's ``__post_init__`` raises ``ConfigError`` for a bad value)."""
        where = f"train config: loss_options of loss {cls.name!r}"
        return cls(**coerce(cls, dict(config.loss_options), where))

    @property
    def regularize_every(self) -> int:
        return 0

    def critic(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, autocast: Autocast,
               one_pass: bool = True) -> Terms:
        raise NotImplementedError

    def generator(self, D: nn.Module, fake: torch.Tensor, autocast: Autocast) -> torch.Tensor:
        raise NotImplementedError

    def regularizer(self, D: nn.Module, real: torch.Tensor, autocast: Autocast) -> Terms:
        raise NotImplementedError(f"loss {self.name!r} has no lazy regulariser")


L = TypeVar("L", bound=type[Loss])
_LOSSES: dict[str, type[Loss]] = {}


def register_loss(name: str) -> Callable[[L], L]:
    """Class decorator: the loss ``TrainConfig(loss=name)`` (``--set loss=name``) trains with."""
    def add(cls: L) -> L:
        if not (isinstance(cls, type) and issubclass(cls, Loss) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"register_loss({name!r}): {cls!r} must be a dataclass subclass of"
                            " dggan.training.loss.Loss")
        known = _LOSSES.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"loss {name!r} is already registered ({known.__module__}.{known.__qualname__});"
                             " pick another name")
        names = [*cls.stats, *cls.reg_stats]
        clash = sorted(set(names) & set(TRAINER_STATS)) or sorted({s for s in names if names.count(s) > 1})
        if clash:
            raise ValueError(f"loss {name!r}: its stats {clash} clash with each other or with what the trainer"
                             f" logs itself ({', '.join(TRAINER_STATS)}); rename them")
        cls.name = name
        _LOSSES[name] = cls
        return cls

    return add


def loss_names() -> list[str]:
    return sorted(_LOSSES)


def loss_class(name: str) -> type[Loss]:
    """The loss registered as ``name``; a ``ConfigError`` listing the registered ones when there is none."""
    if name not in _LOSSES:
        raise ConfigError(f"train config: unknown loss {name!r}; registered losses: {', '.join(loss_names())}"
                          " (docs/extending.md adds one)")
    return _LOSSES[name]


def critic_logits(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                  one_pass: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """D's float32 logits on ``real`` and ``fake``: one forward of both when ``one_pass`` (minibatch-stddev groups
    cannot straddle the halves), else one each. Call it under the loss's ``autocast()``."""
    import torch

    if one_pass:
        d_real, d_fake = D(torch.cat([real, fake])).float().chunk(2)
        return d_real, d_fake
    return D(real).float(), D(fake).float()


def make_loss(config: LossSettings) -> Loss:
    """The loss ``config`` (a ``TrainConfig``) names, with its options."""
    return loss_class(config.loss).from_config(config)


# ---------------------------------------------------------------------------------------------- the built-in ones
@register_loss("wgan-gp")
@dataclass(frozen=True)
class WGANGP(Loss):
    gp_lambda: float = 10.0
    drift: float = 0.001
    # "drift" is E[D(real)^2], unweighted like gp (ProgGAN logs its epsilon penalty the same way).
    stats: ClassVar[tuple[str, ...]] = ("gp", "d_real", "d_fake", "drift")

    @classmethod
    def from_config(cls, config: LossSettings) -> WGANGP:
        if config.loss_options:
            raise ConfigError(f"train config: loss wgan-gp takes no loss_options (its knobs are the settings gp_lambda"
                              f" and drift), got {dict(config.loss_options)}; use --set gp_lambda=... or drift=...")
        return cls(gp_lambda=config.gp_lambda, drift=config.drift)

    def critic(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, autocast: Autocast,
               one_pass: bool = True) -> Terms:
        import torch

        with autocast():
            d_real, d_fake = critic_logits(D, real, fake, one_pass)
            mixed = torch.lerp(fake.float(), real, eps).requires_grad_(True)
            d_mixed = D(mixed).float()
        (grad,) = torch.autograd.grad(d_mixed.sum(), mixed, create_graph=True)
        gp = (grad.flatten(1).norm(dim=1) - 1.0).square().mean()
        drift = d_real.square().mean()
        loss = d_fake.mean() - d_real.mean() + self.gp_lambda * gp + self.drift * drift
        return Terms(loss, {"gp": gp, "d_real": d_real.mean(), "d_fake": d_fake.mean(), "drift": drift})

    def generator(self, D: nn.Module, fake: torch.Tensor, autocast: Autocast) -> torch.Tensor:
        with autocast():
            return -D(fake).float().mean()


@register_loss("r1")
@dataclass(frozen=True)
class R1(Loss):
    """StyleGAN2's loss (Karras et al. 2020): the non-saturating logistic loss, D: softplus(D(fake)) +
    softplus(-D(real)), G: softplus(-D(fake)), with R1 on real images (Mescheder et al. 2018), gamma/2 *
    E||grad_x D(x_real)||^2, lazily: every ``every`` iterations as a D step of its own, scaled by ``every``
    (StyleGAN2's lazy regularisation; unlike StyleGAN2, Adam's lr and betas are not rescaled for it).

    ``gamma`` 10: Mescheder et al.'s value, and StyleGAN2's at FFHQ. StyleGAN2-ADA's heuristic
    (0.0002 * resolution^2 / batch: about 0.01 at 32 px) is fitted to StyleGAN2's own D, not to dggan's
    (ProgGAN's). Measured at these sizes (the 16 px shapes, 32 channels, 1,200 iterations, swd512 over two
    seeds), gamma 0.01, 0.1, 1 and 10 scored alike (means 54, 48, 51, 51: within the seeds' spread) and 100 worse
    (57), so the published value stands: the most regularised of those that scored alike. ``gamma`` 0: no R1.

    Logged: d_real and d_fake (mean logits), and r1 = E||grad_x D(x_real)||^2 (unweighted, like WGAN-GP's gp)
    as its last lazy step measured it.
    """

    gamma: float = 10.0
    every: int = 16
    stats: ClassVar[tuple[str, ...]] = ("d_real", "d_fake")
    reg_stats: ClassVar[tuple[str, ...]] = ("r1",)

    def __post_init__(self) -> None:
        if not self.gamma >= 0:
            raise ConfigError(f"train config: loss_options of loss 'r1': gamma must be >= 0 (0: no R1), got"
                              f" {self.gamma}")
        if not 1 <= self.every <= 1_000_000:
            raise ConfigError(f"train config: loss_options of loss 'r1': every must be in [1, 1000000] iterations"
                              f" (16: StyleGAN2's), got {self.every}")

    @property
    def regularize_every(self) -> int:
        return self.every if self.gamma > 0 else 0

    def critic(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, autocast: Autocast,
               one_pass: bool = True) -> Terms:
        import torch.nn.functional as F

        with autocast():
            d_real, d_fake = critic_logits(D, real, fake, one_pass)
        loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        return Terms(loss, {"d_real": d_real.mean(), "d_fake": d_fake.mean()})

    def generator(self, D: nn.Module, fake: torch.Tensor, autocast: Autocast) -> torch.Tensor:
        import torch.nn.functional as F

        with autocast():
            d_fake = D(fake).float()
        return F.softplus(-d_fake).mean()

    def regularizer(self, D: nn.Module, real: torch.Tensor, autocast: Autocast) -> Terms:
        import torch

        real = real.detach().requires_grad_(True)
        with autocast():
            d_real = D(real).float()
        (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        r1 = grad.float().square().flatten(1).sum(1).mean()
        return Terms(r1 * (self.gamma / 2 * self.every), {"r1": r1})
