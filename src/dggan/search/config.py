"""Search settings, their validation, and the presets (paper settings and a CPU demo)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.files import JSONFileError, atomic_write_json, read_json_file
from .._util.plugins import import_plugins
from .._util.settings import check_device_name, check_range, coerce, normalize_fields
from ..errors import ConfigError, InvalidActionError, SearchError
from ..execution.executors import BUILTIN_EXECUTORS, executor_choices, executor_names
from ..metrics.registry import metric_kind, metric_kinds, metric_spec
from ..model.actions import PAPER_ACTIONS, PAPER_FILTERS, PAPER_KERNELS, ActionSpace, GrowthLimits, action_kinds
from ..model.genome import Genome, is_int, is_power_of_two, proggan_channels
from ..runs import LEDGER_NAME, OPTIONS_NAME, RunLayout, check_new_run_dir, os_error
from ..training.config import TrainConfig
from .algorithm import SELECTIONS, Rules
from .ledger import Ledger

EXECUTORS = BUILTIN_EXECUTORS  # the built-in executors; executor_names(): every registered one (plugins' too)
_TRAIN = TrainConfig()  # the training knobs' defaults, so the search's defaults cannot drift from them
# TrainConfig fields the search sets per candidate rather than from a setting of the same name.
SEARCH_MANAGED = frozenset({"iterations", "seed", "device", "log_every"})

# Settings that say where and how fast a search runs, not what it computes: --resume may change them.
RUNTIME_SETTINGS = frozenset({"threads", "executor", "workers", "gpus_per_candidate", "device", "candidates_per_gpu",
                              "gpu_sharing", "cuda_graphs", "graph_self_check", "cudnn_benchmark", "channels_last",
                              "allow_tf32", "tensorboard",
                              "slurm_cluster", "slurm_partition", "slurm_gpus", "slurm_cpus_per_task", "slurm_time_min",
                              "slurm_max_timeouts", "slurm_array_parallelism", "slurm_extra", "slurm_setup",
                              "slurm_poll_s", "slurm_folder"})
# Said with every error that asks for --resume (the CLI adds it; the driver may use it in its own messages):
# a cause in a setting --resume keeps needs a new search.
RESUME_HINT = (f"(--resume may change only the runtime settings {', '.join(sorted(RUNTIME_SETTINGS))}; a cause in"
               " any other setting needs a new search with --run-dir)")


# Upper (and lower) bounds of the integer settings: far beyond any real search, yet small enough that nothing
# derived from them (seeds times 100,003, sums of budgets, tensor sizes) overflows a C long or the ledger.
_BUDGET = 10**12  # iterations
_WIDTH = 2**31 - 1  # channels and filters: a C int, what torch's conv layers hold
INT_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1), "latent_size": (1, _WIDTH), "initial_channels": (8, _WIDTH), "filters": (1, _WIDTH),
    "kernels": (1, 255), "base_resolution": (4, 2**16), "target_resolution": (4, 2**16), "top_k": (1, 10**6),
    "max_g_layers": (0, 10**4), "max_d_layers": (0, 10**4), "max_steps": (1, 10**6), "halving_eta": (1, 1000),
    "iterations": (1, _BUDGET), "initial_iterations": (1, _BUDGET), "final_iterations": (0, _BUDGET),
    "fade_iterations": (1, _BUDGET), "final_pick_candidates": (1, 1000), "final_pick_seeds": (1, 100),
    "final_snapshots": (1, 1000), "checkpoint_every": (0, _BUDGET), "check_every": (1, _BUDGET),
    "batch_size": (2, 2**20), "mbstd_group": (1, 2**20), "eval_batch_size": (1, 2**20), "sample_grid": (0, 10**4),
    "workers": (1, 4096), "threads": (1, 4096), "slurm_gpus": (0, 1024), "slurm_cpus_per_task": (1, 4096),
    "slurm_time_min": (1, 10**7), "slurm_max_timeouts": (0, 10**6), "slurm_array_parallelism": (1, 10**6),
}

@dataclass(frozen=True)
class SearchConfig:
    """Every knob of Algorithm 1 and of the candidates' training. See ``PRESETS`` for the paper's values."""

    data: str = "synthetic"
    metric: str = "swd1k"
    baseline: Any = "auto"  # "auto" | "none" | a paper baseline name | path of a baseline run | {res: value}
    initial_channels: tuple[int, ...] = (512,)
    latent_size: int = 128
    base_resolution: int = 8
    target_resolution: int = 32
    top_k: int = 20
    p: float = 0.4
    kernels: tuple[int, ...] = PAPER_KERNELS
    filters: tuple[int, ...] = PAPER_FILTERS
    grow_g: bool = True
    grow_d: bool = True
    grow_res: bool = True
    # Registered growth actions beyond the paper's three to add to the action space (@register_action,
    # docs/extending.md), taken after them in this order.
    actions: tuple[str, ...] = ()
    max_g_layers: int | None = None
    max_d_layers: int | None = None
    max_steps: int | None = 12
    # How a step's parents are kept: "beam" (the paper's top-K by score) or "random" (K finished children drawn
    # at random, and halving's rungs drawn too: random growth, the baseline that measures what ranking buys).
    selection: str = "beam"
    # Successive halving inside every step (beyond the paper; 1 = off): children are scored at rungs of
    # their budget (halving_min_fraction, x halving_eta, ..., 1) and only the best 1/eta go on.
    halving_eta: int = 1
    halving_min_fraction: float = 1 / 9
    rung_metric: str | None = None  # the cheaper metric intermediate rungs are scored with (default: metric)
    iterations: int = 100_000
    initial_iterations: int | None = None  # default: iterations
    final_iterations: int = 100_000
    # The final pick and training (beyond the paper): the best `final_pick_candidates` at the target are re-scored
    # over `final_pick_seeds` selection seeds and picked by their mean (1 candidate: the best by its own score);
    # the final training is scored at `final_snapshots` points (its start included) and its best snapshot kept.
    final_pick_candidates: int = 3
    final_pick_seeds: int = 3
    final_snapshots: int = 6
    # Training: every TrainConfig knob (see dggan.training.trainer), with its defaults.
    batch_size: int = _TRAIN.batch_size
    lr: float = _TRAIN.lr
    beta1: float = _TRAIN.beta1
    beta2: float = _TRAIN.beta2
    loss: str = _TRAIN.loss  # the objective by its registered name: wgan-gp (the paper's) or r1 (StyleGAN2's)
    loss_options: dict[str, Any] = field(default_factory=dict)  # the loss's own, e.g. {"gamma": 1, "every": 16}
    # Modules imported before any other setting is checked, by the driver and by every worker before its candidate
    # (their @register_loss, @register_metric, @register_executor... add names): ["my_losses"], on PYTHONPATH.
    plugins: tuple[str, ...] = _TRAIN.plugins
    gp_lambda: float = _TRAIN.gp_lambda
    drift: float = _TRAIN.drift
    ema_beta: float = _TRAIN.ema_beta
    ema_rampup: float | None = _TRAIN.ema_rampup
    fade_fraction: float = _TRAIN.fade_fraction
    fade_iterations: int | None = _TRAIN.fade_iterations
    mbstd_group: int = _TRAIN.mbstd_group
    flip: bool = _TRAIN.flip
    divergence_threshold: float = _TRAIN.divergence_threshold
    check_every: int = _TRAIN.check_every
    memory_limit_gb: float | None = _TRAIN.memory_limit_gb
    inherit_policy: str = "adapt"
    new_layer_init: str = "random"  # "identity": grown convs start as identities (beyond the paper)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False
    cuda_graphs: bool = _TRAIN.cuda_graphs  # CUDA: one captured graph per iteration, replayed (training.cuda_graphs)
    graph_self_check: bool = _TRAIN.graph_self_check  # each new graph checked against eager once
    cudnn_benchmark: bool = _TRAIN.cudnn_benchmark
    channels_last: bool | None = _TRAIN.channels_last  # None: with bf16
    allow_tf32: bool = _TRAIN.allow_tf32  # TF32 math for float32 convs and matmuls (CUDA); off: fp32 is fp32
    checkpoint_every: int = 0  # iterations between in-candidate checkpoints (0: a quarter of the budget)
    sample_grid: int = 36  # images in each candidate's samples.png (0: none)
    tables: bool = True  # after the final training, the paper's Tables 1-3 into RUN/best (dggan tables)
    eval_batch_size: int = 64
    inception_weights: str | None = None
    cache_dir: str | None = None  # reference statistics cache (default: ~/.cache/dggan or $DGGAN_CACHE)
    executor: str = "inprocess"  # a registered executor's name (dggan.execution.executors.register_executor)
    workers: int = 1
    gpus_per_candidate: float = 1.0
    # Candidates sharing one GPU (see dggan.execution.executors): processes per GPU (local; Ray: 1/N GPU per task)
    # or, with gpu_sharing "streams", candidates trained together per worker. null: 4 where they overlap (MPS
    # daemon running, or streams), else 1.
    candidates_per_gpu: int | None = None
    gpu_sharing: str = "processes"  # processes | streams (local executor only)
    threads: int | None = None  # torch CPU threads per candidate (default: the executor's choice)
    tensorboard: bool = True  # losses, metrics and samples under RUN/tb when tensorboard is installed ([tb] extra)
    # The slurm executor (submitit, the [slurm] extra): every candidate a SLURM job, a batch of them one job array.
    slurm_cluster: str = "slurm"  # "local": the same jobs as processes of this machine (try a SLURM setup)
    slurm_partition: str | None = None
    # GPUs per candidate job (0: CPU jobs); null: one when the device is CUDA, or `auto` on a partition with GPUs.
    slurm_gpus: int | None = None
    # CPUs per job, also its torch threads unless `threads` is set; null: 4, or all a node has if fewer.
    slurm_cpus_per_task: int | None = None
    slurm_time_min: int = 24 * 60  # a job's time limit; a longer candidate is requeued and resumes
    slurm_max_timeouts: int = 20  # requeues after hitting the time limit (preemptions do not count)
    slurm_array_parallelism: int = 256  # jobs of one array running at once
    slurm_poll_s: float | None = None  # seconds between the driver's looks at its jobs (null: 15; 0.5 locally)
    slurm_extra: dict[str, Any] = field(default_factory=dict)  # more sbatch options: {"account": "lab", "mem": "64G"}
    slurm_setup: tuple[str, ...] = ()  # shell lines run before each job ("module load cuda", "source .venv/...")
    slurm_folder: str | None = None  # submitit's job files and logs (default RUN/slurm; a shared filesystem)

    def __post_init__(self) -> None:
        normalize_fields(self, "search config")
        # First: the modules it names register the losses, metrics and executors the other settings may name.
        import_plugins(self.plugins, "search config: plugins")

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(f"search config: {message}")

        need(isinstance(self.top_k, int) and self.top_k >= 1, f"top_k (K) must be an int >= 1, got {self.top_k!r}")
        need(0 < self.p <= 1, f"p must be in (0, 1], got {self.p!r}")
        need(self.selection in SELECTIONS, f"selection must be {' or '.join(SELECTIONS)} (random growth), got"
             f" {self.selection!r}")
        need(is_power_of_two(self.base_resolution) and self.base_resolution >= 4,
             f"base_resolution (d0) must be a power of two >= 4, got {self.base_resolution!r}")
        need(is_power_of_two(self.target_resolution), f"target_resolution must be a power of two, got"
             f" {self.target_resolution!r}")
        need(self.target_resolution >= self.base_resolution,
             f"target_resolution {self.target_resolution} is below base_resolution {self.base_resolution}")
        need(len(self.initial_channels) >= 1 and all(c >= 8 for c in self.initial_channels),
             f"initial_channels must list widths >= 8, got {list(self.initial_channels)}")
        need(self.latent_size >= 1, f"latent_size must be >= 1, got {self.latent_size}")
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        need(self.checkpoint_every >= 0, f"checkpoint_every must be >= 0 (0: a quarter of the budget), got"
             f" {self.checkpoint_every}")
        need(self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}")
        need(self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1 or null")
        need(self.initial_iterations is None or self.initial_iterations >= 1, "initial_iterations must be >= 1")
        need(self.final_iterations >= 0, "final_iterations must be >= 0")
        need(self.inherit_policy in ("adapt", "fresh"), "inherit_policy must be 'adapt' or 'fresh'")
        need(self.new_layer_init in ("random", "identity"), "new_layer_init must be 'random' or 'identity'")
        check_device_name(self.device, "search config: device", allow_auto=True)
        need(self.executor in executor_names(), f"executor must be {executor_choices()}, got {self.executor!r}")
        need(self.workers >= 1, "workers must be >= 1")
        need(0 < self.gpus_per_candidate <= 8, "gpus_per_candidate must be in (0, 8]")
        need(self.candidates_per_gpu is None or 1 <= self.candidates_per_gpu <= 64,
             f"candidates_per_gpu must be in [1, 64] or null (auto), got {self.candidates_per_gpu}")
        need(self.gpu_sharing in ("processes", "streams"), f"gpu_sharing must be processes or streams, got"
             f" {self.gpu_sharing!r}")
        need(self.gpu_sharing == "processes" or self.executor != "ray",
             "gpu_sharing=streams is for the local executor; Ray shares GPUs between processes (fractional GPUs)")
        need(self.threads is None or self.threads >= 1, "threads must be >= 1 or null")
        need(self.eval_batch_size >= 1 and self.sample_grid >= 0, "eval_batch_size >= 1 and sample_grid >= 0")
        self._check_slurm(need)
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            for item in value if isinstance(value, tuple) else (value,):
                check_range("search config", name, item, low, high)
        registered = action_kinds()
        unknown = [name for name in self.actions if name not in registered]
        others = ", ".join(name for name in registered if name not in PAPER_ACTIONS) or "none"
        need(not unknown, f"actions names unregistered growth action(s) {', '.join(map(repr, unknown))};"
             f" registered beyond the paper's three: {others} (register one with @register_action in a module"
             " imported first, e.g. one the plugins setting names: docs/extending.md)")
        paper = [name for name in self.actions if name in PAPER_ACTIONS]
        need(not paper, f"actions lists {', '.join(paper)}: the paper's actions are switched by grow_g, grow_d and"
             " grow_res; actions names the other registered ones (@register_action, docs/extending.md)")
        twice = sorted({name for name in self.actions if self.actions.count(name) > 1})
        need(not twice, f"actions names {', '.join(twice)} more than once")
        convs = [name for name in self.actions if registered[name].conv]
        need(bool(self.kernels and self.filters) or not (self.grow_g or self.grow_d or convs),
             f"kernels and filters must each list at least one value while grow_g or grow_d"
             f"{''.join(f' or {name}' for name in convs)} is on, got kernels"
             f" {list(self.kernels)} and filters {list(self.filters)}")
        try:
            self.action_space().actions()
        except InvalidActionError as exc:
            raise ConfigError(f"search config: {exc}") from None
        caps = (("G", self.grow_g, self.max_g_layers), ("D", self.grow_d, self.max_d_layers))
        endless = [kind for kind, on, cap in caps if on and cap is None]
        need(self.max_steps is not None or not endless,
             f"max_steps is null and nothing limits the {' and '.join(endless)} layers, so the search would grow"
             f" forever; set max_steps, or max_{endless[0].lower() if endless else 'g'}_layers"
             f"{' and max_d_layers' if len(endless) == 2 else ''}")
        need(self.max_steps is not None or not self.actions,
             f"max_steps is null, and nothing says the registered actions {list(self.actions)} stop growing; set"
             " max_steps")
        need(self.grow_res or self.target_resolution == self.base_resolution,
             "grow_res is disabled, so the search can never reach target_resolution; enable it or set"
             " target_resolution = base_resolution")
        self.train_config(self.iterations)  # validates the training settings
        spec = metric_spec(self.metric, "search config: metric")
        lower = ", ".join(f"{k}..." for k, kind in sorted(metric_kinds().items()) if kind.lower_is_better)
        need(spec.lower_is_better, f"metric {self.metric!r} is higher-is-better; the search ranks candidates by"
             f" a lower-is-better metric ({lower})")
        need(self.halving_eta >= 1, f"halving_eta must be >= 1 (1: no successive halving), got {self.halving_eta}")
        need(0 < self.halving_min_fraction <= 1, "halving_min_fraction must be in (0, 1]")
        if self.rung_metric is not None and self.halving_eta > 1:  # without halving it is never used
            rung = metric_spec(self.rung_metric, "search config: rung_metric")
            cheaper = f"e.g. {spec.kind}{max(1, spec.num_fake // 4)}"
            need(rung.lower_is_better and rung.kind == spec.kind,
                 f"rung_metric {self.rung_metric!r} must be a cheaper budget of the search metric's kind"
                 f" ({spec.kind}...), {cheaper}")
            need(rung.num_fake <= spec.num_fake,
                 f"rung_metric {self.rung_metric!r} ({rung.num_fake:,} samples) costs more than the metric"
                 f" {self.metric!r} ({spec.num_fake:,}) it stands in for at the early rungs; use a cheaper one,"
                 f" {cheaper}, or none (null: the metric itself)")
        kind = metric_kind(spec.kind)
        need(self.base_resolution >= kind.min_resolution,
             f"{kind.min_resolution_why or f'metric {spec.kind}...'}, so it needs images of at least"
             f" {kind.min_resolution}x{kind.min_resolution}: use base_resolution >= {kind.min_resolution} or"
             " another metric (e.g. FID)")
        if isinstance(self.baseline, dict):
            need(all(v > 0 for v in self.baseline.values()), "baseline values must be > 0")
        need(not isinstance(self.baseline, str) or bool(self.baseline.strip()),
             "baseline is empty; use auto, none, a baseline run folder, paper-cifar10, paper-lsun-bedroom or"
             " {res: value}")
        need(self.memory_limit_gb is None or self.memory_limit_gb > 0,
             f"memory_limit_gb must be > 0 (GiB) or null (the device's own memory), got {self.memory_limit_gb}")
        need(bool(str(self.data).strip()), "data is empty; give a dataset spec such as digits, synthetic or"
             " cifar10:/path")

    def _check_slurm(self, need: Any) -> None:
        need(self.slurm_cluster in ("slurm", "local"), f"slurm_cluster must be 'slurm' (sbatch) or 'local' (this"
             f" machine's processes, for tests), got {self.slurm_cluster!r}")
        need(self.slurm_gpus is None or self.slurm_gpus >= 0, f"slurm_gpus must be >= 0 (0: CPU jobs) or null (by"
             f" the device), got {self.slurm_gpus}")
        need(self.slurm_cpus_per_task is None or self.slurm_cpus_per_task >= 1,
             f"slurm_cpus_per_task must be >= 1 or null, got {self.slurm_cpus_per_task}")
        need(self.slurm_poll_s is None or 0.05 <= self.slurm_poll_s <= 3600,
             f"slurm_poll_s must be in [0.05, 3600] seconds or null, got {self.slurm_poll_s}")
        need(self.slurm_time_min >= 1, f"slurm_time_min must be >= 1 (minutes), got {self.slurm_time_min}")
        need(self.slurm_max_timeouts >= 0, f"slurm_max_timeouts must be >= 0, got {self.slurm_max_timeouts}")
        need(self.slurm_array_parallelism >= 1, "slurm_array_parallelism must be >= 1")
        bad = sorted(k for k, v in self.slurm_extra.items()
                     if not k or not isinstance(v, (str, int, float, bool)) or isinstance(v, bool) and not v
                     or is_int(v) and abs(v) >= 2**63 or isinstance(v, float) and not math.isfinite(v))
        need(not bad, f"slurm_extra maps sbatch options to a string, number or true (a flag), e.g."
             f" {{\"account\": \"lab\", \"exclusive\": true}}; bad option(s): {bad}")

    # ------------------------------------------------------------------ derived objects
    def action_space(self) -> ActionSpace:
        return ActionSpace(kernels=tuple(self.kernels), filters=tuple(self.filters), grow_g=self.grow_g,
                           grow_d=self.grow_d, grow_res=self.grow_res, extra=tuple(self.actions))

    def limits(self) -> GrowthLimits:
        return GrowthLimits(self.target_resolution, self.max_g_layers, self.max_d_layers)

    def rung_fractions(self) -> list[float]:
        """The fractions of a candidate's budget it is scored at: [1/9, 1/3, 1] for eta 3 and 1/9; [1] off."""
        if self.halving_eta <= 1:
            return [1.0]
        out, f = [], self.halving_min_fraction
        while f < 1 - 1e-9:
            out.append(f)
            f *= self.halving_eta
        return out + [1.0]

    def rungs(self, budget: int) -> list[tuple[int, str]]:
        """(iterations, metric) of every rung of a candidate with ``budget`` iterations, the last the full one."""
        its = sorted({max(1, min(budget, round(f * budget))) for f in self.rung_fractions()})
        rung = self.rung_metric or self.metric
        return [(i, self.metric if i == budget else rung) for i in its]

    def rules(self) -> Rules:
        """Algorithm 1's rules for these settings (see ``dggan.search.algorithm``)."""
        return Rules.from_settings(self.to_dict())

    def initial_genomes(self, image_channels: int = 3) -> list[Genome]:
        """One base genome per initial width, on ProgGAN's schedule scaled to that width."""
        return [Genome.base(latent_size=self.latent_size, base_resolution=self.base_resolution,
                            channels=proggan_channels(self.target_resolution, fmap_base=16 * c, fmap_max=c),
                            image_channels=image_channels)
                for c in self.initial_channels]

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def train_config(self, iterations: int, seed: int = 0, device: str = "cpu") -> TrainConfig:
        """A candidate's training settings: every shared knob from here, budget and seed per candidate."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)
                  if f.name not in SEARCH_MANAGED}
        return TrainConfig(**shared, iterations=iterations, seed=seed, device=device,
                           log_every=max(1, min(100, iterations)))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if isinstance(self.baseline, dict):
            out["baseline"] = {str(k): v for k, v in self.baseline.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> SearchConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        data = coerce(cls, data, source)
        if isinstance(data.get("baseline"), dict):
            # Resolutions as written in JSON ("8") or ints; values finite numbers (true is not 1.0).
            pairs = dict(data["baseline"])
            if not all((isinstance(k, str) and k.strip().isdigit() or is_int(k))
                       and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for k, v in pairs.items()):
                raise ConfigError(f"{source}: baseline must map resolutions to finite numbers, e.g."
                                  f' {{"8": 40.0, "16": 30.0}}, got {pairs!r}')
            data["baseline"] = {int(k): float(v) for k, v in pairs.items()}
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> SearchConfig:
        path = Path(path)
        try:
            data = read_json_file(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
        except JSONFileError as exc:
            raise ConfigError(f"{path}: not a settings file: {exc}") from None
        return cls.from_dict(data, source=str(path))


# What the CPU presets share: narrow networks, short budgets, successive halving, an EMA that ramps up, grown
# layers that start as identities (beyond the paper, to fit a CPU).
_CPU: dict[str, Any] = {
    "metric": "swd512", "baseline": "auto", "initial_channels": (32,), "latent_size": 64, "target_resolution": 16,
    "top_k": 2, "p": 0.3, "kernels": (3,), "filters": (32, 64), "iterations": 600, "initial_iterations": 600,
    "final_iterations": 2400, "max_steps": 3, "max_g_layers": 2, "max_d_layers": 2, "halving_eta": 3,
    "halving_min_fraction": 1 / 3, "rung_metric": "swd256", "lr": 2e-3, "ema_rampup": 0.05,
    "new_layer_init": "identity", "checkpoint_every": 300, "sample_grid": 36}

PRESETS: dict[str, dict[str, Any]] = {
    # Paper, CIFAR-10: K=20, p=0.4, d0 8 -> 32, latent 128, 100k iterations for the initial and every new
    # candidate, ProgGAN's schedule (pytorch_GAN_zoo: batch 16, lr 1e-3, betas (0, 0.99), drift 1e-3, lambda 10,
    # EMA 0.999, fade-in over 600 x 32 iterations). Ours where the paper is silent: fid10k as the feedback (the
    # paper reports FID; fid50k per candidate is 5x the scoring cost), the auto baseline (measured with the same
    # metric and the same training), 12 steps (~2,100 candidates, the paper's "2k+"), 400k final iterations.
    "cifar10": {"data": "cifar10", "metric": "fid10k", "baseline": "auto", "initial_channels": (512,),
                "latent_size": 128, "target_resolution": 32, "top_k": 20, "p": 0.4, "iterations": 100_000,
                "initial_iterations": 100_000, "fade_iterations": 19_200, "final_iterations": 400_000,
                "max_steps": 12},
    # Paper, LSUN bedroom: d0 8 -> 256, latent 512, ProgGAN's channel schedule; K and p are not given for LSUN,
    # so the CIFAR-10 values are kept; 6 steps give about 1,100 candidates (the paper's "1k+").
    "lsun-bedroom": {"data": "lsun", "metric": "fid10k", "baseline": "auto", "initial_channels": (512,),
                     "latent_size": 512, "target_resolution": 256, "top_k": 20, "p": 0.4, "iterations": 100_000,
                     "initial_iterations": 100_000, "fade_iterations": 19_200, "final_iterations": 400_000,
                     "max_steps": 6},
    # The main job: about five minutes on a 2-core CPU, on real images that ship with scikit-learn (the 8x8
    # handwritten digits at 16 px), scored with SWD. Beyond the paper, to fit a CPU: narrow networks, short
    # budgets, successive halving, an EMA that ramps up, grown layers that start as identities.
    "demo": {**_CPU, "data": "digits"},
    # The same search on the built-in synthetic shapes (no scikit-learn needed).
    "shapes": {**_CPU, "data": "synthetic:n=2048,res=16"},
    # A planted advantage (benchmarks/README.md, "Does the search find a better architecture?"): ProgGAN at
    # width 8 on the shapes is starved of discriminator capacity, which D actions add (a 7x7 D conv of 64
    # filters at 16 px scores about 0.54x of it at equal training, measured over 3 training seeds), while G
    # actions make it worse (1.5-1.8x). The test of the search's power: it must find the one and avoid the other.
    "planted": {**_CPU, "data": "synthetic:n=2048,res=16", "initial_channels": (8,), "kernels": (3, 7)},
}


def preset(name: str, **overrides: Any) -> SearchConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return SearchConfig.from_dict({**PRESETS[name], **overrides}, source=f"preset {name}")


# ---------------------------------------------------------------------- a search's run folder
def create_run(run_dir: str | Path, config: SearchConfig) -> Path:
    """Make a new run folder with its resolved options and an empty ledger; never reuses a folder."""
    run_dir = Path(run_dir)
    check_new_run_dir(run_dir)
    layout = RunLayout(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # The ledger first: it is the truth a resume reads; options.json is the copy for people.
        Ledger.create(layout.ledger, config.to_dict()).close()
        atomic_write_json(layout.options, config.to_dict())
    except OSError as exc:
        raise os_error(exc, f"cannot make the run folder {run_dir}", "choose a writable --run-dir") from None
    return run_dir


def load_run_config(run_dir: str | Path) -> SearchConfig:
    """A run's settings. The ledger's copy is the truth (written once, when the run was made, in the same file as
    every result); options.json, the copy a user reads, must agree with it on everything but the runtime settings:
    an edit there would change how later candidates train while the ledger still states the old settings."""
    layout = RunLayout(run_dir)
    if not layout.ledger.is_file() and not layout.options.is_file():
        raise SearchError(f"{run_dir} is not a dggan search run (no {LEDGER_NAME} or {OPTIONS_NAME} in it)")
    if not layout.ledger.is_file():
        raise SearchError(f"{run_dir} holds {OPTIONS_NAME} but no {LEDGER_NAME}: a search was stopped while it made"
                          " the folder, before any work; delete the folder and start the search again")
    written = SearchConfig.from_file(layout.options) if layout.options.is_file() else None
    with Ledger.open(layout.ledger, readonly=True) as ledger:
        recorded = ledger.settings()
    if not recorded:  # a ledger from before settings were recorded in it: options.json is all there is
        if written is None:
            raise SearchError(f"{run_dir}: neither the ledger nor {OPTIONS_NAME} holds the run's settings")
        return written
    truth = SearchConfig.from_dict(recorded, source=f"{layout.ledger} (the run's settings)")
    if written is not None:
        mine, theirs = truth.to_dict(), written.to_dict()
        changed = [k for k in mine if k not in RUNTIME_SETTINGS and mine[k] != theirs.get(k)]
        if changed:
            diff = "; ".join(f"{k}: {_shown(mine[k])} in the ledger, {_shown(theirs.get(k))} in {OPTIONS_NAME}"
                             for k in changed)
            raise SearchError(f"{layout.options} differs from the settings the run was made with ({diff}); a run's"
                              f" settings cannot change: restore {OPTIONS_NAME} (or delete it: the ledger holds"
                              " them), or start a new search with --run-dir")
    return truth


def _shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)
