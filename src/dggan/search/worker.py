"""One candidate's whole job (train or resume, checkpoint, sample, score), runnable in any process.

``run_candidate`` takes a plain, picklable task and never raises: a failure becomes a ``failed``
result with its error, a NaN/exploding run a ``diverged`` one, so executors and the driver stay simple.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, load_checkpoint
from ..data.base import ImageSource
from ..genome import Genome
from ..images import save_grid
from ..io import append_jsonl, atomic_write_json, atomic_write_text
from ..runs import CHECKPOINT_NAME, SAMPLES_NAME
from ..sampling import LatentStream, generate
from ..train import TrainConfig, Trainer
from .ledger import Status

# Set by executors that pin each worker process to one device.
_WORKER_DEVICE: str | None = None


def set_worker_device(device: str | None) -> None:
    global _WORKER_DEVICE
    _WORKER_DEVICE = device


@dataclass(frozen=True)
class CandidateTask:
    candidate_id: int
    genome_json: str
    parent_checkpoint: str | None
    out_dir: str
    train: dict[str, Any]
    data: str
    metric: str
    inherit_policy: str = "adapt"
    new_layer_init: str = "random"
    checkpoint_every: int = 0
    sample_grid: int = 36
    eval_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = False
    continue_from: str | None = None  # final training: continue this checkpoint up to train["iterations"]
    threads: int | None = None  # torch CPU threads (the same count everywhere keeps CPU results identical)


@dataclass
class CandidateResult:
    candidate_id: int
    status: Status  # done | diverged | failed
    metric: float | None = None
    normalized_metric: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    train_seconds: float | None = None
    eval_seconds: float | None = None
    checkpoint: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.lru_cache(maxsize=4)
def open_data_cached(spec: str) -> ImageSource:
    """One copy of a dataset per process, shared by all candidates that process trains."""
    from ..data import open_dataset

    return open_dataset(spec)


def run_candidate(task: CandidateTask) -> CandidateResult:
    try:
        return _run(task)
    except Exception as exc:  # noqa: BLE001 (a failed candidate is a ledger state, not a crash)
        out = Path(task.out_dir)
        with contextlib.suppress(OSError):
            atomic_write_text(out / "error.txt", traceback.format_exc())
        return CandidateResult(task.candidate_id, Status.FAILED, error=f"{type(exc).__name__}: {exc}")


def _run(task: CandidateTask) -> CandidateResult:
    out = Path(task.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if task.threads:
        torch.set_num_threads(task.threads)
    genome = Genome.from_json(task.genome_json, source=f"candidate {task.candidate_id}")
    train_dict = dict(task.train)
    if train_dict.get("device") in (None, "worker"):
        train_dict["device"] = _WORKER_DEVICE or ("cuda" if torch.cuda.is_available() else "cpu")
    config = TrainConfig.from_dict(train_dict)
    data = open_data_cached(task.data)
    ckpt_path = out / CHECKPOINT_NAME
    atomic_write_text(out / "genome.json", genome.to_json() + "\n")

    trainer = _resume_if_possible(ckpt_path, genome, data, config.device)
    if trainer is None and task.continue_from is not None:
        trainer = Trainer.resume(load_checkpoint(task.continue_from), data, device=config.device)
        trainer.extend(config.iterations)
    if trainer is None:
        if task.parent_checkpoint is None:
            trainer = Trainer(genome, config, data)
        else:
            parent = load_checkpoint(task.parent_checkpoint)
            trainer = Trainer.child_of(parent, genome, config, data, policy=task.inherit_policy,  # type: ignore[arg-type]
                                       new_layers=task.new_layer_init)  # type: ignore[arg-type]
            atomic_write_json(out / "inheritance.json", {k: v.to_dict() for k, v in trainer.inheritance.items()})
    every = task.checkpoint_every or max(1, config.iterations // 4)
    if trainer.iteration < config.iterations or trainer.fading:
        result = trainer.train(progress=task.progress, checkpoint_path=ckpt_path, checkpoint_every=every,
                               on_log=lambda row: append_jsonl(out / "stats.jsonl", row))
        if result.status != Status.DONE:
            return CandidateResult(task.candidate_id, Status(result.status), train_seconds=trainer.train_seconds,
                                   error=result.reason, extra={"stats": result.stats})
        trainer.save(ckpt_path)
    elif not ckpt_path.exists():
        trainer.save(ckpt_path)  # e.g. a final training of 0 extra iterations: the result still lives here

    start = time.perf_counter()
    if not torch.isfinite(trainer.sample(8, seed=1)).all():
        return CandidateResult(task.candidate_id, Status.DIVERGED, train_seconds=trainer.train_seconds,
                               eval_seconds=time.perf_counter() - start,
                               error="the EMA generator's output is not finite")
    scores = evaluate_trainer(trainer, data, task)
    if task.sample_grid:
        save_grid(trainer.sample(task.sample_grid, seed=0), out / SAMPLES_NAME)
    eval_seconds = time.perf_counter() - start
    value = float(scores["value"])
    extra = {k: v for k, v in scores.items() if k not in ("value", "metric")}
    # The driver normalises: only it knows the baseline at this candidate's route iterations.
    return CandidateResult(task.candidate_id, Status.DONE, metric=value, extra=extra,
                           train_seconds=trainer.train_seconds, eval_seconds=eval_seconds, checkpoint=str(ckpt_path))


def _resume_if_possible(ckpt_path: Path, genome: Genome, data: ImageSource, device: str) -> Trainer | None:
    """Pick up an interrupted candidate from its own latest checkpoint, if it has a usable one."""
    if not ckpt_path.exists():
        return None
    try:
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.genome != genome:
            raise CheckpointError(f"{ckpt_path}: holds another genome")
        return Trainer.resume(ckpt, data, device=device)
    except CheckpointError:
        # A checkpoint cut short by a crash: keep it for inspection, train again from the start.
        os.replace(ckpt_path, ckpt_path.with_suffix(".corrupt"))
        return None


def evaluate_trainer(trainer: Trainer, data: ImageSource, task: CandidateTask) -> dict[str, Any]:
    from ..metrics import evaluate

    opts = dict(task.eval_options)
    batch = int(opts.pop("batch_size", 64))
    seed = int(opts.pop("seed", 0))
    stream = LatentStream(trainer.genome.latent_size, seed)
    net = trainer.G_ema.eval()
    return evaluate(task.metric, lambda n: generate(net, stream.take(n), batch), data, trainer.genome.resolution,
                    device=str(trainer.device), batch_size=batch, seed=seed, progress=task.progress, **opts)
