"""One script for a GPU machine: every CUDA path the CPU tests cannot reach, and the timing table.

    python benchmarks/gpu_check.py --quick --out gcq             # first on a short loan: every correctness check,
                                                                 # one timing row; budget 5 minutes (one H100)
    python benchmarks/gpu_check.py --out gpu_check_out          # everything: checks, table, sharing, searches
    python benchmarks/gpu_check.py --checks-only --out gc       # pass/fail checks only (correctness, search)
    python benchmarks/gpu_check.py --timing-only --out gc       # the timing table and sharing runs only
    python benchmarks/gpu_check.py --check search_local --out gc   # one check (repeatable)
    python benchmarks/gpu_check.py --dry-run --quick --out /tmp/gc  # no GPU: this script's logic on the CPU, tiny

None of it has run on a GPU yet in this form (issue 14 ran an early version, eager only): the times here are
estimates from the work each part does, not measurements.
--quick is sized for 5 minutes on one H100 (its checks and row stop starting once --budget-s, 270 s by default
with --quick, has passed, and the report lists what was skipped; the capture-failure check always runs, last).
The full run was estimated at 8.5-11 minutes with TF32 on, longer now that "fp32" is float32: more than a
10-minute command allows, so on a short loan run --quick, then the rest in parts (--timing-only; --checks-only).

What the device needs (it may have no network): Python 3.10+, a CUDA build of torch 2.5 or later, and this
project's dependencies (numpy, scipy, pillow, safetensors, torch-fidelity, typer, rich, tqdm, matplotlib,
threadpoolctl, scikit-learn), all already installed, e.g. in a virtual environment made there beforehand; the
project itself importable (``pip install -e .``, or ``PYTHONPATH=src``). Optional: tensorboard; ray (the
search_ray check, else skipped); nvidia-cuda-mps-control (the MPS sharing rows, else skipped). No dataset or model
weights are needed: the data is synthetic and the metric is SWD. Output goes to --out only.

It writes ``OUTDIR/gpu_check.json`` (every number) and ``OUTDIR/gpu_check.md`` (the tables, the targets with
pass/fail, the presets' cost recomputed from the measured throughput) and prints a summary.

Correctness (each a pass/fail check; "exact": bit for bit against an eager trainer on the same static
inputs, tensor alpha and Adam options, the graph's only difference, under deterministic cuDNN):
  graphs_match_eager     50 graphed iterations (20 with --quick), fp32, exact: a plain candidate, one with EMA
                         ramp-up (a device-tensor EMA weight), and a fading child whose fade-in ends mid-way (the
                         alpha schedule through a capture; a second capture); each new graph's self-check passed;
                         the plain eager loop (float alpha) within 1e-4 relative where it does not fade
  train_together_graphs  three graphed candidates on their own streams (train_together), exact against each
                         trained alone eagerly on static inputs
  bf16_graphs_match      bf16 autocast, channels-last (asserted NHWC), graphed against eager, exact
  resume_graphs          exact resume with graphs on: a fading child saved mid-fade, continued across the end
                         of the fade-in, against the same run resumed from its checkpoint
  divergence_graphs      a diverging candidate (lr 1e6) is still caught from the device-side statistics
  no_host_sync           steady-state iterations, eager and graphed, under torch.cuda.set_sync_debug_mode("error")
  bf16_graphs            bf16 autocast with graphs (channels-last): a fading child trains, stays finite, resumes
  fade_in_identity       a grow_res child at alpha 0 computes its parent's function on CUDA
  defaults_free_memory   the search's own defaults (cuDNN benchmark, graphs, self-check on; TF32 off): three
                         candidates one after another in this process through the worker (train, checkpoint,
                         score), Python's cyclic collector off: each ran graphed, each trainer is gone when its
                         candidate returns, and the device's allocated memory is back where it was (after the
                         first: within 8 MiB; from the start: within 256 MiB, the cuBLAS workspaces a process
                         keeps); --dry-run: the trainers, through the emulated backend
  capture_failure_falls_back  (always last: a failed capture turns graphs off for the rest of the process) an
                         op that cannot be captured (a host sync) in the iteration: the capture fails, the trainer
                         falls back to eager and records why, the stream is restored, its results equal the eager
                         trainer's, and a trainer built afterwards in this process never captures
Timing (``torch.profiler`` for the GPU-busy time: the union of kernel and copy intervals on the device; every
row says whether TF32 was on, and it is off: "fp32" is float32):
  table                  wall ms/step, GPU-busy ms/step, kernels/step, images/s, peak memory for 128 and 512
                         channels x 8/16/32 px x fp32/bf16 x eager/graphed (batch 16, latent 128), channels-last
                         variants at 512 ch / 32 px, and the LSUN genome (latent 512) at 64/128/256 px; --quick:
                         one row, 128 ch / 8 px fp32 graphed
  bf16 diagnosis         the kernels that take the GPU's time, fp32 against bf16, at 512 ch / 32 px
  several                total images/s of several candidates on one GPU at 128 ch / 16 px: 1 eager, 1 graphed,
                         N processes, N processes under CUDA MPS (when nvidia-cuda-mps-control exists: a private
                         daemon, stopped afterwards), N candidates on their own streams in one process (not with
                         --quick)
Search (pass/fail; --dry-run runs them on the CPU, tiny; not with --quick):
  search_local           a tiny search on the local executor: one candidate per GPU, 2 processes per GPU,
                         2 streams per worker; all finish with the same ledger shape, and every candidate's
                         ledger row says it ran graphed (CUDA) or eager (CPU), none fell back
  search_ray             the Ray executor with 2 candidates per GPU (0.5 GPU each), when Ray is installed

The several-candidates runs go first, before this process creates a CUDA context of its own (an MPS server
may refuse to start beside one). Correctness checks run deterministic cuDNN and cuBLAS (``cudnn_benchmark``
off, ``CUBLAS_WORKSPACE_CONFIG``), except defaults_free_memory; the timing runs the defaults. Timing rows and
sharing runs (and, with --quick, checks) stop starting after ``--budget-s`` seconds; the report lists what was
skipped.

--dry-run runs the graphed trainers through ``EmulatedBackend`` (the real ``GraphedStep`` logic: warm-up,
capture, self-check, fallback, with a replay that runs the iteration again), so every check's logic runs.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, before CUDA starts

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import dggan.training.trainer as trainer_module  # noqa: E402
from dggan.data import SyntheticShapes  # noqa: E402
from dggan.model.actions import Action, apply_action  # noqa: E402
from dggan.model.genome import Genome, constant_channels, proggan_channels  # noqa: E402
from dggan.model.inherit import inherit_weights  # noqa: E402
from dggan.model.networks import Discriminator, Generator  # noqa: E402
from dggan.training.checkpoint import load_checkpoint  # noqa: E402
from dggan.training.cuda_graphs import (  # noqa: E402
    EmulatedBackend,
    channels_last_enabled,
    graphs_off_in_process,
    on_stream,
    release_cached_memory,
)
from dggan.training.trainer import TrainConfig, Trainer, train_together  # noqa: E402

HERE = Path(__file__).resolve()
BATCH = 16
TOLERANCE = 1e-4  # relative, graphed against eager, fp32
LAST = ("capture_failure_falls_back",)  # run after everything: a failed capture turns graphs off for the process
QUICK_BUDGET_S = 270.0  # --quick: nothing new starts after this (5 minutes on one H100, with start-up to spare)


# ====================================================================================== context
@dataclasses.dataclass
class Ctx:
    device: str
    dry: bool
    quick: bool
    deadline: float  # perf_counter time after which timing rows and sharing runs (--quick: checks) are skipped
    results: dict[str, Any]

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def time_left(self) -> float:
        return self.deadline - time.perf_counter()


class PlainRunner:
    """The iteration a graph records, run eagerly on the same static inputs: the exact reference for a graphed
    trainer (the same kernels, tensor alpha and Adam options; only the graph differs)."""

    def __init__(self) -> None:
        self.captures = 0
        self._key: Hashable = object()

    def run(self, key: Hashable, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key != self._key:
            self._key, self.captures = key, self.captures + 1
        return body()


def sync(ctx: Ctx) -> None:
    if ctx.cuda:
        torch.cuda.synchronize()


def cifar_like(resolution: int, channels: int, latent: int = 128) -> Genome:
    """ProgGAN's CIFAR-10 route at ``resolution``: constant width, base 8px, grow_res up."""
    genome = Genome.base(latent_size=latent, channels=constant_channels(max(32, resolution), channels))
    while genome.resolution < resolution:
        genome = apply_action(genome, Action("grow_res"))
    return genome


def lsun_like(resolution: int) -> Genome:
    """The lsun-bedroom preset's route (latent 512, ProgGAN's schedule to 256 px) at ``resolution``."""
    genome = Genome.base(latent_size=512, channels=proggan_channels(256))
    while genome.resolution < resolution:
        genome = apply_action(genome, Action("grow_res"))
    return genome


_DATA: dict[int, SyntheticShapes] = {}


def data_at(resolution: int) -> SyntheticShapes:
    res = max(32, resolution)
    if res not in _DATA:
        _DATA[res] = SyntheticShapes(2048 if res <= 32 else 256, res, seed=0)
    return _DATA[res]


def small_genome(ctx: Ctx) -> Genome:
    return Genome.base(latent_size=16 if ctx.dry else 128, channels=constant_channels(32, 16 if ctx.dry else 128))


def make_trainer(ctx: Ctx, genome: Genome, cfg: TrainConfig, graphs: bool, *, parent: Any = None,
                 static_eager: bool = False) -> Trainer:
    """A trainer on ``ctx``'s device; ``graphs``: graphed (emulated by ``EmulatedBackend`` on the CPU);
    ``static_eager``: the graphed trainer's exact eager reference (``PlainRunner`` on its static inputs)."""
    cfg = dataclasses.replace(cfg, device=ctx.device, cuda_graphs=graphs or static_eager)
    data = data_at(genome.resolution)
    trainer = Trainer(genome, cfg, data) if parent is None else Trainer.child_of(parent, genome, cfg, data)
    if static_eager:
        trainer.use_static_inputs(PlainRunner())
    elif graphs:
        emulate(ctx, trainer)
    if ctx.cuda and channels_last_enabled("cuda", cfg.channels_last, cfg.bf16):
        assert nhwc(trainer), "channels-last is on but the conv weights are not NHWC"
    return trainer


def emulate(ctx: Ctx, trainer: Trainer) -> Trainer:
    """--dry-run: the trainer's iterations through a real GraphedStep on the emulated backend."""
    if not ctx.cuda:
        trainer.use_static_inputs(trainer.graphed_step(EmulatedBackend(trainer.graph_state)))
    return trainer


def captures(trainer: Trainer) -> int:
    return int(getattr(trainer._graph, "captures", 0))


def nhwc(trainer: Trainer) -> bool:
    """Whether the trainer keeps its conv weights channels-last. A conv with a kernel above 1x1: a 1x1 weight
    (fromRGB's) is contiguous in both layouts and says nothing."""
    weight = next(p for p in trainer.D.parameters() if p.dim() == 4 and p.shape[-1] > 1 and p.shape[1] > 1)
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def exact_diff(a: Trainer, b: Trainer, sa: list[torch.Tensor], sb: list[torch.Tensor]) -> float:
    """The largest absolute difference between two runs' losses and every tensor of their state (0: bit for bit)."""
    worst = max((float((x.double() - y.double()).abs().max()) for x, y in zip(sa, sb, strict=True)), default=0.0)
    for x, y in zip(a.tensors().values(), b.tensors().values(), strict=True):
        if x.is_floating_point():
            worst = max(worst, float((x.double() - y.double()).abs().max()))
        elif not torch.equal(x, y):
            worst = math.inf
    return worst


def graph_ok(trainer: Trainer) -> dict[str, Any]:
    """The trainer's graph record, asserted: graphed, every capture's self-check passed."""
    record = trainer.graph_record()
    assert record["mode"] == "graphed", f"graphs {record['mode']}: {record['why']}"
    assert record["self_checks_passed"] == record["captures"], record
    return record


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Same algorithms and no atomics in cuDNN: two runs of the same kernels give the same bits."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def rel_diff(a: torch.Tensor, b: torch.Tensor, floor: float = 1e-3) -> float:
    """max |a - b| / max(|a|, |b|, floor), elementwise (floor: values near 0 compare absolutely)."""
    a, b = a.double().cpu(), b.double().cpu()
    return float(((a - b).abs() / torch.maximum(torch.maximum(a.abs(), b.abs()), torch.tensor(floor))).max())


def trained_parent(ctx: Ctx, genome: Genome, tmp: Path, iterations: int = 20) -> Any:
    cfg = TrainConfig(iterations=iterations, batch_size=BATCH, seed=3, device=ctx.device, cudnn_benchmark=False)
    parent = Trainer(genome, dataclasses.replace(cfg, cuda_graphs=False), data_at(genome.resolution))
    parent.train(progress=False)
    parent.save(tmp / "parent.safetensors")
    return load_checkpoint(tmp / "parent.safetensors")


# ====================================================================================== checks
CHECKS: list[tuple[str, str, Callable[[Ctx], Any]]] = []


def check(name: str, group: str) -> Callable[[Callable[[Ctx], Any]], Callable[[Ctx], Any]]:
    def register(fn: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
        CHECKS.append((name, group, fn))
        return fn
    return register


def run_check(ctx: Ctx, name: str, fn: Callable[[Ctx], Any], budgeted: bool = False) -> None:
    """Run one check and record it; ``budgeted``: skipped (and listed) once the time budget has passed."""
    if budgeted and ctx.time_left() < 0:
        ctx.results.setdefault("checks_skipped", []).append(name)
        print(f"{name}: skipped (time budget)", flush=True)
        return
    start = time.perf_counter()
    entry: dict[str, Any]
    try:
        entry = {"ok": True, "result": fn(ctx)}
    except Exception:  # noqa: BLE001 (report every check, whatever fails)
        entry = {"ok": False, "error": traceback.format_exc(limit=6)}
    entry["seconds"] = round(time.perf_counter() - start, 2)
    ctx.results["checks"][name] = entry
    print(f"{name}: {'ok' if entry['ok'] else 'FAILED'} ({entry['seconds']} s)", flush=True)
    if not entry["ok"]:
        print(entry["error"], flush=True)


@check("graphs_match_eager", "correctness")
def graphs_match_eager(ctx: Ctx) -> dict[str, Any]:
    n = (8 if ctx.quick else 12) if ctx.dry else (20 if ctx.quick else 50)
    base = small_genome(ctx)
    cfg = TrainConfig(iterations=n, batch_size=BATCH, seed=1, cudnn_benchmark=False)
    out: dict[str, Any] = {}
    with deterministic(), tempfile.TemporaryDirectory() as tmp:
        parent = trained_parent(ctx, base, Path(tmp))
        child = apply_action(base, Action("grow_res"))
        fade = max(4, n * 2 // 5)  # the fade-in ends at 40% of the run: one capture before, one after
        variants = {"plain": (base, cfg, None), "ema_rampup": (base, dataclasses.replace(cfg, ema_rampup=0.05), None),
                    "fade_in": (child, dataclasses.replace(cfg, fade_iterations=fade), parent),
                    # r1's lazy step runs eagerly between replays of the one graph (its key never changes)
                    "r1": (base, dataclasses.replace(cfg, loss="r1", loss_options={"every": 4}), None)}
        for name, (genome, vcfg, par) in variants.items():
            eager = make_trainer(ctx, genome, vcfg, False, parent=par)
            static = make_trainer(ctx, genome, vcfg, False, parent=par, static_eager=True)
            graphed = make_trainer(ctx, genome, vcfg, True, parent=par)
            se, ss, sg, alphas = [], [], [], []
            for _ in range(n):
                se.append(eager.step())
                ss.append(static.step())
                sg.append(graphed.step())
                if graphed.fading and graphed._static is not None:
                    alphas.append((eager.G.alpha, float(graphed._static.alpha)))
            exact = exact_diff(static, graphed, ss, sg)
            worst = max(rel_diff(a, b) for a, b in zip(se, sg, strict=True))
            alpha_err = max((abs(a - b) for a, b in alphas), default=0.0)
            out[name] = {"steps": n, "max_abs_diff_vs_static_eager": exact, "max_rel_loss_diff_vs_eager": worst,
                         "captures": captures(graphed), "graphs": graph_ok(graphed),
                         "alpha_steps_checked": len(alphas), "max_alpha_diff": alpha_err,
                         "finite": bool(torch.stack(sg).isfinite().all())}
            assert exact == 0.0, f"{name}: graphed differs from eager on the same static inputs by {exact:.3g}"
            if name != "fade_in":  # float alpha (the plain loop) and tensor alpha round differently
                assert worst <= TOLERANCE, f"{name}: graphed losses differ from eager by {worst:.3g} (relative)"
            assert alpha_err <= 1e-7, f"{name}: alpha differs from the eager schedule by {alpha_err}"
            assert out[name]["finite"], f"{name}: non-finite losses"
        assert out["plain"]["captures"] == 1, "one capture for a candidate that does not fade in"
        assert out["r1"]["captures"] == 1, "r1's lazy regulariser must not recapture the graph"
        assert out["fade_in"]["captures"] == 2, "the end of the fade-in must recapture exactly once"
        assert out["fade_in"]["alpha_steps_checked"] == fade
    return out


@check("train_together_graphs", "correctness")
def train_together_graphs(ctx: Ctx) -> dict[str, Any]:
    n = 8 if ctx.dry else 30
    cfg = TrainConfig(iterations=n, batch_size=BATCH, seed=1, cudnn_benchmark=False, log_every=n)
    configs = [cfg, dataclasses.replace(cfg, seed=2, ema_rampup=0.05), dataclasses.replace(cfg, seed=3, lr=5e-4)]
    genome = small_genome(ctx)
    with deterministic():
        alone = [make_trainer(ctx, genome, c, False, static_eager=True) for c in configs]
        for t in alone:
            t.train(progress=False)
        together = [make_trainer(ctx, genome, c, True) for c in configs]
        results = train_together([(t, {"progress": False}) for t in together])
        sync(ctx)
    for r in results:
        assert not isinstance(r, Exception), r
    diffs = [exact_diff(a, b, [], []) for a, b in zip(alone, together, strict=True)]
    records = [graph_ok(t) for t in together]
    assert max(diffs) == 0.0, f"graphed candidates trained together differ from eager alone by {diffs}"
    return {"candidates": len(together), "steps": n, "max_abs_diff": max(diffs), "graphs": records}


@check("bf16_graphs_match", "correctness")
def bf16_graphs_match(ctx: Ctx) -> dict[str, Any]:
    n = 8 if ctx.dry else 30
    cfg = TrainConfig(iterations=n, batch_size=BATCH, seed=6, bf16=True, cudnn_benchmark=False)
    genome = small_genome(ctx)
    with deterministic():
        static = make_trainer(ctx, genome, cfg, False, static_eager=True)
        graphed = make_trainer(ctx, genome, cfg, True)
        ss = [static.step() for _ in range(n)]
        sg = [graphed.step() for _ in range(n)]
    diff = exact_diff(static, graphed, ss, sg)
    layout = "NHWC" if nhwc(graphed) else "NCHW"
    assert diff == 0.0, f"bf16 graphed differs from bf16 eager on the same static inputs by {diff:.3g}"
    assert layout == ("NHWC" if ctx.cuda else "NCHW"), layout  # channels-last by default with bf16, CUDA only
    return {"steps": n, "max_abs_diff": diff, "layout": layout, "graphs": graph_ok(graphed)}


@check("capture_failure_falls_back", "correctness")
def capture_failure_falls_back(ctx: Ctx) -> dict[str, Any]:
    """An iteration with a host sync in it (``.item()``: cannot be captured) falls back to eager, says why, puts
    the stream back, and trains exactly as the eager trainer does; graphs are then off for the process (a trainer
    built afterwards never captures). Run last (``LAST``): nothing after it in this process could capture."""
    import warnings

    n = 8 if ctx.dry else 20
    cfg = TrainConfig(iterations=n, batch_size=BATCH, seed=8, cudnn_benchmark=False)
    genome = small_genome(ctx)

    def uncapturable(trainer: Trainer) -> None:
        update = trainer._update
        backend = getattr(trainer._graph, "backend", None)

        def with_a_sync(*args: Any, **kwargs: Any) -> torch.Tensor:
            out = update(*args, **kwargs)
            if isinstance(backend, EmulatedBackend) and backend.capturing:  # what CUDA raises, emulated
                raise RuntimeError("CUDA error: operation not permitted when stream is capturing (emulated)")
            out[0].item()  # a host sync: fine eagerly, an error inside a capture
            return out

        trainer._update = with_a_sync  # type: ignore[method-assign]

    with deterministic():
        static = make_trainer(ctx, genome, cfg, False, static_eager=True)
        graphed = make_trainer(ctx, genome, cfg, True)
        uncapturable(static)
        uncapturable(graphed)
        ss = [static.step() for _ in range(n)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sg = [graphed.step() for _ in range(n)]
    record = graphed.graph_record()
    assert record["mode"] == "fell back" and record["why"].startswith("capture failed:"), record
    assert any("training continues eagerly" in str(w.message) for w in caught), "no warning said so"
    if ctx.cuda:
        assert torch.cuda.current_stream() == torch.cuda.default_stream(), "the capture stream stayed current"
    else:
        backend = graphed._graph.backend  # type: ignore[union-attr]
        assert backend.current is backend.default, "the capture stream stayed current"
    diff = exact_diff(static, graphed, ss, sg)
    assert diff == 0.0, f"the fallback's results differ from eager by {diff:.3g}"
    off = graphs_off_in_process()
    assert off is not None and off.startswith("capture failed:"), f"graphs still on in this process: {off}"
    assert any("for the rest of process" in str(w.message) for w in caught), "no warning said graphs went off"
    later = make_trainer(ctx, genome, cfg, True)
    later.train(until=6, progress=False)
    after = later.graph_record()
    assert captures(later) == 0 and after["mode"] in ("eager", "fell back"), after
    assert after["why"].startswith("CUDA graphs are off in this process"), after
    return {"steps": n, "graphs": record, "max_abs_diff": diff, "off_in_process": off, "trainer_after": after}


@contextlib.contextmanager
def tracked_trainers() -> Iterator[list[weakref.ref[Trainer]]]:
    """A weak reference to every ``Trainer`` built inside (``Trainer.resume`` and ``child_of`` included)."""
    refs: list[weakref.ref[Trainer]] = []
    init = Trainer.__init__

    def tracking(self: Trainer, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        refs.append(weakref.ref(self))

    Trainer.__init__ = tracking  # type: ignore[method-assign]
    try:
        yield refs
    finally:
        Trainer.__init__ = init  # type: ignore[method-assign]


@contextlib.contextmanager
def graphs_everywhere(ctx: Ctx) -> Iterator[None]:
    """--dry-run: trainers that ask for graphs get them, through the emulated backend, wherever they are built (the
    worker's too); on CUDA nothing changes."""
    if ctx.cuda:
        yield
        return
    enabled, step = trainer_module.graphs_enabled, Trainer.graphed_step

    def emulated(self: Trainer, backend: Any = None) -> Any:
        return step(self, backend if backend is not None else EmulatedBackend(self.graph_state))

    trainer_module.graphs_enabled = lambda device_type, flag: flag and graphs_off_in_process() is None  # type: ignore[assignment]
    Trainer.graphed_step = emulated  # type: ignore[method-assign]
    try:
        yield
    finally:
        trainer_module.graphs_enabled = enabled
        Trainer.graphed_step = step  # type: ignore[method-assign]


def allocated(ctx: Ctx) -> int | None:
    if not ctx.cuda:
        return None
    torch.cuda.synchronize()
    return int(torch.cuda.memory_allocated())


@check("defaults_free_memory", "correctness")
def defaults_free_memory(ctx: Ctx) -> dict[str, Any]:
    """Several candidates one after another in this process, through the worker, at the search's own defaults:
    each graphed, each trainer freed by reference counting alone, the device's memory back where it started."""
    from dggan.execution.worker import CandidateTask, run_candidate
    from dggan.search.config import SearchConfig

    n, iterations = 3, (8 if ctx.dry else 40)
    genome = small_genome(ctx)
    data = f"synthetic:n=256,res={genome.resolution}"  # stored at the trained resolution: batches go up as uint8
    search = SearchConfig.from_dict({"batch_size": BATCH, "latent_size": genome.latent_size})
    assert search.cudnn_benchmark and search.cuda_graphs and search.graph_self_check and not search.allow_tf32
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, tracked_trainers() as trainers, graphs_everywhere(ctx):
        gc.collect()
        gc.disable()  # reference counting alone must free every candidate
        try:
            start, start_reserved = allocated(ctx), torch.cuda.memory_reserved() if ctx.cuda else None
            for i in range(n):
                train = search.train_config(iterations, seed=i, device=ctx.device)
                task = CandidateTask(candidate_id=i + 1, genome_json=genome.to_json(), parent_checkpoint=None,
                                     out_dir=f"{tmp}/c{i + 1:05d}", train=train, data=data, metric="swd64",
                                     sample_grid=0, eval_options={"batch_size": 32})
                result = run_candidate(task)
                assert result.status == "done", f"candidate {i + 1}: {result.status}: {result.error}"
                living = sum(ref() is not None for ref in trainers)
                rows.append({"candidate": i + 1, "graphs": result.extra["graphs"]["mode"],
                             "trainers_built": len(trainers), "trainers_alive": living,
                             "allocated_mib": None if start is None else round(allocated(ctx) / 2**20, 1),
                             "reserved_mib": round(torch.cuda.memory_reserved() / 2**20, 1) if ctx.cuda else None})
                assert result.extra["graphs"]["mode"] == "graphed", result.extra["graphs"]
                assert living == 0, f"candidate {i + 1}: {living} trainer(s) still alive after it returned"
        finally:
            gc.enable()
    out: dict[str, Any] = {"candidates": rows, "iterations": iterations}
    if ctx.cuda:
        assert start is not None and start_reserved is not None
        first, last = rows[0]["allocated_mib"], rows[-1]["allocated_mib"]
        out.update(start_allocated_mib=round(start / 2**20, 1), start_reserved_mib=round(start_reserved / 2**20, 1))
        assert last - first <= 8, f"allocated memory grew {last - first:.1f} MiB from the first candidate to the last"
        assert last - start / 2**20 <= 256, f"allocated memory is {last - start / 2**20:.1f} MiB above where it started"
        grown = rows[-1]["reserved_mib"] - rows[0]["reserved_mib"]
        assert grown <= 64, f"reserved memory grew by {grown:.1f} MiB across candidates: not given back"
    return out


@check("resume_graphs", "correctness")
def resume_graphs(ctx: Ctx) -> dict[str, Any]:
    n = 4 if ctx.dry else 20
    base = small_genome(ctx)
    with deterministic(), tempfile.TemporaryDirectory() as tmp:
        parent = trained_parent(ctx, base, Path(tmp))
        cfg = TrainConfig(iterations=4 * n, batch_size=BATCH, seed=2, fade_iterations=2 * n, cudnn_benchmark=False)
        trainer = make_trainer(ctx, apply_action(base, Action("grow_res")), cfg, True, parent=parent)
        trainer.train(until=n, progress=False)
        trainer.save(Path(tmp) / "mid.safetensors")
        expected = [trainer.step() for _ in range(2 * n)]  # crosses the end of the fade-in at 2n
        resumed = emulate(ctx, Trainer.resume(load_checkpoint(Path(tmp) / "mid.safetensors"),
                                              data_at(trainer.genome.resolution)))
        assert resumed.graphed == ctx.cuda and resumed.iteration == n
        got = [resumed.step() for _ in range(2 * n)]
    diff = max(float((a - b).abs().max()) for a, b in zip(expected, got, strict=True))
    assert captures(trainer) == captures(resumed) == 2, (captures(trainer), captures(resumed))
    assert diff == 0.0, f"resumed run differs by {diff} (absolute) from the uninterrupted one"
    return {"steps_compared": 2 * n, "max_abs_diff": diff, "captures_original": captures(trainer),
            "captures_resumed": captures(resumed)}


@check("divergence_graphs", "correctness")
def divergence_graphs(ctx: Ctx) -> dict[str, Any]:
    cfg = TrainConfig(iterations=60, batch_size=BATCH, lr=1e6, check_every=5, seed=4)
    trainer = make_trainer(ctx, small_genome(ctx), cfg, True)
    result = trainer.train(progress=False)
    assert result.status == "diverged" and result.iterations < 60, result
    return {"status": result.status, "at_iteration": result.iterations, "reason": result.reason}


@check("no_host_sync", "correctness")
def no_host_sync(ctx: Ctx) -> dict[str, Any]:
    out = {}
    for graphs in (False, True):
        trainer = make_trainer(ctx, small_genome(ctx), TrainConfig(iterations=1000, batch_size=BATCH), graphs)
        trainer.train(until=8, progress=False)  # warm-up and capture (they sync, once)
        sync(ctx)
        if ctx.cuda:
            torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(20):
                trainer._step()
        finally:
            if ctx.cuda:
                torch.cuda.set_sync_debug_mode(0)
        sync(ctx)
        assert captures(trainer) == (1 if graphs else 0)
        out["graphed" if graphs else "eager"] = "20 iterations without a host sync"
    return out


@check("bf16_graphs", "correctness")
def bf16_graphs(ctx: Ctx) -> dict[str, Any]:
    base = small_genome(ctx)
    n = 4 if ctx.dry else 30
    with tempfile.TemporaryDirectory() as tmp:
        parent = trained_parent(ctx, base, Path(tmp))
        cfg = TrainConfig(iterations=2 * n, batch_size=BATCH, seed=5, bf16=True, fade_iterations=n)
        trainer = make_trainer(ctx, apply_action(base, Action("grow_res")), cfg, True, parent=parent)
        layout = "NHWC" if nhwc(trainer) else "NCHW"
        result = trainer.train(until=n + n // 2, progress=False)  # across the end of the fade-in
        assert result.status == "done" and all(math.isfinite(v) for v in result.stats.values()), result
        trainer.save(Path(tmp) / "bf16.safetensors")
        expected = [trainer.step() for _ in range(3)]
        resumed = emulate(ctx, Trainer.resume(load_checkpoint(Path(tmp) / "bf16.safetensors"),
                                              data_at(trainer.genome.resolution)))
        got = [resumed.step() for _ in range(3)]
    diff = max(rel_diff(a, b) for a, b in zip(expected, got, strict=True))
    assert captures(trainer) == 2, f"expected a capture before and one after the fade-in, got {captures(trainer)}"
    assert diff <= 1e-2, f"bf16 resume differs by {diff:.3g} (relative)"
    return {"layout": layout, "stats": result.stats, "captures": captures(trainer), "resume_max_rel_diff": diff}


@check("fade_in_identity", "correctness")
def fade_in_identity(ctx: Ctx) -> float:
    genome = small_genome(ctx)
    child_genome = apply_action(genome, Action("grow_res"))
    dev = ctx.device
    g_parent, d_parent = Generator(genome).to(dev).eval(), Discriminator(genome).to(dev).eval()
    g_child, d_child = Generator(child_genome, fade_in=True).to(dev), Discriminator(child_genome, fade_in=True).to(dev)
    inherit_weights(g_child, g_parent.state_dict())
    inherit_weights(d_child, d_parent.state_dict())
    g_child.set_alpha(torch.zeros((), device=dev))  # as under graphs: alpha as a device tensor
    d_child.set_alpha(0.0)
    z, x = torch.randn(16, genome.latent_size, device=dev), torch.randn(16, 3, 16, 16, device=dev)
    with torch.no_grad():
        err_g = (g_child(z) - F.interpolate(g_parent(z), scale_factor=2.0)).abs().max().item()
        err_d = (d_child(x) - d_parent(F.avg_pool2d(x, 2))).abs().max().item()
    assert max(err_g, err_d) < 1e-3, (err_g, err_d)
    return max(err_g, err_d)


# ====================================================================================== timing
def busy_ns(intervals: Iterable[tuple[int, int]]) -> int:
    """Length of the union of [start, end) intervals: the time the device was doing something."""
    total, cur_start, cur_end = 0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start  # type: ignore[operator]
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start  # type: ignore[operator]
    return total


def device_events(prof: Any, cuda: bool) -> list[tuple[str, int, int]]:
    """(name, start ns, duration ns) of what ran on the device (kernels, copies, memsets); --dry-run: CPU ops."""
    want = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    out = []
    for e in prof.profiler.kineto_results.events():
        if e.device_type() == want and e.duration_ns() > 0:
            out.append((e.name(), int(e.start_ns()), int(e.duration_ns())))
    return out


def top_kernels(events: list[tuple[str, int, int]], steps: int, n: int = 12) -> list[dict[str, Any]]:
    by_name: dict[str, list[int]] = collections.defaultdict(list)
    for name, _, duration in events:
        by_name[name].append(duration)
    rows = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:n]
    return [{"kernel": name[:110], "ms_per_step": round(sum(d) / steps / 1e6, 4), "calls_per_step": len(d) / steps}
            for name, d in rows]


def measure(ctx: Ctx, genome: Genome, *, bf16: bool, graphs: bool, steps: int, profile_steps: int,
            channels_last: bool | None = None, label: str = "") -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    cfg = TrainConfig(iterations=10**9, batch_size=BATCH, bf16=bf16, channels_last=channels_last, seed=0,
                      log_every=10**9)
    trainer = make_trainer(ctx, genome, cfg, graphs)
    trainer.train(until=8, progress=False)  # warm-up: cuDNN plans, optimizer state, the capture (self-checked)
    sync(ctx)
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train(until=trainer.iteration + steps, progress=False)  # ends with the loss check's sync
    sync(ctx)
    wall = (time.perf_counter() - start) / steps
    activities = [ProfilerActivity.CUDA] if ctx.cuda else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        trainer.train(until=trainer.iteration + profile_steps, progress=False)
        sync(ctx)
    events = device_events(prof, ctx.cuda)
    busy = busy_ns((s, s + d) for _, s, d in events) / profile_steps / 1e6 if events else None
    row = {"label": label, "channels": dict(genome.channels)[genome.resolution], "latent": genome.latent_size,
           "res": genome.resolution, "precision": "bf16" if bf16 else "fp32", "mode": "graphed" if graphs else "eager",
           "channels_last": nhwc(trainer),
           "wall_ms": round(wall * 1e3, 3), "busy_ms": None if busy is None else round(busy, 3),
           "kernels_per_step": round(len(events) / profile_steps, 1), "img_per_s": round(BATCH / wall, 1),
           "wall_over_busy": None if not busy else round(wall * 1e3 / busy, 3),
           "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20) if ctx.cuda else None,
           "captures": captures(trainer), "tf32": cfg.allow_tf32,
           "graph_failed": trainer.graph_record()["why"] if trainer.graph_record()["mode"] == "fell back" else None,
           "top_kernels": top_kernels(events, profile_steps)}
    del trainer  # freed at once (no reference cycles), so the next row's peak is its own
    release_cached_memory()
    return row


def table_plan(ctx: Ctx) -> list[dict[str, Any]]:
    """Every row of the timing table, in the order they run (the most important first)."""
    if ctx.quick:  # one row: the size graphs are for (the ">= 4,000 img/s" target)
        return [{"genome": cifar_like(8, 16 if ctx.dry else 128, 16 if ctx.dry else 128), "bf16": False,
                 "graphs": True, "steps": 3 if ctx.dry else 60, "profile_steps": 2 if ctx.dry else 10}]
    if ctx.dry:
        return [{"genome": cifar_like(r, 16, 16), "bf16": False, "graphs": g, "steps": 3, "profile_steps": 2}
                for r in (8, 16) for g in (False, True)]
    plan = []
    resolutions = (8, 16, 32)
    for channels in (128, 512):
        for res in resolutions:
            steps = 60 if res <= 16 else 30
            for bf16 in (False, True):
                for graphs in (False, True):
                    plan.append({"genome": cifar_like(res, channels), "bf16": bf16, "graphs": graphs, "steps": steps,
                                 "profile_steps": 10})
    big = cifar_like(32, 512)
    plan.append({"genome": big, "bf16": True, "graphs": True, "channels_last": False, "steps": 30,
                 "profile_steps": 10, "label": "bf16 NCHW"})
    plan.append({"genome": big, "bf16": False, "graphs": True, "channels_last": True, "steps": 30,
                 "profile_steps": 10, "label": "fp32 channels-last"})
    for res in (64, 128, 256):
        plan.append({"genome": lsun_like(res), "bf16": False, "graphs": True, "steps": 15, "profile_steps": 4,
                     "label": "lsun"})
    plan.append({"genome": lsun_like(256), "bf16": True, "graphs": True, "steps": 15, "profile_steps": 4,
                 "label": "lsun"})
    return plan


def run_table(ctx: Ctx) -> None:
    rows, skipped = [], []
    for spec in table_plan(ctx):
        genome = spec.pop("genome")
        what = f"{genome.summary().split('|')[0].strip()} {'bf16' if spec['bf16'] else 'fp32'}" \
               f" {'graphed' if spec['graphs'] else 'eager'} {spec.get('label', '')}".strip()
        if ctx.time_left() < 0:
            skipped.append(what)
            continue
        try:
            row = measure(ctx, genome, **spec)
        except Exception:  # noqa: BLE001 (a row that fails is reported, the others still run)
            row = {"label": spec.get("label", ""), "what": what, "error": traceback.format_exc(limit=4)}
        rows.append(row)
        print("table:", what, {k: row.get(k) for k in ("wall_ms", "busy_ms", "img_per_s", "kernels_per_step",
                                                      "error")}, flush=True)
    # A graphed row whose replayed kernels the profiler did not see borrows the eager row's GPU time
    # (the same kernels): marked, so the table says where the number comes from.
    for row in rows:
        if row.get("mode") == "graphed" and not row.get("busy_ms"):
            twin = next((r for r in rows if r.get("mode") == "eager" and r.get("busy_ms") and
                         all(r.get(k) == row.get(k) for k in ("channels", "res", "precision", "latent"))), None)
            if twin:
                row["busy_ms"], row["busy_source"] = twin["busy_ms"], "eager row (profiler saw no graph kernels)"
                row["wall_over_busy"] = round(row["wall_ms"] / twin["busy_ms"], 3)
    ctx.results["table"] = rows
    ctx.results["table_skipped"] = skipped


# ====================================================================================== several candidates
def bench_worker(spec: dict[str, Any]) -> None:
    """One process of the several-candidates measurement: ``trainers`` candidates on their own streams."""
    from dggan._util.threads import set_threads

    set_threads(None, workers=spec["processes"])
    folder, index, n = Path(spec["dir"]), spec["index"], spec["trainers"]
    device = spec["device"]
    genome = cifar_like(spec["res"], spec["channels"], spec.get("latent", 128))
    cfg = TrainConfig(iterations=10**9, batch_size=BATCH, device=device, cuda_graphs=spec["graphs"], log_every=10**9)
    trainers = [Trainer(genome, dataclasses.replace(cfg, seed=index * 100 + i), data_at(genome.resolution))
                for i in range(n)]
    if spec["graphs"] and not device.startswith("cuda"):
        for t in trainers:
            t.use_static_inputs(t.graphed_step(EmulatedBackend(t.graph_state)))
    cuda = device.startswith("cuda")
    streams = [torch.cuda.Stream() if cuda and n > 1 else None for _ in trainers]
    runs = [t.train_steps(progress=False) for t in trainers]  # the loop train_together runs
    for _ in range(spec.get("warmup", 10)):
        for run, stream in zip(runs, streams, strict=True):
            with on_stream(stream):
                next(run)
    if cuda:
        torch.cuda.synchronize()
    (folder / f"ready_{index}").touch()
    deadline = time.time() + 600
    while not (folder / "go").exists():
        if time.time() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    first = [t.iteration for t in trainers]
    start = time.perf_counter()
    while time.perf_counter() - start < spec["duration"]:
        for run, stream in zip(runs, streams, strict=True):
            with on_stream(stream):
                next(run)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    images = sum(t.iteration - f for t, f in zip(trainers, first, strict=True)) * BATCH
    (folder / f"result_{index}.json").write_text(json.dumps({"images": images, "seconds": seconds,
                                                             "img_per_s": images / seconds}))


def run_workers(ctx: Ctx, processes: int, trainers: int, graphs: bool, env: dict[str, str] | None = None,
                res: int = 16, channels: int = 128) -> dict[str, Any]:
    """Start ``processes`` worker processes of ``trainers`` candidates each; time them together."""
    duration = 1.0 if ctx.dry else 5.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        procs = []
        for i in range(processes):
            spec = {"dir": tmp, "index": i, "trainers": trainers, "graphs": graphs, "res": res,
                    "channels": 16 if ctx.dry else channels, "latent": 16 if ctx.dry else 128, "device": ctx.device,
                    "duration": duration, "processes": processes, "warmup": 4 if ctx.dry else 10}
            procs.append(subprocess.Popen([sys.executable, str(HERE), "--_worker", json.dumps(spec)],
                                          env=env or os.environ.copy(), stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
        try:
            deadline = time.time() + 240
            while sum((folder / f"ready_{i}").exists() for i in range(processes)) < processes:
                dead = [p for p in procs if p.poll() is not None]
                if dead or time.time() > deadline:
                    output = dead[0].communicate()[0] if dead else "timed out waiting for the workers"
                    raise RuntimeError(f"a worker did not get ready: {output[-2000:]}")
                time.sleep(0.05)
            (folder / "go").touch()
            outputs = [p.communicate(timeout=duration + 120)[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        results = []
        for i, output in enumerate(outputs):
            path = folder / f"result_{i}.json"
            if not path.exists():
                raise RuntimeError(f"worker {i} gave no result: {output[-2000:]}")
            results.append(json.loads(path.read_text()))
    return {"processes": processes, "trainers_per_process": trainers, "graphs": graphs,
            "img_per_s": round(sum(r["img_per_s"] for r in results), 1),
            "per_process": [round(r["img_per_s"], 1) for r in results]}


@contextlib.contextmanager
def private_mps(folder: Path) -> Iterator[dict[str, str] | None]:
    """A CUDA MPS control daemon of our own (its own pipe and log folders), quit on exit; None where there is
    no ``nvidia-cuda-mps-control``."""
    binary = shutil.which("nvidia-cuda-mps-control")
    if binary is None:
        yield None
        return
    env = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(folder / "log")}
    (folder / "pipe").mkdir()
    (folder / "log").mkdir()
    subprocess.run([binary, "-d"], env=env, check=True, timeout=30)
    try:
        time.sleep(1.0)
        yield env
    finally:
        subprocess.run([binary], input="quit\n", env=env, text=True, timeout=30, check=False)
        time.sleep(1.0)


def run_several(ctx: Ctx) -> None:
    from dggan.execution.executors import mps_running

    out: dict[str, Any] = {"res": 16, "channels": 16 if ctx.dry else 128, "runs": {},
                           "mps_already_running": mps_running()}
    ns = (2,) if ctx.dry else (4, 8)

    def attempt(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        if ctx.time_left() < 0:
            out["runs"][name] = {"skipped": "time budget"}
            return
        try:
            out["runs"][name] = fn()
        except Exception:  # noqa: BLE001
            out["runs"][name] = {"error": traceback.format_exc(limit=4)}
        print("several:", name, out["runs"][name].get("img_per_s", out["runs"][name]), flush=True)

    attempt("1 eager", lambda: run_workers(ctx, 1, 1, False))
    attempt("1 graphed", lambda: run_workers(ctx, 1, 1, True))
    for n in ns:
        attempt(f"{n} streams, 1 process", lambda n=n: run_workers(ctx, 1, n, True))
        attempt(f"{n} processes", lambda n=n: run_workers(ctx, n, 1, True))
    if ctx.cuda:
        with tempfile.TemporaryDirectory(prefix="mps") as tmp:
            try:
                with private_mps(Path(tmp)) as env:
                    if env is None:
                        out["mps"] = "nvidia-cuda-mps-control not found: no MPS measurement"
                    else:
                        for n in ns:
                            attempt(f"{n} processes under MPS", lambda n=n, env=env: run_workers(ctx, n, 1, True, env))
            except Exception:  # noqa: BLE001 (no MPS here: say why, keep the other numbers)
                out["mps"] = f"could not start an MPS daemon: {traceback.format_exc(limit=2)}"
    base = out["runs"].get("1 eager", {}).get("img_per_s")
    for run in out["runs"].values():
        if base and run.get("img_per_s"):
            run["vs_one_eager"] = round(run["img_per_s"] / base, 2)
    ctx.results["several"] = out


# ====================================================================================== searches
def tiny_search(ctx: Ctx, executor: str, **options: Any) -> dict[str, Any]:
    """A tiny search on ``executor``; on the CPU (--dry-run) tinier, on CPU workers (``workers``, ``group``:
    candidates one worker trains together, what streams sharing does on a GPU)."""
    from dggan.execution.executors import LocalExecutor, make_executor
    from dggan.search.config import SearchConfig
    from dggan.search.driver import run_search
    from dggan.search.ledger import Ledger
    from dggan.search.watch import graphs_line

    settings = {"data": "synthetic:n=512,res=16", "metric": "swd256", "baseline": {8: 100.0, 16: 100.0},
                "initial_channels": [32], "latent_size": 32, "target_resolution": 16, "top_k": 2, "p": 0.3,
                "filters": [16, 32, 64], "iterations": 40, "final_iterations": 20, "max_steps": 2, "seed": 3,
                "device": "cuda", "executor": executor, "cudnn_benchmark": False, "sample_grid": 0, "tables": False}
    if ctx.dry:
        settings.update({"data": "synthetic:n=64,res=16", "metric": "swd32", "initial_channels": [8],
                         "latent_size": 8, "filters": [8, 16], "iterations": 4, "final_iterations": 2,
                         "max_steps": 1, "batch_size": 8, "eval_batch_size": 32, "device": "cpu", "threads": 1,
                         # the executors are under test, not the final pick: one scoring, as in the paper
                         "final_pick_candidates": 1, "final_snapshots": 1})
    known = {"workers", "group"}
    config = SearchConfig.from_dict({**settings, **{k: v for k, v in options.items() if k not in known}})
    if ctx.dry and executor == "local":
        per = options.get("candidates_per_gpu", 1)
        streams = options.get("gpu_sharing") == "streams"
        ex: Any = LocalExecutor(1 if streams else per, "cpu", 1, group=per if streams else None)
    else:
        workers = options.get("workers", torch.cuda.device_count() if ctx.cuda else 2)
        ex = make_executor(executor, workers, config.device, config.gpus_per_candidate,
                           threads=1 if ctx.dry else None, candidates_per_gpu=config.candidates_per_gpu,
                           gpu_sharing=config.gpu_sharing)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = run_search(Path(tmp) / "run", config, executor=ex, progress=False)
            with Ledger.open(Path(tmp) / "run" / "ledger.sqlite", readonly=True) as ledger:
                rows = ledger.candidates()
    finally:
        ex.close()
    per_step = collections.Counter(r.step for r in rows)
    modes = collections.Counter(str(r.extra.get("graphs", {}).get("mode")) for r in rows)
    # Every candidate says how it ran: graphed on CUDA (eager only if it never got past the warm-up), eager on
    # the CPU; none fell back or was retried.
    assert set(modes) <= ({"graphed", "eager"} if ctx.cuda else {"eager"}), modes
    if ctx.cuda:
        assert modes["graphed"] > 0, modes
    return {"final_status": summary.final_status, "steps": summary.steps,
            "candidates_per_step": [per_step[s] for s in sorted(per_step)],
            "statuses": sorted({str(r.status) for r in rows}), "wall_seconds": round(summary.wall_seconds, 1),
            "workers": getattr(ex, "workers", None), "group": getattr(ex, "group", None),
            "gpu_share": getattr(ex, "gpu_share", None), "graphs": dict(modes), "graphs_line": graphs_line(rows)}


@check("search_local", "search")
def search_local(ctx: Ctx) -> dict[str, Any]:
    runs = {"one per GPU": tiny_search(ctx, "local", candidates_per_gpu=1),
            "2 processes per GPU": tiny_search(ctx, "local", candidates_per_gpu=2),
            "2 streams per worker": tiny_search(ctx, "local", candidates_per_gpu=2, gpu_sharing="streams")}
    shapes = {name: (r["final_status"], r["steps"], r["candidates_per_step"], r["statuses"])
              for name, r in runs.items()}
    assert all(r["final_status"] == "done" and r["statuses"] == ["done"] for r in runs.values()), runs
    assert len(set(map(json.dumps, shapes.values()))) == 1, f"ledger shapes differ: {shapes}"
    assert runs["2 streams per worker"]["group"] == 2 and runs["2 processes per GPU"]["workers"] >= 2, runs
    return runs


@check("search_ray", "search")
def search_ray(ctx: Ctx) -> dict[str, Any]:
    try:
        import ray  # noqa: F401
    except ImportError:
        return {"skipped": "ray is not installed"}
    result = tiny_search(ctx, "ray", candidates_per_gpu=2, workers=4 if ctx.cuda else 2)
    assert result["final_status"] == "done", result
    assert result["gpu_share"] == (0.5 if ctx.cuda else 0), result  # 2 candidates per GPU: half a GPU each
    return result


# ====================================================================================== targets and report
def find(rows: list[dict[str, Any]], **want: Any) -> dict[str, Any] | None:
    return next((r for r in rows if "error" not in r and not r.get("label") and
                 all(r.get(k) == v for k, v in want.items())), None)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured numbers and pass/fail (None: not measured)."""
    rows = results.get("table", [])
    out = []
    graphed = [r for r in rows if r.get("mode") == "graphed" and "error" not in r and not r.get("label")]
    ratios = [r["wall_over_busy"] for r in graphed if r.get("wall_over_busy")]
    out.append({"target": "graphed wall per step <= 1.3x GPU-busy per step, every size",
                "measured": f"worst {max(ratios):.2f}x over {len(ratios)} rows" if ratios else None,
                "ok": (max(ratios) <= 1.3) if ratios else None})
    small = find(rows, channels=128, res=8, precision="fp32", mode="graphed")
    out.append({"target": ">= 4,000 img/s at 128 ch / 8 px fp32",
                "measured": f"{small['img_per_s']:.0f} img/s" if small else None,
                "ok": (small["img_per_s"] >= 4000) if small else None})
    f32 = find(rows, channels=512, res=32, precision="fp32", mode="graphed")
    b16 = find(rows, channels=512, res=32, precision="bf16", mode="graphed")
    f32_eager = find(rows, channels=512, res=32, precision="fp32", mode="eager")
    if f32 and b16:
        speed = b16["img_per_s"] / f32["img_per_s"]
        busy_ok = b16.get("busy_ms") is not None and f32.get("busy_ms") is not None and b16["busy_ms"] < f32["busy_ms"]
        vs_eager = f" ({b16['img_per_s'] / f32_eager['img_per_s']:.2f}x eager fp32)" if f32_eager else ""
        out.append({"target": "bf16 at 512 ch / 32 px >= 1.5x fp32, with less GPU work",
                    "measured": f"{speed:.2f}x graphed fp32{vs_eager}; GPU-busy {b16.get('busy_ms')} vs"
                                f" {f32.get('busy_ms')} ms/step", "ok": speed >= 1.5 and busy_ok})
    else:
        out.append({"target": "bf16 at 512 ch / 32 px >= 1.5x fp32, with less GPU work", "measured": None, "ok": None})
    several = results.get("several", {}).get("runs", {})
    base = several.get("1 eager", {}).get("img_per_s")
    best = max(((name, r["img_per_s"]) for name, r in several.items() if r.get("img_per_s") and name != "1 eager"),
               key=lambda kv: kv[1], default=None)
    out.append({"target": "best several-candidates-per-GPU >= 3x one eager candidate at 128 ch / 16 px",
                "measured": f"{best[0]}: {best[1]:.0f} img/s = {best[1] / base:.2f}x" if best and base else None,
                "ok": (best[1] >= 3 * base) if best and base else None})
    return out


PRESET_COST = {  # candidates (as README's presets table says) and the resolutions they train at
    "cifar10": {"candidates": 2100, "resolutions": (8, 16, 32), "paper_gpu_days": 580},
    "lsun-bedroom": {"candidates": 1100, "resolutions": (8, 16, 32, 64, 128, 256), "paper_gpu_days": 1720},
}


def preset_cost(results: dict[str, Any]) -> dict[str, Any]:
    """GPU-days of the paper presets' training from this run's graphed img/s (best of fp32 and bf16 per size),
    candidates spread evenly over their resolutions, 100k iterations x batch 16 each; scoring not included."""
    rows = [r for r in results.get("table", []) if r.get("mode") == "graphed" and "error" not in r]
    out = {}
    for name, spec in PRESET_COST.items():
        per_res = {}
        for res in spec["resolutions"]:
            pool = [r for r in rows if r["res"] == res and (r.get("label") == "lsun" if res > 32 else
                                                            r["channels"] == 512 and not r.get("label"))]
            if pool:
                per_res[res] = max(r["img_per_s"] for r in pool)
        if len(per_res) != len(spec["resolutions"]):
            out[name] = {"missing": [r for r in spec["resolutions"] if r not in per_res]}
            continue
        seconds_per_image = sum(1 / v for v in per_res.values()) / len(per_res)
        days = spec["candidates"] * 100_000 * BATCH * seconds_per_image / 86400
        out[name] = {"img_per_s_by_res": per_res, "candidates": spec["candidates"],
                     "gpu_days_one_candidate_per_gpu": round(days, 1), "paper_gpu_days": spec["paper_gpu_days"]}
    return out


def markdown(results: dict[str, Any]) -> str:
    dry = " (dry run on the CPU)" if results.get("dry_run") else ""
    lines = [f"# gpu_check: {results.get('device')}", "",
             f"torch {results.get('torch')}, CUDA {results.get('cuda')}, cuDNN {results.get('cudnn')},"
             f" {results.get('started')}, {results.get('seconds')} s{dry}", "", "## Checks", "",
             "| check | result | seconds |", "|---|---|---:|"]
    for name, entry in results.get("checks", {}).items():
        summary = "ok" if entry["ok"] else "**FAILED**: " + entry["error"].strip().splitlines()[-1][:150]
        lines.append(f"| {name} | {summary} | {entry['seconds']} |")
    lines += ["", "## Targets" + (" (numbers from a CPU dry run mean nothing)" if dry else ""), "",
              "| target | measured | met |", "|---|---|---|"]
    for t in results.get("targets", []):
        met = "n/a" if t["ok"] is None else ("yes" if t["ok"] else "**no**")
        lines.append(f"| {t['target']} | {t['measured'] or 'not measured'} | {met} |")
    if results.get("checks_skipped"):
        lines += ["", f"Checks skipped (time budget): {', '.join(results['checks_skipped'])}"]
    lines += ["", "## Training step (batch 16)", "",
              "| ch | latent | px | precision | TF32 | mode | layout | wall ms/step | GPU-busy ms/step | wall/busy |"
              " kernels/step | img/s | peak MiB |", "|---:|---:|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results.get("table", []):
        if "error" in r:
            lines.append(f"| {r.get('what')} | error: {r['error'].strip().splitlines()[-1][:100]} |")
            continue
        mode = r["mode"] + (" (capture FAILED: ran eagerly)" if r.get("graph_failed") else "")
        tf32 = {True: "on", False: "off"}.get(r.get("tf32"), "?")  # (rows from before the setting: unknown)
        lines.append(f"| {r['channels']} | {r['latent']} | {r['res']} | {r['precision']} | {tf32} | {mode} |"
                     f" {'NHWC' if r['channels_last'] else 'NCHW'} | {r['wall_ms']} | {r['busy_ms']} |"
                     f" {r['wall_over_busy']} | {r['kernels_per_step']} | {r['img_per_s']} | {r['peak_mib']} |")
    if results.get("table_skipped"):
        lines += ["", f"Skipped (time budget): {', '.join(results['table_skipped'])}"]
    big = [r for r in results.get("table", []) if "error" not in r and r["channels"] == 512 and r["res"] == 32
           and r["mode"] == "graphed"]
    if big:
        lines += ["", "## Where the GPU time goes at 512 ch / 32 px (graphed)"]
        for r in big:
            lines += ["", f"**{r['precision']} {'NHWC' if r['channels_last'] else 'NCHW'}** (GPU-busy {r['busy_ms']}"
                      " ms/step)", "", "| kernel | ms/step | calls/step |", "|---|---:|---:|"]
            lines += [f"| `{k['kernel']}` | {k['ms_per_step']} | {k['calls_per_step']} |" for k in r["top_kernels"]]
    several = results.get("several")
    if several:
        lines += ["", f"## Several candidates on one GPU ({several['channels']} ch, {several['res']} px, fp32)", "",
                  "| setting | total img/s | x one eager candidate | per process |", "|---|---:|---:|---|"]
        for name, r in several["runs"].items():
            lines.append(f"| {name} | {r.get('img_per_s', r.get('skipped', 'error'))} | {r.get('vs_one_eager', '')} |"
                         f" {r.get('per_process', '')} |")
        if several.get("mps"):
            lines += ["", str(several["mps"]).strip().splitlines()[-1]]
        if several.get("mps_already_running"):
            lines += ["", "An MPS daemon was already running: the rows without MPS ran under it too."]
    costs = results.get("preset_cost")
    if costs:
        lines += ["", "## Paper presets from these numbers", "",
                  "GPU-days of training, one candidate per GPU at the best graphed img/s of each size, candidates"
                  " spread evenly over the resolutions, 100k iterations x 16 images each (scoring not included):", ""]
        for name, c in costs.items():
            if "missing" in c:
                lines.append(f"- {name}: not computed (no numbers at {c['missing']} px)")
            else:
                lines.append(f"- {name}: {c['candidates']} candidates -> {c['gpu_days_one_candidate_per_gpu']}"
                             f" GPU-days (the paper: {c['paper_gpu_days']}); img/s by px {c['img_per_s_by_res']}")
    return "\n".join(lines) + "\n"


# ====================================================================================== main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="folder for the JSON and markdown")
    parser.add_argument("--dry-run", action="store_true", help="no GPU needed: run the logic on the CPU, tiny sizes")
    parser.add_argument("--quick", action="store_true",
                        help="every correctness check and one timing row, no sharing runs or searches, nothing new"
                             f" started after --budget-s ({QUICK_BUDGET_S:g} s): sized for 5 minutes on one H100")
    parser.add_argument("--only", default="correctness,timing,several,search",
                        help="comma-separated groups: correctness, timing, several, search")
    parser.add_argument("--checks-only", action="store_true",
                        help="the pass/fail checks alone (correctness and search), no timing")
    parser.add_argument("--timing-only", action="store_true", help="the timing table and sharing runs alone")
    parser.add_argument("--check", action="append", default=[], metavar="NAME",
                        help=f"run only this check (repeatable): {', '.join(name for name, _, _ in CHECKS)}")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="no new timing row or sharing run (--quick: check) starts after this many seconds"
                             f" (default 330; {QUICK_BUDGET_S:g} with --quick)")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        bench_worker(json.loads(args._worker))
        return
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here (torch.cuda.is_available() is False). Run it on a GPU"
                         " machine, or with --dry-run to exercise its CPU-side logic.")
    groups = set(args.only.split(","))
    if args.checks_only:
        groups &= {"correctness", "search"}
    if args.timing_only:
        groups &= {"timing", "several"}
    if args.quick:
        groups &= {"correctness", "timing"}
    unknown = set(args.check) - {name for name, _, _ in CHECKS}
    if unknown:
        raise SystemExit(f"gpu_check: no check named {', '.join(sorted(unknown))}; see --help")
    if args.check:
        groups = {group for name, group, _ in CHECKS if name in args.check}
    wanted = set(args.check) or {name for name, _, _ in CHECKS}
    start = time.perf_counter()
    results: dict[str, Any] = {
        "device": "cpu", "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": platform.python_version(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "dry_run": args.dry_run, "checks": {}}
    budget = args.budget_s if args.budget_s is not None else (QUICK_BUDGET_S if args.quick else 330.0)
    ctx = Ctx("cpu" if args.dry_run else "cuda", args.dry_run, args.quick, start + budget, results)
    if args.dry_run:
        from dggan._util.threads import set_threads

        set_threads(1)
    # The sharing runs (subprocesses only) before this process touches the GPU, then correctness, the timing
    # table (budgeted with the sharing runs), the searches, and last the check whose failed capture turns graphs
    # off for the rest of this process.
    if "several" in groups:
        run_several(ctx)
    if ctx.cuda:
        results["device"] = torch.cuda.get_device_name(0)
    for name, group, fn in CHECKS:
        if group == "correctness" and group in groups and name in wanted and name not in LAST:
            run_check(ctx, name, fn, budgeted=ctx.quick)
    if "timing" in groups:
        run_table(ctx)
    for name, group, fn in CHECKS:
        if group == "search" and group in groups and name in wanted:
            run_check(ctx, name, fn, budgeted=ctx.quick)
    for name, group, fn in CHECKS:
        if name in LAST and group in groups and name in wanted:
            run_check(ctx, name, fn)
    results["targets"] = targets(results)
    results["preset_cost"] = preset_cost(results)
    results["seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "gpu_check.md").write_text(markdown(results))
    failed = [n for n, e in results["checks"].items() if not e["ok"]]
    print(f"\n{len(results['checks']) - len(failed)}/{len(results['checks'])} checks passed"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    for t in results["targets"]:
        print(f"target: {t['target']}: {t['measured'] or 'not measured'}"
              f" -> {'n/a' if t['ok'] is None else ('met' if t['ok'] else 'NOT met')}")
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'} in {results['seconds']} s")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
