"""The training settings of one candidate (torch-free, so settings can be checked without importing torch)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .._util.plugins import import_plugins
from .._util.settings import check_device_name, check_fields, coerce, normalize_fields, setting
from ..errors import ConfigError
from .loss import Loss, make_loss

# Settings that say how a candidate runs on its device, not what it computes: a resumed run takes them from the
# caller, not from its checkpoint.
RUNTIME_FIELDS = ("device", "cuda_graphs", "graph_self_check", "cudnn_benchmark", "channels_last", "allow_tf32")


# Upper bounds of the training settings: far beyond any real run, yet small enough that nothing derived from them
# (seeds times 100,003, sums of budgets, tensor sizes) overflows a C long or the ledger.
BUDGET = 10**12  # iterations
MAX_BATCH = 2**20  # images in a batch


@dataclass(frozen=True)
class TrainConfig:
    """One candidate's training settings. Each field's range and choices are its metadata (``setting``), read by
    the one validator (``check_fields``), by every search (``SearchConfig`` holds these fields as its own, defined
    here once) and by the CLI's flags for them (``dggan.cli.options.setting_flag``)."""

    # The total a run trains up to: a search's candidate budget (at most BUDGET) plus, for its final training, the
    # final iterations, so bounded only by the type here.
    iterations: int = setting(1000, low=1)
    batch_size: int = setting(16, low=2, high=MAX_BATCH)  # >= 2: minibatch stddev needs a batch
    lr: float = setting(1e-3, above=0)
    beta1: float = setting(0.0, low=0, below=1)
    beta2: float = setting(0.99, low=0, below=1)
    # The objective, by its registered name (dggan.training.loss): "wgan-gp", the paper's, or "r1", StyleGAN2's.
    loss: str = "wgan-gp"
    loss_options: dict[str, Any] = field(default_factory=dict)  # the loss's own options, e.g. {"gamma": 1} for r1
    gp_lambda: float = setting(10.0, low=0)  # WGAN-GP's, top-level for compatibility
    drift: float = setting(0.001, low=0)
    ema_beta: float = setting(0.999, low=0, below=1)
    # EMA ramp-up (StyleGAN2's, beyond the paper): the average's half-life in images grows with the images
    # seen, beta = min(ema_beta, 0.5 ** (batch / (seen * ema_rampup))), so a short run's EMA is not mostly its
    # random initial weights. None: a fixed ema_beta (ProgGAN).
    ema_rampup: float | None = setting(None, above=0)
    fade_fraction: float = setting(0.5, above=0, high=1)  # share of a grow_res child's iterations spent fading in
    # or an absolute length (pytorch_GAN_zoo: 600 alpha steps x 32 = 19,200), at most the iterations
    fade_iterations: int | None = setting(None, low=1, high=BUDGET)
    mbstd_group: int = setting(4, low=1, high=MAX_BATCH)
    flip: bool = False
    device: str = setting("cpu", check=check_device_name)  # cpu, cuda or cuda:N
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
    # A candidate's seed is derived from the search's 32-bit one (search.algorithm.seed_for: seed x 100,003 + id),
    # so it is wider than the seeds users type (SEED_RANGE: SearchConfig's seed, --seed).
    seed: int = setting(0, low=0)
    log_every: int = setting(100, low=1, high=BUDGET)
    divergence_threshold: float = setting(1e5, above=0)  # |D loss| beyond this counts as an exploding critic
    check_every: int = setting(10, low=1, high=BUDGET)  # how often (iterations) losses are pulled and checked
    # Refuse genomes estimated to need more (default: the device's memory).
    memory_limit_gb: float | None = setting(None, above=0, note="(GiB)", null="the device's own memory")
    # Modules imported before anything else is checked (their losses and metrics register themselves): in the
    # process that reads these settings and in every worker that trains a candidate with them.
    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        normalize_fields(self, "train config")
        import_plugins(self.plugins, "train config: plugins")
        check_fields(self, "train config")  # every field's range and choices (its metadata)
        if self.fade_iterations is not None and self.fade_iterations > self.iterations:
            raise ConfigError(f"train config: fade_iterations must be in [1, iterations = {self.iterations}] (a child"
                              f" must finish fading in), got {self.fade_iterations}")
        self.make_loss()  # the loss's name and options

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**coerce(cls, data, "train config"))

    def make_loss(self) -> Loss:
        return make_loss(self)
