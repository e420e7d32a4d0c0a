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
  best/                   the final model (the final training's best snapshot): the same, and metrics.json,
                          tables.json, tables.md; best/last/ the final training's last snapshot;
                          best-snapshot.safetensors the best so far while the final training runs
  compare.json, .md       dggan compare (compare-baseline/: its ProgGAN when the baseline is not auto)
  compare-against/        dggan compare --against OTHER: OTHER.json, .md (this final model against another's)
  report/                 dggan report
```
Paths stored in the ledger are relative to the run folder, so a run can be moved or copied whole.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
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
    def graphs_error(self) -> Path:
        """Why training with CUDA graphs failed before the eager retry."""
        return self.root / "graphs_error.txt"

    @property
    def last(self) -> ModelFolder:
        """The final training's last snapshot (``best/`` holds its best one)."""
        return ModelFolder(self.root / "last")

    @property
    def best_snapshot(self) -> Path:
        """The best snapshot so far, copied aside while the final training runs on in ``checkpoint``."""
        return self.root / "best-snapshot.safetensors"

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

    def compare_against(self, other: Path) -> tuple[Path, Path]:
        """``dggan compare RUN --against OTHER``: this run's final model against another search's (.json, .md)."""
        stem = self.root / "compare-against" / (Path(other).resolve().name or "run")
        return stem.with_suffix(".json"), stem.with_suffix(".md")

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


def unwritable(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be made or written (its nearest existing parent is a file, or read-only), or None.
    Asked before any work, so a mistyped path answers at once instead of after the run has started."""
    probe = Path(os.path.abspath(folder))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, so no folder can be made there"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is read-only (no permission to write, or a read-only filesystem)"
    try:  # access() says yes to root everywhere, and to pseudo filesystems (/proc) where no file can be made
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"no file can be made in {probe} ({exc.strerror})"
    return None


def check_new_run_dir(run_dir: str | Path, flag: str = "--run-dir") -> None:
    """A new run never goes into a file, a folder that holds anything, or a place it cannot write."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise SearchError(f"{flag} {run_dir} is a file, not a folder; choose a new {flag}")
    try:
        full = run_dir.exists() and any(run_dir.iterdir())
    except OSError as exc:
        raise SearchError(f"{flag} {run_dir}: cannot read it ({exc.strerror}); choose a new {flag}") from None
    if full and (run_dir / OPTIONS_NAME).is_file() and not (run_dir / LEDGER_NAME).is_file():
        raise SearchError(f"{run_dir} holds {OPTIONS_NAME} but no {LEDGER_NAME}: a search was stopped while it made"
                          f" the folder, before any work; delete the folder and start again, or choose a new {flag}")
    if full:
        raise SearchError(f"{run_dir} already exists and is not empty; resume it with --resume {run_dir}"
                          f" or choose a new {flag}")
    problem = unwritable(run_dir)
    if problem:
        raise SearchError(f"{flag} {run_dir}: {problem}; choose a writable {flag} or fix its permissions")


def check_run_writable(run_dir: str | Path, flag: str = "--resume") -> None:
    """An existing run folder that a command will write (--resume: the ledger and its lock) is writable."""
    problem = unwritable(run_dir)
    if problem:
        raise SearchError(f"{flag} {run_dir}: {problem}; make it writable (or copy the run somewhere writable"
                          f" and {flag} the copy)")


def os_error(exc: OSError, what: str, fix: str) -> SearchError:
    """An OSError (read-only folder, full disk, impossible path) as one line that says what failed and the fix."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return SearchError(f"{what}: {exc.strerror or exc}{where}; {fix}")


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder: two searches on one folder would corrupt each other."""
    try:
        handle = open(RunLayout(run_dir).lock, "a+")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise os_error(exc, f"cannot lock the run folder {run_dir}", "make it writable, or copy the run somewhere"
                       " writable and resume the copy") from None
    with handle:
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
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, f"cannot make {root}", "choose a writable --run-dir") from None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", desc).strip("-") or "run"
    while True:
        ids = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"^(\d{5})-", p.name))]
        run_dir = root / f"{max(ids, default=-1) + 1:05d}-{safe}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # another process took this number first
            continue
        except OSError as exc:
            raise os_error(exc, f"cannot make a run folder in {root}", "choose a writable --run-dir") from None
