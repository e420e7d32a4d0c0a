"""Training one candidate: the loop around the WGAN-GP objective, with ProgGAN's fade-in and an EMA of G.

One iteration = one D step and one G step on the same latent batch: G runs forward once, D is updated
on the detached images, then the G loss reuses that forward with the updated D (the paper's setting of
one D step per G step, without a second G forward).

The fade-in schedule is fixed when a trainer is built (``fade_iterations``) and saved in every
checkpoint, so continuing a run for longer (``extend``) never moves alpha.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    check_state,
    load_optimizer_state,
    optimizer_tensors,
    save_checkpoint,
)
from .data.base import BatchSampler, ImageSource
from .errors import ConfigError
from .genome import Genome
from .inherit import InheritanceReport, InheritPolicy, NewLayerInit, identity_init, inherit_weights
from .memory import check_fits
from .networks import Discriminator, Generator
from .sampling import sample_images
from .train_config import TrainConfig


@dataclass
class TrainResult:
    status: str  # "done" or "diverged"
    iterations: int  # the trainer's iteration count when training stopped
    seconds: float
    stats: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    trained: int = 0  # iterations run by this call (a continued run starts above 0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pick_device(device: str) -> torch.device:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA"
                              " device(s) exist")
    return torch.device(device)


# Logged per iteration; "drift" is E[D(real)^2], the term the critic loss weights by ``drift``.
_STAT_NAMES = ("loss_d", "loss_g", "gp", "d_real", "d_fake", "drift")


class Trainer:
    """Owns one candidate's networks, optimizers, EMA, data sampler and RNG; resumable exactly."""

    def __init__(self, genome: Genome, config: TrainConfig, data: ImageSource, *, fade_in: bool = False,
                 fade_iterations: int | None = None):
        if data.resolution < genome.resolution:
            raise ConfigError(f"dataset {data.name} is stored at {data.resolution}px, below the genome's"
                              f" {genome.resolution}px; use larger images or a lower target resolution")
        if data.channels != genome.image_channels:
            raise ConfigError(f"dataset {data.name} has {data.channels} channels but the genome expects"
                              f" {genome.image_channels}")
        self.genome, self.config, self.data = genome, config, data
        self.device = pick_device(config.device)
        check_fits(genome, config.batch_size, str(self.device), config.memory_limit_gb)  # before any allocation
        self.loss = config.loss()
        # The fade-in length is fixed now; extending the run later never moves alpha.
        self.fade_iterations = (fade_iterations if fade_iterations is not None else config.fade_iterations
                                or max(1, math.ceil(config.fade_fraction * config.iterations)))
        # Fresh layers' init is a function of the seed; the caller's global RNG state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.G = Generator(genome, fade_in=fade_in).to(self.device)
            self.D = Discriminator(genome, fade_in=fade_in, mbstd_group=config.mbstd_group).to(self.device)
            self.G_ema = Generator(genome, fade_in=fade_in).to(self.device).requires_grad_(False)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.opt_g = self._adam(self.G)
        self.opt_d = self._adam(self.D)
        self.sampler = BatchSampler(data, genome.resolution, config.batch_size, seed=config.seed + 1,
                                    flip=config.flip, device=self.device)
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed + 2)
        self.iteration = 0
        self.train_seconds = 0.0  # wall time spent in train(), across resumes
        self.inheritance: dict[str, InheritanceReport] = {}
        self._one_pass = config.batch_size % min(config.mbstd_group, config.batch_size) == 0
        self._refresh_param_lists()
        if fade_in:
            self._set_alpha(0.0)

    # ------------------------------------------------------------------ construction helpers
    def _adam(self, net: torch.nn.Module) -> torch.optim.Adam:
        return torch.optim.Adam(net.parameters(), lr=self.config.lr, betas=(self.config.beta1, self.config.beta2),
                                foreach=True)

    def _refresh_param_lists(self) -> None:
        self._g_params = list(self.G.parameters())
        self._ema_params = list(self.G_ema.parameters())

    @classmethod
    def child_of(cls, parent: Checkpoint, genome: Genome, config: TrainConfig, data: ImageSource,
                 policy: InheritPolicy = "adapt", new_layers: NewLayerInit = "random") -> Trainer:
        """A child initialised from its parent's trained weights (fade-in when the resolution doubled).

        ``new_layers="identity"`` starts grown convs as identities instead of random (see ``identity_init``).
        """
        if parent.state.get("fade_in"):
            raise CheckpointError(f"{parent.path}: the parent is still fading in; finish its training first")
        if genome.resolution not in (parent.genome.resolution, parent.genome.resolution * 2):
            raise ConfigError(f"child at {genome.resolution}px cannot inherit from a parent at"
                              f" {parent.genome.resolution}px")
        if new_layers not in ("random", "identity"):
            raise ConfigError(f"new_layers must be 'random' or 'identity', got {new_layers!r}")
        trainer = cls(genome, config, data, fade_in=genome.resolution > parent.genome.resolution)
        trainer.inheritance = {
            "G": inherit_weights(trainer.G, parent.group("G"), policy),
            "D": inherit_weights(trainer.D, parent.group("D"), policy),
        }
        if new_layers == "identity":
            identity_init(trainer.G, trainer.inheritance["G"])
            identity_init(trainer.D, trainer.inheritance["D"])
        # The EMA copy starts as the child's G, then takes the parent's averaged weights where they fit.
        trainer.G_ema.load_state_dict(trainer.G.state_dict())
        trainer.inheritance["G_ema"] = inherit_weights(trainer.G_ema, parent.group("G_ema"), policy)
        return trainer

    @classmethod
    def resume(cls, ckpt: Checkpoint, data: ImageSource, device: str | None = None) -> Trainer:
        """Continue exactly where a checkpoint stopped (same alpha, same batches, same noise)."""
        config_dict = dict(ckpt.state["config"])
        if device is not None:
            config_dict["device"] = device
        try:
            config = TrainConfig.from_dict(config_dict)
            iteration = int(ckpt.state["iteration"])
            train_seconds = float(ckpt.state.get("train_seconds", 0.0))
            fade_iterations = ckpt.state.get("fade_iterations")
            fade_iterations = None if fade_iterations is None else int(fade_iterations)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.path}: bad training state in the checkpoint's metadata ({exc})") from None
        trainer = cls(ckpt.genome, config, data, fade_in=bool(ckpt.state.get("fade_in")),
                      fade_iterations=fade_iterations)
        for name, net in (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema)):
            state = ckpt.group(name)
            check_state(net, state, name, ckpt.path)
            net.load_state_dict(state)
        load_optimizer_state(trainer.opt_g, trainer.G, ckpt.group("opt_g"), ckpt.path)
        load_optimizer_state(trainer.opt_d, trainer.D, ckpt.group("opt_d"), ckpt.path)
        trainer.iteration = iteration
        trainer.train_seconds = train_seconds
        trainer.sampler.load_state_dict(ckpt.group("sampler"))
        trainer.rng.set_state(ckpt.tensors["rng.noise"].cpu())
        if trainer.G.fade_in:
            trainer._set_alpha(trainer.alpha_at(trainer.iteration))
        return trainer

    def extend(self, total_iterations: int) -> None:
        """Train up to ``total_iterations`` instead of the config's count; the fade-in schedule stays."""
        if total_iterations < self.iteration:
            raise ConfigError(f"cannot extend to {total_iterations} iterations: the run is already at"
                              f" {self.iteration}")
        self.config = dataclasses.replace(self.config, iterations=total_iterations)

    # ------------------------------------------------------------------ fade-in
    def alpha_at(self, iteration: int) -> float:
        return min(1.0, iteration / self.fade_iterations)

    def _set_alpha(self, alpha: float) -> None:
        for net in (self.G, self.D, self.G_ema):
            net.set_alpha(alpha)

    def _finish_fade_in(self) -> None:
        for net, opt in ((self.G, self.opt_g), (self.D, self.opt_d), (self.G_ema, None)):
            dropped = {id(p) for p in net.drop_fade_in()}
            if opt is not None:
                for group in opt.param_groups:
                    kept = [p for p in group["params"] if id(p) not in dropped]
                    for p in group["params"]:
                        if id(p) in dropped:
                            opt.state.pop(p, None)
                    group["params"] = kept
        self._refresh_param_lists()

    @property
    def fading(self) -> bool:
        return self.G.fade_in

    def ema_beta(self) -> float:
        """The EMA decay of the coming step (fixed, or ramped up with the images seen)."""
        cfg = self.config
        if cfg.ema_rampup is None:
            return cfg.ema_beta
        seen = (self.iteration + 1) * cfg.batch_size
        return min(cfg.ema_beta, 0.5 ** (cfg.batch_size / (seen * cfg.ema_rampup)))

    # ------------------------------------------------------------------ one iteration
    def _autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.bf16 and self.device.type == "cuda")

    def step(self) -> torch.Tensor:
        """One D step and one G step; returns the stats vector (on device, no host sync)."""
        cfg = self.config
        if self.fading:
            alpha = self.alpha_at(self.iteration)
            if alpha >= 1.0:
                self._finish_fade_in()
            else:
                self._set_alpha(alpha)
        real = self.sampler.next()
        if self.fading:
            # ProgGAN also fades the real images, so D sees the same blend of scales as G produces.
            low = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2.0, mode="nearest")
            real = torch.lerp(low, real, self.G.alpha)
        z = torch.randn(cfg.batch_size, self.genome.latent_size, device=self.device, generator=self.rng)
        eps = torch.rand(cfg.batch_size, 1, 1, 1, device=self.device, generator=self.rng)

        with self._autocast():
            fake = self.G(z)
        critic = self.loss.critic(self.D, real, fake.detach(), eps, self._autocast, self._one_pass)
        self.opt_d.zero_grad(set_to_none=True)
        critic.loss.backward()
        self.opt_d.step()

        loss_g = self.loss.generator(self.D, fake, self._autocast)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=self._g_params)  # D's weights get no gradient from the G step
        self.opt_g.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._ema_params, self._g_params, 1.0 - self.ema_beta())
        self.iteration += 1
        return torch.stack([critic.loss, loss_g, critic.gp, critic.d_real, critic.d_fake, critic.drift]).detach()

    # ------------------------------------------------------------------ loop
    def train(self, until: int | None = None, *, progress: bool = True, desc: str | None = None,
              on_log: Callable[[dict[str, float]], None] | None = None,
              checkpoint_path: str | Path | None = None, checkpoint_every: int = 0,
              on_checkpoint: Callable[[int], None] | None = None) -> TrainResult:
        """Train up to iteration ``until`` (default: the config's ``iterations``, see ``extend``) and return
        how it ended.

        A NaN/Inf loss or an exploding critic ends training early with status ``diverged``; the caller
        decides what to do with it (the search records it and never picks the candidate).
        """
        cfg = self.config
        end = cfg.iterations if until is None else min(cfg.iterations, until)
        start_time, start_iter = time.perf_counter(), self.iteration
        acc = torch.zeros(len(_STAT_NAMES), device=self.device)
        acc_n = 0
        last: dict[str, float] = {}
        # Quiet when asked, and when stderr is not a terminal (disable=None); under the search's step bar.
        bar = tqdm(total=end, initial=self.iteration, disable=None if progress else True, position=1 if desc else 0,
                   desc=desc or f"train {self.genome.resolution}px", unit="it", leave=False)
        try:
            while self.iteration < end:
                acc += self.step()
                acc_n += 1
                bar.update(1)
                done = self.iteration >= end
                if self.iteration % cfg.check_every == 0 or self.iteration % cfg.log_every == 0 or done:
                    values = (acc / acc_n).tolist()
                    if not all(math.isfinite(v) for v in values) or abs(values[0]) > cfg.divergence_threshold:
                        why = ("non-finite loss" if not all(math.isfinite(v) for v in values)
                               else f"exploding critic (|loss_d| = {abs(values[0]):.3g}"
                                    f" > {cfg.divergence_threshold:g})")
                        return TrainResult("diverged", self.iteration, time.perf_counter() - start_time,
                                           dict(zip(_STAT_NAMES, values, strict=True)), reason=why,
                                           trained=self.iteration - start_iter)
                    if self.iteration % cfg.log_every == 0 or done:
                        elapsed = time.perf_counter() - start_time
                        last = {"iteration": self.iteration, "alpha": self.G.alpha if self.fading else 1.0,
                                **dict(zip(_STAT_NAMES, values, strict=True)),
                                "images_per_s": (self.iteration - start_iter) * cfg.batch_size / max(elapsed, 1e-9)}
                        acc.zero_()
                        acc_n = 0
                        bar.set_postfix(loss_d=f"{values[0]:.3f}", loss_g=f"{values[1]:.3f}")
                        if on_log is not None:
                            on_log(last)
                if checkpoint_path and checkpoint_every and self.iteration % checkpoint_every == 0 and not done:
                    self.save(checkpoint_path)
                    if on_checkpoint is not None:
                        on_checkpoint(self.iteration)
        finally:
            bar.close()
            self.train_seconds += time.perf_counter() - start_time
        if self.fading and self.alpha_at(self.iteration) >= 1.0 and self.iteration >= cfg.iterations:
            self._finish_fade_in()  # fade_fraction == 1: the last step ran at alpha < 1
        return TrainResult("done", self.iteration, time.perf_counter() - start_time, last,
                           trained=self.iteration - start_iter)

    # ------------------------------------------------------------------ checkpoints
    def tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            out.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
        out.update(optimizer_tensors(self.opt_g, self.G, "opt_g"))
        out.update(optimizer_tensors(self.opt_d, self.D, "opt_d"))
        out.update({f"sampler.{k}": v for k, v in self.sampler.state_dict().items()})
        out["rng.noise"] = self.rng.get_state()
        return out

    def state(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "total_iterations": self.config.iterations,
                "fade_in": self.fading, "alpha": self.alpha_at(self.iteration) if self.fading else 1.0,
                "fade_iterations": self.fade_iterations, "data": self.data.spec,
                "train_seconds": self.train_seconds, "config": self.config.to_dict()}

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.genome, self.state(), self.tensors())

    def sample(self, n: int, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
        """``n`` images from the EMA generator (fixed latents for a given seed), on the CPU."""
        return sample_images(self.G_ema, n, seed, batch_size)
