"""The training settings of one candidate (torch-free, so settings can be checked without importing torch)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .._util.plugins import import_plugins
from .._util.settings import coerce, normalize_fields
from ..errors import ConfigError
from .loss import Loss, make_loss

# Settings that say how a candidate runs on its device, not what it computes: a resumed run takes them from the
# caller, not from its checkpoint.
RUNTIME_FIELDS = ("device", "cuda_graphs", "graph_self_check", "cudnn_benchmark", "channels_last", "allow_tf32")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.99
    # The objective, by its registered name (dggan.training.loss): "wgan-gp", the paper's, or "r1", StyleGAN2's.
    loss: str = "wgan-gp"
    loss_options: dict[str, Any] = field(default_factory=dict)  # the loss's own options, e.g. {"gamma": 1} for r1
    gp_lambda: float = 10.0  # WGAN-GP's, top-level for compatibility
    drift: float = 0.001
    ema_beta: float = 0.999
    # EMA ramp-up (StyleGAN2's, beyond the paper): the average's half-life in images grows with the images
    # seen, beta = min(ema_beta, 0.5 ** (batch / (seen * ema_rampup))), so a short run's EMA is not mostly its
    # random initial weights. None: a fixed ema_beta (ProgGAN).
    ema_rampup: float | None = None
    fade_fraction: float = 0.5  # share of a grow_res child's iterations spent fading in
    fade_iterations: int | None = None  # or an absolute length (pytorch_GAN_zoo: 600 alpha steps x 32 = 19,200)
    mbstd_group: int = 4
    flip: bool = False
    device: str = "cpu"
    bf16: bool = False  # bf16 autocast for forward passes (CUDA only)
    # CUDA only (the CPU ignores them): record one training iteration as a CUDA graph and replay it (see
    # dggan.training.cuda_graphs); let cuDNN time its algorithms for each conv shape (a candidate's shapes never
    # change);
    # keep conv weights and activations channels-last (NHWC, what tensor cores read; None: with bf16).
    cuda_graphs: bool = True
    # Each new graph's first replay is compared with the same iteration run eagerly (one extra iteration per
    # capture); a mismatch trains that candidate eagerly. Off: trust the graph.
    graph_self_check: bool = True
    cudnn_benchmark: bool = True
    channels_last: bool | None = None
    # TF32 tensor-core math for float32 convs and matmuls (CUDA, Ampere and later: ~10 mantissa bits instead of 23).
    # Off, so that "fp32" means float32; cuDNN's own default would be on.
    allow_tf32: bool = False
    seed: int = 0
    log_every: int = 100
    divergence_threshold: float = 1e5  # |D loss| beyond this counts as an exploding critic
    check_every: int = 10  # how often (iterations) losses are pulled to the host and checked
    memory_limit_gb: float | None = None  # refuse genomes estimated to need more (default: the device's memory)
    # Modules imported before anything else is checked (their losses and metrics register themselves): in the
    # process that reads these settings and in every worker that trains a candidate with them.
    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        normalize_fields(self, "train config")
        import_plugins(self.plugins, "train config: plugins")
        checks = [
            (self.iterations >= 1, "iterations must be >= 1"),
            (self.batch_size >= 2, "batch_size must be >= 2 (minibatch stddev needs a batch)"),
            (self.lr > 0, "lr must be > 0"),
            (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)"),
            (self.gp_lambda >= 0 and self.drift >= 0, "gp_lambda and drift must be >= 0"),
            (0 <= self.ema_beta < 1, "ema_beta must be in [0, 1)"),
            (self.ema_rampup is None or self.ema_rampup > 0, "ema_rampup must be > 0 or null"),
            (0 < self.fade_fraction <= 1, "fade_fraction must be in (0, 1]"),
            (self.fade_iterations is None or 1 <= self.fade_iterations <= self.iterations,
             f"fade_iterations must be in [1, iterations = {self.iterations}] (a child must finish fading in), got"
             f" {self.fade_iterations}"),
            (self.mbstd_group >= 1, "mbstd_group must be >= 1"),
            (self.log_every >= 1 and self.check_every >= 1, "log_every and check_every must be >= 1"),
            (self.divergence_threshold > 0, "divergence_threshold must be > 0"),
            (self.memory_limit_gb is None or self.memory_limit_gb > 0,
             f"memory_limit_gb must be > 0 (GiB) or null (the device's own memory), got {self.memory_limit_gb}"),
            (self.device == "cpu" or self.device.startswith("cuda"),
             f"device must be cpu or cuda[:N], got {self.device!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"train config: {message}")
        self.make_loss()  # the loss's name and options

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**coerce(cls, data, "train config"))

    def make_loss(self) -> Loss:
        return make_loss(self)
