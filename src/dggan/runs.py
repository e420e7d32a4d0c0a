"""Run folders: where everything of a search (or a training run) lives, spelled in one place.

```
RUN/
  options.json            resolved settings
  ledger.sqlite           the search's ledger
  .lock                   held by the search that writes this run
  log.txt                 what the search said, timestamped
  tb/                     TensorBoard logs: search/ (per step), c00007/ (per candidate), best/, baseline/c00001/
  slurm/                  the slurm executor's job files and logs (submitit)
  baseline/               the auto baseline: a run folder of its own
  candidates/c00007/      a ModelFolder: checkpoint.safetensors, genome.json, samples.png, stats.jsonl,
                          inheritance.json, error.txt
  best/                   the final model: the same, and metrics.json, tables.json, tables.md
  compare.json, .md       dggan compare (compare-baseline/: its ProgGAN when the baseline is not auto)
  report/                 dggan report
```
Paths stored in the ledger are relative to the run folder, so a run can be moved or copied whole.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SearchError

LEDGER_NAME = "ledger.sqlite"
OPTIONS_NAME = "options.json"
CHECKPOINT_NAME = "checkpoint.safetensors"
SAMPLES_NAME = "samples.png"
STATS_NAME = "stats.jsonl"


@dataclass(frozen=True)
class ModelFolder:
    """A folder holding one trained model and what describes it: a candidate's, the final model's (``best/``)
    or a ``dggan train`` run's."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_NAME

    @property
    def genome(self) -> Path:
        return self.root / "genome.json"

    @property
    def inheritance(self) -> Path:
        """What the model took from its parent: copied, adapted, fresh (``InheritanceReport``)."""
        return self.root / "inheritance.json"

    @property
    def stats(self) -> Path:
        """One JSON line of training stats per ``log_every`` iterations."""
        return self.root / STATS_NAME

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES_NAME

    def samples_at(self, iteration: int) -> Path:
        """A ``dggan train`` run's grid at a checkpoint."""
        return self.root / f"samples-{iteration:06d}.png"

    @property
    def result(self) -> Path:
        """How a ``dggan train`` run ended (``TrainResult``)."""
        return self.root / "result.json"

    @property
    def error(self) -> Path:
        """The traceback of a failed training."""
        return self.root / "error.txt"

    @property
    def metrics(self) -> Path:
        """The final model's scores (``best/metrics.json``)."""
        return self.root / "metrics.json"

    @property
    def options(self) -> Path:
        """A ``dggan train`` run's resolved settings."""
        return self.root / OPTIONS_NAME

    @property
    def tables_json(self) -> Path:
        """The paper's Tables 1-3 for the final model (``dggan tables``)."""
        return self.root / "tables.json"

    @property
    def tables_md(self) -> Path:
        return self.root / "tables.md"


def write_model_description(folder: ModelFolder, genome_json: str,
                            inheritance: dict[str, Any] | None = None) -> None:
    """The files that describe a model before it trains: its genome, and what it inherited (a child)."""
    from ._util.files import atomic_write_json, atomic_write_text

    folder.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder.genome, genome_json + "\n")
    if inheritance:
        atomic_write_json(folder.inheritance, inheritance)


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER_NAME

    @property
    def options(self) -> Path:
        return self.root / OPTIONS_NAME

    @property
    def log(self) -> Path:
        """What the search said (errors, stops, thread choices), one timestamped line each."""
        return self.root / "log.txt"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def tb(self) -> Path:
        """TensorBoard logs (``tensorboard --logdir RUN/tb``)."""
        return self.root / "tb"

    @property
    def slurm(self) -> Path:
        """The slurm executor's job files, logs and results (submitit's folder)."""
        return self.root / "slurm"

    @property
    def baseline(self) -> RunLayout:
        """The auto baseline's own run folder inside this one."""
        return RunLayout(self.root / "baseline")

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def best_model(self) -> ModelFolder:
        """The final model: checkpoint, samples, metrics.json, tables.json/.md."""
        return ModelFolder(self.best)

    @property
    def final_metrics(self) -> Path:
        return self.best_model.metrics

    @property
    def tables_json(self) -> Path:
        return self.best_model.tables_json

    @property
    def tables_md(self) -> Path:
        return self.best_model.tables_md

    @property
    def compare_json(self) -> Path:
        """``dggan compare``: the final model against ProgGAN at equal training and at equal compute."""
        return self.root / "compare.json"

    @property
    def compare_md(self) -> Path:
        return self.root / "compare.md"

    @property
    def compare_baseline(self) -> RunLayout:
        """The ProgGAN route ``dggan compare`` trains when the run's baseline is not ``auto``."""
        return RunLayout(self.root / "compare-baseline")

    @property
    def report(self) -> Path:
        return self.root / "report"

    def candidate(self, candidate: int) -> Path:
        return self.root / "candidates" / f"c{candidate:05d}"

    def checkpoint(self, candidate: int) -> Path:
        return self.candidate(candidate) / CHECKPOINT_NAME

    def model(self, candidate: int) -> ModelFolder:
        return ModelFolder(self.candidate(candidate))

    def is_run(self) -> bool:
        return self.ledger.is_file() and self.options.is_file()

    def resolve(self, stored: str | Path) -> Path:
        """A path as stored in the ledger (relative to the run folder, or absolute) -> a usable path."""
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the run folder when it lies inside it, else as given."""
        try:
            return str(Path(path).resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)


def check_new_run_dir(run_dir: str | Path) -> None:
    """A new run never goes into a file or a folder that holds anything."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise SearchError(f"--run-dir {run_dir} is a file, not a folder; choose a new --run-dir")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise SearchError(f"{run_dir} already exists and is not empty; resume it with --resume {run_dir}"
                          " or choose a new --run-dir")


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder: two searches on one folder would corrupt each other."""
    with open(RunLayout(run_dir).lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise SearchError(f"{run_dir} is in use by another search (pid {handle.read().strip() or '?'});"
                              " wait for it to finish or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def search_lock(run_dir: str | Path) -> tuple[bool, int | None]:
    """Whether a search holds the run folder's lock (it is running) and, if so, its pid (from the lock file).
    Only reads: the file is never created or written, and the shared lock it tries is released at once."""
    try:
        handle = open(RunLayout(run_dir).lock, "rb")  # noqa: SIM115 (closed below; "rb" never creates it)
    except OSError:
        return False, None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # the search's exclusive lock
            text = handle.read(32).decode(errors="replace").strip()
            return True, int(text) if text.isdigit() else None
        except OSError:  # a filesystem without locks: nothing to tell
            return False, None
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False, None


def new_run_dir(root: str | Path, desc: str) -> Path:
    """``root/NNNNN-desc``, numbered after the highest existing run; never reuses an existing folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", desc).strip("-") or "run"
    while True:
        ids = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"^(\d{5})-", p.name))]
        run_dir = root / f"{max(ids, default=-1) + 1:05d}-{safe}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # another process took this number first
            continue
