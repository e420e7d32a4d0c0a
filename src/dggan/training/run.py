"""One model trained into its folder: the one driver behind ``dggan train`` and every candidate of a search.

``build_trainer`` makes a model's trainer from where its training starts: a genome from scratch, a child genome
grown from a parent checkpoint (``Trainer.child_of``: the inheritance policy, how grown layers start), or a
checkpoint whose training goes on (``Trainer.resume``, up to a new total); ``resume_in`` picks up instead the run a
folder's own checkpoint left off. ``ModelRun(folder, trainer)`` then writes what describes the model (``begin``:
genome.json, inheritance.json; the stats lines a stopped run logged past the start dropped), trains it
(``train``, or ``train_kwargs`` for ``train_together``: a stats.jsonl line every ``log_every`` iterations, the
checkpoint every ``checkpoint_every`` with, when asked, a sample grid beside each) and saves its checkpoint and
its sample grid (``save``, ``save_samples``).

What is the search's stays in ``dggan.execution.worker`` (scoring, rungs, the CUDA-graph fallback, retries,
TensorBoard, which candidate a checkpoint holds); what is the command's stays in ``dggan.cli.train`` (its flags,
the run folder's name, options.json, result.json, what it prints).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util.files import append_jsonl, atomic_write_text
from .._util.images import save_grid
from ..data.base import ImageSource
from ..model.genome import Genome
from ..model.inherit import InheritPolicy, NewLayerInit
from ..runs import ModelFolder, write_model_description
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .config import RUNTIME_FIELDS, TrainConfig
from .trainer import Trainer, TrainResult

if TYPE_CHECKING:
    import torch


def runtime_of(config: TrainConfig) -> dict[str, Any]:
    """How ``config`` runs on its device (``RUNTIME_FIELDS``): what a resumed run takes from its caller, not from
    its checkpoint."""
    return {k: getattr(config, k) for k in RUNTIME_FIELDS}


def build_trainer(data: ImageSource, config: TrainConfig | None = None, *, genome: Genome | None = None,
                  parent: Checkpoint | None = None, resume: Checkpoint | None = None, until: int | None = None,
                  runtime: Mapping[str, Any] | None = None, policy: InheritPolicy = "adapt",
                  new_layers: NewLayerInit = "random") -> Trainer:
    """The trainer of one model, by where its training starts:

    - ``resume``: that checkpoint's training goes on (exactly: same alpha, batches, noise), up to ``until``
      iterations when given (its fade-in schedule stays); ``runtime`` (default: ``config``'s, see ``runtime_of``)
      says how it runs now;
    - ``genome`` and ``parent``: a child initialised from its parent's weights (``policy``, ``new_layers``);
    - ``genome`` alone: a new network.

    Nothing is written: a model that cannot be built leaves no trace (``ModelRun`` writes its folder)."""
    if resume is not None:
        if runtime is None and config is not None:
            runtime = runtime_of(config)
        trainer = Trainer.resume(resume, data, runtime=runtime)
        if until is not None:
            trainer.extend(until)
        return trainer
    if genome is None or config is None:
        raise TypeError("build_trainer: a new model needs its genome and its TrainConfig (or a checkpoint to resume)")
    if parent is None:
        return Trainer(genome, config, data)
    return Trainer.child_of(parent, genome, config, data, policy=policy, new_layers=new_layers)


def resume_in(folder: ModelFolder, genome: Genome, data: ImageSource,
              runtime: Mapping[str, Any] | None = None) -> Trainer | None:
    """The run ``folder``'s own checkpoint left off (a process killed, a job requeued), when it holds ``genome``;
    None when there is none to pick up. A checkpoint that cannot be read (cut short by a crash) or holds another
    genome is kept aside for inspection (``.corrupt``) and the model trains again from its start."""
    path = folder.checkpoint
    if not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path)
        if ckpt.genome != genome:
            raise CheckpointError(f"{path}: holds another genome")
        return Trainer.resume(ckpt, data, runtime=runtime)
    except CheckpointError:
        os.replace(path, path.with_suffix(".corrupt"))
        return None


@dataclass(eq=False)
class ModelRun:
    """One model training into its folder. ``trainer`` is set to None once the run is done with it (its memory goes
    with it: nothing here holds it elsewhere, and no reference cycle does)."""

    folder: ModelFolder
    trainer: Any  # a Trainer, or None once dropped

    def begin(self) -> None:
        """Before training: the files that describe the model (genome.json, inheritance.json for a child), and the
        training lines a stopped run logged past the iteration this one starts from dropped from stats.jsonl."""
        trainer = self.trainer
        write_model_description(self.folder, trainer.genome.to_json(),
                                {k: v.to_dict() for k, v in trainer.inheritance.items()} or None)
        forget_stats_after(self.folder, trainer.iteration)

    def log(self, row: Mapping[str, Any], **extra: Any) -> None:
        """One line of stats.jsonl: the trainer's logged ``row``, and ``extra`` fields."""
        append_jsonl(self.folder.stats, {**row, **extra})

    def train_kwargs(self, until: int | None = None, *, progress: bool = True, desc: str | None = None,
                     checkpoint_every: int = 0, grids: int = 0,
                     on_log: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
        """The keyword arguments of ``Trainer.train`` (and of ``train_together``) for this run: up to ``until``
        (default: the config's iterations), its checkpoint every ``checkpoint_every`` iterations (0: only at the
        end, by ``save``) with a grid of ``grids`` samples beside each (``samples-NNNNNN.png``; 0: none), each
        logged row through ``on_log`` (default: ``log``, a stats.jsonl line)."""
        kwargs: dict[str, Any] = {"until": until, "progress": progress, "desc": desc,
                                  "checkpoint_path": self.folder.checkpoint, "checkpoint_every": checkpoint_every,
                                  "on_log": self.log if on_log is None else on_log}
        if grids:
            kwargs["on_checkpoint"] = lambda iteration: self.save_samples(grids, self.folder.samples_at(iteration))
        return kwargs

    def train(self, until: int | None = None, **kwargs: Any) -> TrainResult:
        """Train (see ``train_kwargs``) and return how it ended."""
        return self.trainer.train(**self.train_kwargs(until, **kwargs))

    def save(self) -> Path:
        """The model's checkpoint, as it is now."""
        return self.trainer.save(self.folder.checkpoint)

    def save_samples(self, n: int, path: Path | None = None) -> torch.Tensor:
        """A grid of ``n`` samples of the EMA generator (seed 0: the same latents every time) into ``path``
        (default: the folder's samples.png); returns the samples."""
        samples = self.trainer.sample(n, seed=0)
        save_grid(samples, self.folder.samples if path is None else path)
        return samples


def forget_stats_after(folder: ModelFolder, iteration: int) -> None:
    """Drop the training lines a stopped run logged past ``iteration``, the checkpoint it resumes from (it logs
    them again as it retrains them, and a line cut short by a kill is no line), so stats.jsonl reads as one
    uninterrupted run. Lines that are not the trainer's (a search's final training logs its scored points there:
    ``final_point``) stay."""
    try:
        lines = folder.stats.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return

    def kept(line: str) -> bool:
        try:
            row = json.loads(line)
        except ValueError:
            return False
        if not isinstance(row, dict) or "final_point" in row:
            return True
        logged = row.get("iteration", 0)
        return not isinstance(logged, (int, float)) or logged <= iteration

    keep = [line for line in lines if line.endswith("\n") and kept(line)]
    if len(keep) < len(lines):
        atomic_write_text(folder.stats, "".join(keep))
