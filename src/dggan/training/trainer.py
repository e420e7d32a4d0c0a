"""Training one candidate: the loop around the GAN objective (``TrainConfig.loss``: WGAN-GP, the paper's, by
default; see ``dggan.training.loss``), with ProgGAN's fade-in and an EMA of G.

One iteration = one D step and one G step on the same latent batch: G runs forward once, D is updated
on the detached images, then the G loss reuses that forward with the updated D (the paper's setting of
one D step per G step, without a second G forward). A loss with a lazy regulariser (``r1``) adds a D step of
its own on the iteration's real batch every ``regularize_every`` iterations, before that iteration's D step.

The fade-in schedule is fixed when a trainer is built (``fade_iterations``) and saved in every
checkpoint, so continuing a run for longer (``extend``) never moves alpha.

On CUDA an iteration is captured once as a CUDA graph and replayed (``cuda_graphs``, see
``dggan.training.cuda_graphs``); nothing in the loop waits for the GPU except the loss check every
``check_every`` iterations. The CPU runs the plain eager loop. ``train_together`` trains several
candidates in one thread, each on its own CUDA stream, so one GPU runs their iterations side by side.

A trainer holds no reference cycle (its graph keeps only weak references to it), so dropping its last
reference frees its device memory at once.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Generator as Steps
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.base import BatchSampler, ImageSource, to_float
from ..errors import ConfigError
from ..model.genome import Genome
from ..model.inherit import InheritanceReport, InheritPolicy, NewLayerInit, identity_init, inherit_weights
from ..model.memory import check_fits
from ..model.networks import Discriminator, Generator
from ..model.sampling import sample_images
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    check_state,
    load_optimizer_state,
    optimizer_tensors,
    save_checkpoint,
)
from .config import RUNTIME_FIELDS, TrainConfig
from .cuda_graphs import (
    GraphedStep,
    RawBatchSampler,
    SelfCheck,
    StaticInputs,
    Uploader,
    adam_options,
    channels_last_enabled,
    ema_update,
    graphs_enabled,
    graphs_off_in_process,
    on_stream,
    set_tf32,
    weak,
)
from .devices import pick_device  # (also imported from here)


@dataclass
class TrainResult:
    status: str  # "done" or "diverged"
    iterations: int  # the trainer's iteration count when training stopped
    seconds: float
    stats: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    trained: int = 0  # iterations run by this call (a continued run starts above 0)
    graphs: dict[str, Any] = field(default_factory=dict)  # how it ran: ``Trainer.graph_record()``

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIRST_OPTIMIZER_DONE = False


def _collect_after_first_optimizer() -> None:
    """Once per process, after its first optimizer: that optimizer imports ``torch._dynamo`` lazily, whose
    ``torch.fx.wrap`` keeps its own frame in a reference cycle, and with it every caller's frame up the stack (this
    trainer's ``__init__``, so the trainer): one collection frees them, later trainers need none."""
    global _FIRST_OPTIMIZER_DONE
    if not _FIRST_OPTIMIZER_DONE:
        _FIRST_OPTIMIZER_DONE = True
        gc.collect()


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
        cuda = self.device.type == "cuda"
        self.graphed = graphs_enabled(self.device.type, config.cuda_graphs)
        check_fits(genome, config.batch_size, str(self.device), config.memory_limit_gb,  # before any allocation
                   graphs=self.graphed, self_check=config.graph_self_check)
        if cuda:  # process-wide: the last trainer built decides
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
            set_tf32(config.allow_tf32)
        self.loss = config.make_loss()
        # Logged per iteration: the two losses, then what the loss declares (open-ended: a name and a value).
        self.stat_names: tuple[str, ...] = ("loss_d", "loss_g", *self.loss.stats, *self.loss.reg_stats)
        # The fade-in length is fixed now; extending the run later never moves alpha.
        self.fade_iterations = (fade_iterations if fade_iterations is not None else config.fade_iterations
                                or max(1, math.ceil(config.fade_fraction * config.iterations)))
        # Fresh layers' init is a function of the seed; the caller's global RNG state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.G = Generator(genome, fade_in=fade_in).to(self.device)
            self.D = Discriminator(genome, fade_in=fade_in, mbstd_group=config.mbstd_group).to(self.device)
            self.G_ema = Generator(genome, fade_in=fade_in).to(self.device).requires_grad_(False)
        if channels_last_enabled(self.device.type, config.channels_last, config.bf16):
            for net in (self.G, self.D, self.G_ema):
                net.to(memory_format=torch.channels_last)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.opt_g = self._adam(self.G)
        self.opt_d = self._adam(self.D)
        _collect_after_first_optimizer()
        # On CUDA the sampler draws on the CPU and batches travel through pinned memory (no host sync).
        self.sampler: BatchSampler = RawBatchSampler(data, genome.resolution, config.batch_size, seed=config.seed + 1,
                                                     flip=config.flip, device="cpu" if cuda else self.device)
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed + 2)
        # The lazy regulariser's stats from its last step, logged at every iteration until its next (a buffer the
        # iteration reads, so a CUDA graph replays it with the current values).
        self._reg_stats = torch.zeros(len(self.loss.reg_stats), device=self.device)
        self._upload: Uploader | None = None
        self._raw: torch.Tensor | None = None  # the device's uint8 batch, when uploads go as uint8
        self._static: StaticInputs | None = None
        self._graph: Any = None  # GraphedStep, or any object with its ``run(key, body)``
        if cuda:
            self._make_uploader()
        if self.graphed:
            self.use_static_inputs(self.graphed_step())
        self.iteration = 0
        # Which model of a run this is (a search's candidate id): written into its checkpoints, so a checkpoint
        # says which candidate it holds and a swapped file is caught against the ledger.
        self.candidate: int | None = None
        self.train_seconds = 0.0  # wall time spent in train(), across resumes
        self.inheritance: dict[str, InheritanceReport] = {}
        self._one_pass = config.batch_size % min(config.mbstd_group, config.batch_size) == 0
        self._refresh_param_lists()
        if fade_in:
            self._set_alpha(0.0)

    # ------------------------------------------------------------------ construction helpers
    def _adam(self, net: torch.nn.Module) -> torch.optim.Adam:
        return torch.optim.Adam(net.parameters(), lr=self.config.lr, betas=(self.config.beta1, self.config.beta2),
                                **adam_options(self.device.type, self.graphed))

    def _image_shape(self) -> tuple[int, int, int]:
        return (self.genome.image_channels, self.genome.resolution, self.genome.resolution)

    def _make_uploader(self) -> None:
        """Batches go up as the stored uint8 when the data is stored at this resolution (a quarter of float32's
        bytes; made float on the device, bit for bit the CPU's batch), else as float32 after the CPU's pooling."""
        shape = (self.config.batch_size, *self._image_shape())
        if isinstance(self.sampler, RawBatchSampler) and self.sampler.serves_raw():
            self._upload = Uploader(shape, self.device, dtype=torch.uint8)
            self._raw = torch.empty(shape, dtype=torch.uint8, device=self.device)
        else:
            self._upload = Uploader(shape, self.device)

    def use_static_inputs(self, runner: Any) -> None:
        """Run every iteration on static input buffers through ``runner.run(key, body)``: a ``GraphedStep`` on
        CUDA (built when ``cuda_graphs`` is on); tests give the CPU a runner that just calls ``body``."""
        cfg = self.config
        self._static = StaticInputs(cfg.batch_size, self.genome.latent_size, self._image_shape(), self.device)
        self._graph = runner
        if self._upload is None:
            self._make_uploader()
        if self.G.fade_in:
            # G and D read alpha from the device from now on; the EMA copy (sampled eagerly) keeps a float.
            self._static.alpha.fill_(self.G_ema.alpha)
            self.G.set_alpha(self._static.alpha)
            self.D.set_alpha(self._static.alpha)

    def graphed_step(self, backend: Any = None) -> GraphedStep:
        """The ``GraphedStep`` this trainer runs under ``cuda_graphs`` (self-checked unless ``graph_self_check``
        is off); ``backend``: ``EmulatedBackend(self.graph_state)`` runs its logic on the CPU."""
        check = SelfCheck(self.graph_state, bf16=self.config.bf16) if self.config.graph_self_check else None
        return GraphedStep(self.device, self._release_grads, check=check, backend=backend)  # (holds them weakly)

    def graph_state(self) -> dict[str, torch.Tensor]:
        """Every tensor one iteration changes (what a graph's self-check snapshots and compares)."""
        out: dict[str, torch.Tensor] = {}
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            out.update({f"{name}.{k}": v for k, v in net.state_dict(keep_vars=True).items()})
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            params = [p for group in opt.param_groups for p in group["params"]]
            for i, p in enumerate(params):
                for k, v in opt.state.get(p, {}).items():
                    if isinstance(v, torch.Tensor):
                        out[f"{name}.{i}.{k}"] = v
        return out

    def graph_record(self) -> dict[str, Any]:
        """How this trainer's iterations ran: graphed, eager (and why), or fell back from graphs (and why)."""
        record = getattr(self._graph, "record", None)
        if record is not None:
            return record()
        off = graphs_off_in_process()
        if self.device.type != "cuda":
            why = "CUDA graphs are CUDA only"
        elif self.config.cuda_graphs and off is not None:
            why = f"CUDA graphs are off in this process: {off}"
        else:
            why = "cuda_graphs is off"
        return {"mode": "eager", "captures": 0, "self_checks_passed": 0, "self_check": False, "why": why}

    def _release_grads(self) -> None:
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)

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
    def resume(cls, ckpt: Checkpoint, data: ImageSource, device: str | None = None,
               runtime: Mapping[str, Any] | None = None) -> Trainer:
        """Continue exactly where a checkpoint stopped (same alpha, same batches, same noise).

        ``device`` and ``runtime`` (any of ``RUNTIME_FIELDS``: how to run, e.g. ``cuda_graphs``) replace what
        the checkpoint's config says."""
        config_dict = dict(ckpt.state["config"])
        config_dict.update({k: v for k, v in (runtime or {}).items() if k in RUNTIME_FIELDS})
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
        for i, name in enumerate(trainer.loss.reg_stats):
            if f"loss.{name}" in ckpt.tensors:
                trainer._reg_stats[i].copy_(ckpt.tensors[f"loss.{name}"])
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
        self.G_ema.set_alpha(alpha)
        if self._static is None:
            self.G.set_alpha(alpha)
            self.D.set_alpha(alpha)
        else:
            self._static.alpha.fill_(min(max(alpha, 0.0), 1.0))  # queued before the next replay, no sync

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
        # (A captured graph sees the change through its key, ``fading``: it is dropped and captured anew.)

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
        stats = self._step()
        return stats.clone() if self._static is not None else stats  # a replay overwrites its output in place

    def _step(self) -> torch.Tensor:
        if self.fading:
            alpha = self.alpha_at(self.iteration)
            if alpha >= 1.0:
                self._finish_fade_in()
            else:
                self._set_alpha(alpha)
        every = self.loss.regularize_every
        regularize = every > 0 and self.iteration % every == 0  # the iteration alone: a resumed run does the same
        if self._static is not None:
            stats = self._graphed_step(self._static, regularize)
        else:
            real = self._next_real()
            z = torch.randn(self.config.batch_size, self.genome.latent_size, device=self.device, generator=self.rng)
            eps = torch.rand(self.config.batch_size, 1, 1, 1, device=self.device, generator=self.rng)
            alpha = self.G.alpha if self.fading else None
            if regularize:
                self._regularize(real, alpha)
            stats = self._update(real, z, eps, alpha, 1.0 - self.ema_beta())
        self.iteration += 1
        return stats

    def _next_real(self) -> torch.Tensor:
        if self._upload is None:
            return self.sampler.next()
        return self._upload_batch(None)

    def _upload_batch(self, out: torch.Tensor | None) -> torch.Tensor:
        """The next real batch on the device, into ``out`` (a new tensor when None), queued without a host sync."""
        assert self._upload is not None
        if self._raw is None:
            batch = self.sampler.draw()
            return self._upload.copy(batch, torch.empty(batch.shape, device=self.device) if out is None else out)
        assert isinstance(self.sampler, RawBatchSampler)
        raw = self._upload.copy(self.sampler.draw_uint8(), self._raw)
        real = to_float(raw, self.genome.resolution)  # on the device: the CPU's ops, in its order
        return real if out is None else out.copy_(real)

    def _graphed_step(self, s: StaticInputs, regularize: bool = False) -> torch.Tensor:
        """Fill the static inputs (queued, no sync), then run the iteration: eager warm-up, capture or replay. A
        lazy regulariser's step runs eagerly before it, on the same static inputs, outside the graph: the graph
        (and its key) is the same at every iteration, so it is captured once, not once per regulariser step."""
        assert self._upload is not None and self._graph is not None
        self._upload_batch(s.real)
        s.draw_noise(self.rng)
        if self.config.ema_rampup is not None:
            s.ema_weight.fill_(1.0 - self.ema_beta())
        alpha = s.alpha if self.fading else None  # (fading is in the key: a replay never runs the other network)
        if regularize:
            self._regularize(s.real, alpha)
        # What the graph records; it reaches the trainer weakly (an emulated graph keeps the body to replay it).
        update = weak(self._update)
        ema = s.ema_weight if self.config.ema_rampup is not None else 1.0 - self.config.ema_beta
        return self._graph.run(self._graph_key(), lambda: update(s.real, s.z, s.eps, alpha, ema))

    def _graph_key(self) -> tuple[Any, ...]:
        """What a captured graph depends on beyond its device buffers: the network (fading or not) and the
        numbers baked into its kernels (Adam's lr, betas, eps, weight decay; the EMA weight without ramp-up).
        Read on the host at every iteration (a few floats): a change, e.g. a future LR schedule, recaptures
        instead of replaying stale values."""
        baked = tuple((g["lr"], g["betas"], g["eps"], g["weight_decay"]) for opt in (self.opt_g, self.opt_d)
                      for g in opt.param_groups)
        ema = None if self.config.ema_rampup is not None else 1.0 - self.config.ema_beta
        return (self.fading, baked, ema)

    @staticmethod
    def _faded_real(real: torch.Tensor, alpha: float | torch.Tensor | None) -> torch.Tensor:
        if alpha is None:
            return real
        # ProgGAN also fades the real images, so D sees the same blend of scales as G produces.
        low = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2.0, mode="nearest")
        return torch.lerp(low, real, alpha)

    def _regularize(self, real: torch.Tensor, alpha: float | torch.Tensor | None) -> None:
        """The loss's lazy regulariser as a D step of its own (StyleGAN2's lazy regularisation), always eager."""
        terms = self.loss.regularizer(self.D, self._faded_real(real, alpha), self._autocast)
        self._check_stats(terms.stats, self.loss.reg_stats, "regularizer")
        self.opt_d.zero_grad(set_to_none=True)
        terms.loss.backward()
        self.opt_d.step()
        self.opt_d.zero_grad(set_to_none=True)  # (under a graph, replays write the graph's own gradients)
        with torch.no_grad():
            self._reg_stats.copy_(torch.stack([terms.stats[name] for name in self.loss.reg_stats]))

    def _check_stats(self, stats: Mapping[str, torch.Tensor], declared: tuple[str, ...], method: str) -> None:
        if stats.keys() != set(declared):
            raise TypeError(f"loss {self.loss.name!r}: {method}() returned the stats {sorted(stats)} but the loss"
                            f" declares {sorted(declared)}; make them agree")

    def _update(self, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, alpha: float | torch.Tensor | None,
                ema_weight: float | torch.Tensor) -> torch.Tensor:
        """The iteration itself, on given inputs: what a CUDA graph records (then reading only device tensors)."""
        real = self._faded_real(real, alpha)
        with self._autocast():
            fake = self.G(z)
        critic = self.loss.critic(self.D, real, fake.detach(), eps, self._autocast, self._one_pass)
        self._check_stats(critic.stats, self.loss.stats, "critic")
        self.opt_d.zero_grad(set_to_none=True)
        critic.loss.backward()
        self.opt_d.step()

        loss_g = self.loss.generator(self.D, fake, self._autocast)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=self._g_params)  # D's weights get no gradient from the G step
        self.opt_g.step()
        with torch.no_grad():
            ema_update(self._ema_params, self._g_params, ema_weight)
        stats = torch.stack([critic.loss, loss_g, *(critic.stats[name] for name in self.loss.stats)]).detach()
        return torch.cat([stats, self._reg_stats]) if self.loss.reg_stats else stats

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
        return _run_to_end(self.train_steps(until, progress=progress, desc=desc, on_log=on_log,
                                            checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every,
                                            on_checkpoint=on_checkpoint))

    def train_steps(self, until: int | None = None, *, progress: bool = True, desc: str | None = None,
                    on_log: Callable[[dict[str, float]], None] | None = None,
                    checkpoint_path: str | Path | None = None, checkpoint_every: int = 0,
                    on_checkpoint: Callable[[int], None] | None = None) -> Steps[None, None, TrainResult]:
        """``train`` one iteration at a time: yields after every iteration, returns the ``TrainResult``
        (``train_together`` interleaves several of these)."""
        cfg = self.config
        end = cfg.iterations if until is None else min(cfg.iterations, until)
        start_time, start_iter = time.perf_counter(), self.iteration
        acc = torch.zeros(len(self.stat_names), device=self.device)
        acc_n = 0
        last: dict[str, float] = {}
        # Quiet when asked, and when stderr is not a terminal (disable=None); under the search's step bar.
        bar = tqdm(total=end, initial=self.iteration, disable=None if progress else True, position=1 if desc else 0,
                   desc=desc or f"train {self.genome.resolution}px", unit="it", leave=False)
        try:
            while self.iteration < end:
                acc += self._step()
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
                                           dict(zip(self.stat_names, values, strict=True)), reason=why,
                                           trained=self.iteration - start_iter, graphs=self.graph_record())
                    if self.iteration % cfg.log_every == 0 or done:
                        elapsed = time.perf_counter() - start_time
                        last = {"iteration": self.iteration, "alpha": self.G_ema.alpha if self.fading else 1.0,
                                **dict(zip(self.stat_names, values, strict=True)),
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
                yield
        finally:
            bar.close()
            self.train_seconds += time.perf_counter() - start_time
        if self.fading and self.alpha_at(self.iteration) >= 1.0 and self.iteration >= cfg.iterations:
            self._finish_fade_in()  # fade_fraction == 1: the last step ran at alpha < 1
        return TrainResult("done", self.iteration, time.perf_counter() - start_time, last,
                           trained=self.iteration - start_iter, graphs=self.graph_record())

    # ------------------------------------------------------------------ checkpoints
    def tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            out.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
        out.update(optimizer_tensors(self.opt_g, self.G, "opt_g"))
        out.update(optimizer_tensors(self.opt_d, self.D, "opt_d"))
        out.update({f"sampler.{k}": v for k, v in self.sampler.state_dict().items()})
        out["rng.noise"] = self.rng.get_state()
        out.update({f"loss.{name}": self._reg_stats[i].clone() for i, name in enumerate(self.loss.reg_stats)})
        return out

    def state(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "total_iterations": self.config.iterations,
                "fade_in": self.fading, "alpha": self.alpha_at(self.iteration) if self.fading else 1.0,
                "fade_iterations": self.fade_iterations, "data": self.data.spec,
                "train_seconds": self.train_seconds, "config": self.config.to_dict(),
                **({"candidate": self.candidate} if self.candidate is not None else {})}

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.genome, self.state(), self.tensors())

    def sample(self, n: int, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
        """``n`` images from the EMA generator (fixed latents for a given seed), on the CPU."""
        return sample_images(self.G_ema, n, seed, batch_size)


def _run_to_end(steps: Steps[None, None, TrainResult]) -> TrainResult:
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def train_together(jobs: Sequence[tuple[Trainer, Mapping[str, Any]]]) -> list[TrainResult | Exception]:
    """Train several candidates in this thread, one iteration of each in turn (``jobs``: a trainer and the
    keyword arguments of its ``train``); returns each one's result, or the exception that stopped it.

    On CUDA each candidate runs on its own stream, so the GPU overlaps their iterations (a replayed graph is
    one launch: the host keeps several streams fed). On the CPU the results are exactly those of training
    them one after the other. ``train_seconds`` counts the wall time of the whole group.

    A returned exception's traceback holds this call's frame, and so every trainer of the group (and the results
    list, itself included: a cycle): clear its frames once its text is written (``dggan.execution.worker`` does).
    """
    streams: list[Any] = []
    for trainer, _ in jobs:
        stream = None
        if trainer.device.type == "cuda":
            stream = torch.cuda.Stream(trainer.device)
            stream.wait_stream(torch.cuda.current_stream(trainer.device))  # the networks were built there
        streams.append(stream)
    runs = {i: trainer.train_steps(**kwargs) for i, (trainer, kwargs) in enumerate(jobs)}
    results: list[TrainResult | Exception] = [RuntimeError("not trained")] * len(jobs)
    while runs:
        for i in list(runs):
            try:
                with on_stream(streams[i]):
                    next(runs[i])
            except StopIteration as stop:
                results[i] = stop.value
                del runs[i]
            except Exception as exc:  # noqa: BLE001 (one candidate's failure is its own; the others go on)
                results[i] = exc
                del runs[i]
    for (trainer, _), stream in zip(jobs, streams, strict=True):
        if stream is not None:
            torch.cuda.current_stream(trainer.device).wait_stream(stream)
    return results
