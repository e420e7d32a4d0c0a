"""Search settings, their validation, and the presets (paper settings and a CPU demo)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._util.files import JSONFileError, atomic_write_json, read_json_file
from .._util.plugins import import_plugins
from .._util.settings import SEED_RANGE, check_device_name, check_fields, coerce, normalize_fields, setting, settings_of
from ..errors import ConfigError, InvalidActionError, SearchError
from ..execution.executors import BUILTIN_EXECUTORS, executor_names
from ..metrics.registry import metric_kind, metric_kinds, metric_spec
from ..model.actions import PAPER_ACTIONS, PAPER_FILTERS, PAPER_KERNELS, ActionSpace, GrowthLimits, action_kinds
from ..model.genome import MAX_KERNEL, MAX_RESOLUTION, MAX_WIDTH, Genome, is_int, proggan_channels
from ..runs import LEDGER_NAME, OPTIONS_NAME, RunLayout, check_new_run_dir, os_error
from ..training.config import BUDGET, MAX_BATCH, TrainConfig
from .algorithm import SELECTIONS, Rules
from .ledger import Ledger

EXECUTORS = BUILTIN_EXECUTORS  # the built-in executors; executor_names(): every registered one (plugins' too)
# TrainConfig fields the search sets per candidate rather than from a setting of the same name: every other
# TrainConfig field is a search setting, the same field (settings_of), never a copy.
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


_device_or_auto = functools.partial(check_device_name, allow_auto=True)


# The bounds of the search's own settings are their fields' metadata (the training settings' are TrainConfig's):
# far beyond any real search, yet small enough that nothing derived from them (seeds times 100,003, sums of
# budgets, tensor sizes) overflows a C long or the ledger. Widths, kernels and resolutions: a genome's bounds
# (MAX_WIDTH, a C int, what torch's conv layers hold).
@dataclass(frozen=True)
@settings_of(TrainConfig, exclude=SEARCH_MANAGED, at="TRAINING")
class SearchConfig:
    """Every knob of Algorithm 1 and of the candidates' training. See ``PRESETS`` for the paper's values. Each
    field's range and choices are its metadata (``setting``), checked by ``check_fields`` and read by the CLI; the
    training knobs are TrainConfig's own fields (``settings_of``), not copies."""

    data: str = "synthetic"
    metric: str = "swd1k"
    baseline: Any = "auto"  # "auto" | "none" | a paper baseline name | path of a baseline run | {res: value}
    initial_channels: tuple[int, ...] = setting((512,), low=8, high=MAX_WIDTH)
    latent_size: int = setting(128, low=1, high=MAX_WIDTH)
    base_resolution: int = setting(8, low=4, high=MAX_RESOLUTION, power_of_two=True)  # d0
    target_resolution: int = setting(32, low=4, high=MAX_RESOLUTION, power_of_two=True)
    top_k: int = setting(20, low=1, high=10**6)  # K
    p: float = setting(0.4, above=0, high=1)
    kernels: tuple[int, ...] = setting(PAPER_KERNELS, low=1, high=MAX_KERNEL)
    filters: tuple[int, ...] = setting(PAPER_FILTERS, low=1, high=MAX_WIDTH)
    grow_g: bool = True
    grow_d: bool = True
    grow_res: bool = True
    # Registered growth actions beyond the paper's three to add to the action space (@register_action,
    # docs/extending.md), taken after them in this order.
    actions: tuple[str, ...] = ()
    max_g_layers: int | None = setting(None, low=0, high=10**4)
    max_d_layers: int | None = setting(None, low=0, high=10**4)
    max_steps: int | None = setting(12, low=1, high=10**6)
    # How a step's parents are kept: "beam" (the paper's top-K by score) or "random" (K finished children drawn
    # at random, and halving's rungs drawn too: random growth, the baseline that measures what ranking buys).
    selection: str = setting("beam", choices=SELECTIONS)
    # Successive halving inside every step (beyond the paper; 1 = off): children are scored at rungs of
    # their budget (halving_min_fraction, x halving_eta, ..., 1) and only the best 1/eta go on.
    halving_eta: int = setting(1, low=1, high=1000, note="(1: no successive halving)")
    halving_min_fraction: float = setting(1 / 9, above=0, high=1)
    rung_metric: str | None = None  # the cheaper metric intermediate rungs are scored with (default: metric)
    iterations: int = setting(100_000, low=1, high=BUDGET)  # every candidate's budget
    initial_iterations: int | None = setting(None, low=1, high=BUDGET)  # default: iterations
    final_iterations: int = setting(100_000, low=0, high=BUDGET)
    # The final pick and training (beyond the paper): the best `final_pick_candidates` at the target are re-scored
    # over `final_pick_seeds` selection seeds and picked by their mean (1 candidate: the best by its own score);
    # the final training is scored at `final_snapshots` points (its start included) and its best snapshot kept.
    final_pick_candidates: int = setting(3, low=1, high=1000)
    final_pick_seeds: int = setting(3, low=1, high=100)
    final_snapshots: int = setting(6, low=1, high=1000)
    # Training: every TrainConfig field but SEARCH_MANAGED goes here, in TrainConfig's order, with its type, default,
    # range and choices as dggan.training.config declares them (settings_of): a field added there is a setting here.
    TRAINING: ClassVar[None]
    inherit_policy: str = setting("adapt", choices=("adapt", "fresh"))
    # "identity": grown convs start as identities (beyond the paper)
    new_layer_init: str = setting("random", choices=("random", "identity"))
    seed: int = setting(0, low=SEED_RANGE[0], high=SEED_RANGE[1])  # the search's: candidates' seeds derive from it
    device: str = setting("auto", check=_device_or_auto)  # auto | cpu | cuda | cuda:N
    checkpoint_every: int = setting(0, low=0, high=BUDGET, note="(0: a quarter of the budget)")  # in-candidate
    sample_grid: int = setting(36, low=0, high=10**4)  # images in each candidate's samples.png (0: none)
    tables: bool = True  # after the final training, the paper's Tables 1-3 into RUN/best (dggan tables)
    eval_batch_size: int = setting(64, low=1, high=MAX_BATCH)
    inception_weights: str | None = None
    cache_dir: str | None = None  # reference statistics cache (default: ~/.cache/dggan or $DGGAN_CACHE)
    # A registered executor's name (dggan.execution.executors.register_executor), plugins' too.
    executor: str = setting("inprocess", choices=executor_names)
    workers: int = setting(1, low=1, high=4096)
    gpus_per_candidate: float = setting(1.0, above=0, high=8)
    # Candidates sharing one GPU (see dggan.execution.executors): processes per GPU (local; Ray: 1/N GPU per task)
    # or, with gpu_sharing "streams", candidates trained together per worker. null: 4 where they overlap (MPS
    # daemon running, or streams), else 1.
    candidates_per_gpu: int | None = setting(None, low=1, high=64, null="auto")
    gpu_sharing: str = setting("processes", choices=("processes", "streams"))  # streams: local executor only
    # torch CPU threads per candidate (default: the executor's choice)
    threads: int | None = setting(None, low=1, high=4096)
    tensorboard: bool = True  # losses, metrics and samples under RUN/tb when tensorboard is installed ([tb] extra)
    # The slurm executor (submitit, the [slurm] extra): every candidate a SLURM job, a batch of them one job array.
    # slurm_cluster "local": the same jobs as processes of this machine (try a SLURM setup).
    slurm_cluster: str = setting("slurm", choices=("slurm", "local"),
                                 note="(slurm: sbatch; local: this machine's processes, for tests)")
    slurm_partition: str | None = None
    # GPUs per candidate job (0: CPU jobs); null: one when the device is CUDA, or `auto` on a partition with GPUs.
    slurm_gpus: int | None = setting(None, low=0, high=1024, note="(0: CPU jobs)", null="by the device")
    # CPUs per job, also its torch threads unless `threads` is set; null: 4, or all a node has if fewer.
    slurm_cpus_per_task: int | None = setting(None, low=1, high=4096)
    # A job's time limit; a longer candidate is requeued and resumes.
    slurm_time_min: int = setting(24 * 60, low=1, high=10**7, note="(minutes)")
    # Requeues after hitting the time limit (preemptions do not count).
    slurm_max_timeouts: int = setting(20, low=0, high=10**6)
    slurm_array_parallelism: int = setting(256, low=1, high=10**6)  # jobs of one array running at once
    # Seconds between the driver's looks at its jobs (null: 15; 0.5 locally).
    slurm_poll_s: float | None = setting(None, low=0.05, high=3600, note="seconds")
    slurm_extra: dict[str, Any] = field(default_factory=dict)  # more sbatch options: {"account": "lab", "mem": "64G"}
    slurm_setup: tuple[str, ...] = ()  # shell lines run before each job ("module load cuda", "source .venv/...")
    slurm_folder: str | None = None  # submitit's job files and logs (default RUN/slurm; a shared filesystem)

    def __post_init__(self) -> None:
        normalize_fields(self, "search config")
        # First: the modules it names register the losses, metrics and executors the other settings may name.
        import_plugins(self.plugins, "search config: plugins")
        check_fields(self, "search config")  # every field's range and choices (its metadata)

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(f"search config: {message}")

        # What relates settings to each other or to the registries; each setting's own range is checked above.
        need(self.target_resolution >= self.base_resolution,
             f"target_resolution {self.target_resolution} is below base_resolution {self.base_resolution}")
        need(len(self.initial_channels) >= 1, "initial_channels must list at least one width, got []")
        need(self.gpu_sharing == "processes" or self.executor != "ray",
             "gpu_sharing=streams is for the local executor; Ray shares GPUs between processes (fractional GPUs)")
        self._check_slurm(need)
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
        need(bool(str(self.data).strip()), "data is empty; give a dataset spec such as digits, synthetic or"
             " cifar10:/path")

    def _check_slurm(self, need: Any) -> None:
        """slurm_extra's options (the other slurm settings' ranges are their metadata)."""
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
        from ..training.devices import resolve_device  # (the one decision: auto is a GPU when there is one)

        return resolve_device(self.device)

    def train_config(self, iterations: int, seed: int = 0, device: str = "cpu") -> TrainConfig:
        """A candidate's training settings: every shared knob from here, budget and seed per candidate."""
        train = self.settings_source  # TrainConfig (settings_of): the class whose fields these are
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(train) if f.name not in SEARCH_MANAGED}
        return train(**shared, iterations=iterations, seed=seed, device=device, log_every=max(1, min(100, iterations)))

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
