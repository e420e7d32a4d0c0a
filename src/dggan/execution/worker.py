"""One candidate's whole job (train or resume, checkpoint, sample, score), runnable in any process.

Its model trains through the one training driver (``dggan.training.run``, as ``dggan train``'s does): the trainer
built fresh, as a child or continued, the model's description, stats.jsonl, checkpoints and samples. What is the
search's is here: the task, the device its executor placed it on, rungs, scoring, the CUDA-graph fallback, retries,
TensorBoard, which candidate a checkpoint holds.

``run_candidate`` takes a plain, picklable task and never raises. What happens to a candidate is its
result: a NaN/exploding run is ``diverged``, an architecture that cannot be built or does not fit the
device is ``failed``. Anything else (a full disk, a missing parent checkpoint, data that moved, a bug)
is not the candidate's fault: the result says ``retry`` and the driver stops the search with the error,
leaving the candidate pending so that ``--resume`` continues exactly once the problem is fixed.

An error while a candidate trains with CUDA graphs (a replay that fails, a sticky CUDA error) is first
retried here, once, without graphs (from the candidate's latest checkpoint); only when that fails too does
the result say ``retry``. How each candidate ran (graphed, eager, fell back, retried: ``extra["graphs"]``)
reaches the ledger with its result and its stats.jsonl with the first logged line after each change.

Sharing a GPU (``set_worker_device(device, share)``: ``share`` candidates train on this one's GPU at once):
each may count on 1/share of the card (``check_fits``). A candidate that does not fit its share, or runs out of
memory while sharing, is not failed yet: its result says ``retry_alone``, and the executor runs it again
(``CandidateTask.alone``: from its latest checkpoint) once nothing else runs on that GPU, before the driver
hears of it. Only out of memory with the GPU to itself makes it ``failed``.

Memory: after each candidate, nothing here holds its trainer (no reference cycles; the tracebacks of errors
kept for a retry have their frames cleared), and the caching allocator's unused blocks go back to the driver
(``release_cached_memory``: not after a failed capture in this process, when that call would fail).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._util.files import atomic_write_text
from .._util.plugins import import_plugins
from .._util.tensorboard import Board
from .._util.threads import set_threads
from ..data.base import ImageSource
from ..errors import ConfigError, GenomeError
from ..model.genome import Genome
from ..model.memory import check_fits
from ..runs import ModelFolder, write_model_description
from ..training import devices
from ..training import run as model_run  # the one training driver (dggan train's too)
from ..training.checkpoint import CheckpointError, load_checkpoint
from ..training.cuda_graphs import GraphedStep, graphs_enabled, release_cached_memory
from ..training.run import ModelRun
from ..training.trainer import TrainConfig, Trainer, TrainResult, train_together
from .state import Status

# Set by executors that pin each worker process to one device: the device, and how many candidates share it.
_WORKER_DEVICE: str | None = None
_WORKER_SHARE = 1


def set_worker_device(device: str | None, share: int = 1) -> None:
    """This process trains on ``device``, beside ``share - 1`` other candidates at a time (1: the device is its)."""
    global _WORKER_DEVICE, _WORKER_SHARE
    _WORKER_DEVICE, _WORKER_SHARE = device, max(1, share)


# Preemption (the slurm executor): a signal handler asks the candidate training in this process to save a
# checkpoint at its next logged iteration and then call ``_PREEMPTED`` (which requeues the job and exits), so a
# requeued job loses no training. Logged iterations are iteration boundaries: a resume from there is exact.
_TRAINING = False
_PREEMPTED: Callable[[], None] | None = None


def preempt(then: Callable[[], None]) -> bool:
    """Checkpoint the candidate training in this process at its next logged iteration, then call ``then``.
    False, and nothing asked, when no candidate is training (the caller can stop right away)."""
    global _PREEMPTED
    if not _TRAINING:
        return False
    _PREEMPTED = then
    return True


def _honour_preemption(trainer: Trainer, ckpt_path: Path, board: Board) -> None:
    global _PREEMPTED
    if _PREEMPTED is None:
        return
    then, _PREEMPTED = _PREEMPTED, None
    trainer.save(ckpt_path)  # the requeued job resumes exactly here
    board.close()
    then()


@dataclass(frozen=True)
class CandidateTask:
    candidate_id: int
    genome_json: str
    parent_checkpoint: str | None
    out_dir: str
    train: TrainConfig  # its plugins are imported before the candidate runs (a worker process may not have them)
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
    until: int | None = None  # a rung of successive halving: train up to this iteration, score, stop
    tb_dir: str | None = None  # TensorBoard logs of this candidate (when tensorboard is installed)
    alone: bool = False  # run with the GPU to itself (after running out of memory while sharing it)
    source_genome_key: str | None = None  # the genome parent_checkpoint / continue_from must hold (the ledger's)
    source_candidate: int | None = None  # the candidate parent_checkpoint must say it holds (the ledger's parent)
    # Train on the device its executor placed this worker on (``set_worker_device``; none placed: ``resolve_device``'s
    # choice), not ``train.device``: the search's process does not know where an executor's workers run.
    worker_device: bool = False


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
    retry: bool = False  # not the candidate's fault: leave it pending and stop the search with ``error``
    # Out of memory while sharing its GPU: the executor runs it again alone (never reaches the driver).
    retry_alone: bool = False
    iterations: int | None = None  # the iteration the candidate's checkpoint is at

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CandidateFailure(Exception):
    """The candidate itself cannot be trained (a shape that cannot be built, too large for the device)."""


class ShareTooSmall(CandidateFailure):
    """The candidate does not fit its share of a GPU that several candidates share (it may fit alone)."""


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError)
                                                       and "out of memory" in str(exc).lower())


@functools.lru_cache(maxsize=4)
def open_data_cached(spec: str) -> ImageSource:
    """One copy of a dataset per process, shared by all candidates that process trains."""
    from ..data import open_dataset

    return open_dataset(spec)


def run_candidate(task: CandidateTask) -> CandidateResult:
    try:
        result = _run(task)
    except Exception as exc:  # noqa: BLE001 (the driver decides: a ledger state, or a stop with the error)
        result = _failure(task, exc)
        _drop_traceback(exc)
    _release()  # the candidate's trainer is gone by now: its cached blocks go back too
    return result


def _release() -> None:
    """After a candidate: the caching allocator's unused blocks back to the driver (see ``release_cached_memory``).
    A sticky CUDA error raises here: the next candidate's own work reports it; this one's result stands."""
    with contextlib.suppress(RuntimeError):
        release_cached_memory()


def _share(task: CandidateTask) -> int:
    """Candidates sharing this one's GPU, itself included (1: the GPU to itself)."""
    return 1 if task.alone else _WORKER_SHARE


def _clear_frames(exc: BaseException | None) -> None:
    """Clear the local variables of the finished frames ``exc``'s tracebacks hold (its causes' too) and of the
    finished frames that called them (a frame keeps its caller: ``train_together``'s holds every candidate of its
    group): an error kept for a retry or a message must not keep trainers, and their device memory, alive. Its
    text (files, lines) stays."""
    for error in _chain(exc):
        tb = error.__traceback__
        if tb is not None:
            traceback.clear_frames(tb)  # (skips frames still running)
            frame = tb.tb_frame.f_back
            while frame is not None:
                try:
                    frame.clear()
                except RuntimeError:  # still running: so are the frames above it
                    break
                frame = frame.f_back


def _drop_traceback(exc: BaseException | None) -> None:
    """Done with ``exc`` (its text written out): clear its frames and drop its tracebacks. A frame still running
    that holds it (``outcome`` in ``_run``) would otherwise, once finished, be held by it through the tracebacks'
    callers: a cycle only the cyclic collector frees."""
    _clear_frames(exc)
    for error in _chain(exc):
        error.__traceback__ = None


def _chain(exc: BaseException | None) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in out):
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def run_candidates(tasks: list[CandidateTask]) -> list[CandidateResult]:
    """Several candidates in this process, results in the order of ``tasks``; never raises.

    Each is set up, then all are trained together (``train_together``: on CUDA each on its own stream, so
    one GPU runs them side by side; on the CPU exactly as one after the other), then each is scored. A
    single task is ``run_candidate``. A candidate's failure is its own: the others go on.
    """
    if len(tasks) == 1:
        return [run_candidate(tasks[0])]
    jobs: list[_Job | CandidateResult] = []
    for task in tasks:
        try:
            jobs.append(_prepare(task))
        except Exception as exc:  # noqa: BLE001 (becomes this candidate's result)
            jobs.append(_failure(task, exc))
    training = [job for job in jobs if isinstance(job, _Job) and job.needs_training]
    with _training():
        outcomes = train_together([(job.trainer, job.train_args()) for job in training])
    _clear_failed(outcomes)  # each failed candidate's error holds that candidate, not the whole group
    trained = {id(job): outcome for job, outcome in zip(training, outcomes, strict=True)}
    del outcomes, training
    results = []
    for job in jobs:
        if isinstance(job, CandidateResult):
            results.append(job)
            continue
        results.append(_finish(job, trained.pop(id(job), None)))
        job.trainer = None  # its memory goes (nothing else holds it) before the next candidate is scored
    del jobs
    _release()
    return results


def _clear_failed(outcomes: list[TrainResult | Exception]) -> None:
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            _clear_frames(outcome)


def _finish(job: _Job, outcome: TrainResult | Exception | None) -> CandidateResult:
    """A candidate trained with others: its result (an eager retry first when graphed training failed)."""
    if _graphed_fault(job, outcome):
        job.board.close()
        return _retry_eagerly(job, outcome)  # type: ignore[arg-type]
    try:
        return _conclude(job, outcome)
    except Exception as exc:  # noqa: BLE001
        result = _failure(job.task, exc)
        _drop_traceback(exc)
        return result
    finally:
        job.board.close()


@contextlib.contextmanager
def _training() -> Iterator[None]:
    """While candidates train here, a preemption request waits for their next logged iteration."""
    global _TRAINING
    _TRAINING = True
    try:
        yield
    finally:
        _TRAINING = False


def _run(task: CandidateTask) -> CandidateResult:
    job = _prepare(task)
    with job.board:
        outcome = _train_alone(job)
        if not _graphed_fault(job, outcome):
            return _conclude(job, outcome)
    return _retry_eagerly(job, outcome)  # type: ignore[arg-type]


def _train_alone(job: _Job) -> TrainResult | Exception | None:
    """Train ``job`` in this thread: its result, the exception that stopped it (``_conclude`` re-raises it, or
    names it the candidate's failure: out of memory), or None when it needed no training."""
    if not job.needs_training:
        return None
    try:
        with _training():
            return job.trainer.train(**job.train_args())
    except Exception as exc:  # noqa: BLE001
        return exc


def _graphed_fault(job: _Job, outcome: TrainResult | Exception | None) -> bool:
    """Training with CUDA graphs stopped on an error other than out of memory: worth one try without graphs."""
    return (isinstance(outcome, Exception) and not is_out_of_memory(outcome)
            and isinstance(getattr(job.trainer, "_graph", None), GraphedStep))


def _retry_eagerly(failed: _Job, error: Exception) -> CandidateResult:
    """Train ``failed``'s candidate once more without CUDA graphs (from its latest checkpoint, or from the start),
    and record that it did; when that fails too, the failure says both errors."""
    task = failed.task
    first = f"{type(error).__name__}: {error}"
    with contextlib.suppress(OSError):
        atomic_write_text(failed.folder.graphs_error, "".join(traceback.format_exception(error)))
    record = {**failed.trainer.graph_record(), "mode": "retried eagerly", "why": f"graphed training failed: {first}"}
    _drop_traceback(error)  # written out; its frames held the trainer too
    failed.trainer = None  # its graph's memory goes before the retry allocates
    try:
        # Never after a failed capture in this process; raises after a sticky error: then the retry fails, and
        # says so.
        release_cached_memory()
        job = _prepare(dataclasses.replace(task, train=dataclasses.replace(task.train, cuda_graphs=False)))
        job.graphs = record
        with job.board:
            return _conclude(job, _train_alone(job))
    except Exception as exc:  # noqa: BLE001 (the retry's failure is the result, with what came before it)
        result = _failure(task, exc)
        _drop_traceback(exc)
        result.error = f"{result.error} (retried without CUDA graphs after graphed training failed: {first})"
        result.extra["graphs"] = record
        return result


def _failure(task: CandidateTask, exc: Exception) -> CandidateResult:
    """The result for an exception (called in its ``except`` block): the candidate's own failure, a retry alone on
    its GPU (out of memory while sharing it), or a retry of the search."""
    out = Path(task.out_dir)
    with contextlib.suppress(OSError):
        atomic_write_text(ModelFolder(out).error, traceback.format_exc())
    cause = exc.__cause__ if isinstance(exc, CandidateFailure) and exc.__cause__ is not None else exc
    error = f"{type(cause).__name__}: {cause}"
    short_of_memory = isinstance(exc, ShareTooSmall) or is_out_of_memory(cause)
    if short_of_memory and _share(task) > 1:
        return CandidateResult(task.candidate_id, Status.FAILED, error=error, retry_alone=True)
    if short_of_memory and task.alone:
        error += " (with the GPU to itself, after running out of memory while sharing it)"
    if isinstance(exc, CandidateFailure) or short_of_memory:
        return CandidateResult(task.candidate_id, Status.FAILED, error=error)
    return CandidateResult(task.candidate_id, Status.FAILED, error=error, retry=True)


@dataclass(eq=False)
class _Job(ModelRun):
    """A candidate set up for training: its model's run (``dggan.training.run``: its trainer and its folder), and
    what the search adds to it (the rung it trains up to, TensorBoard, how CUDA graphs went)."""

    task: CandidateTask
    genome: Genome
    config: TrainConfig
    data: ImageSource
    end: int
    every: int
    board: Board  # its TensorBoard writer (does nothing without tensorboard)
    graphs: dict[str, Any] | None = None  # set when this is the eager retry of a graphed run that failed
    _logged_graphs: dict[str, Any] | None = None

    @property
    def out(self) -> Path:
        return self.folder.root

    def graph_record(self) -> dict[str, Any]:
        return self.graphs if self.graphs is not None else self.trainer.graph_record()

    @property
    def ckpt_path(self) -> Path:
        return self.folder.checkpoint

    @property
    def needs_training(self) -> bool:
        return self.trainer.iteration < self.end or (self.trainer.fading and self.end == self.config.iterations)

    def train_args(self) -> dict[str, Any]:
        """Its ``Trainer.train`` arguments (the driver's ``train_kwargs``): up to its rung, lines by ``on_log``."""
        return self.train_kwargs(self.end, progress=self.task.progress, checkpoint_every=self.every,
                                 desc=f"{self.out.name} {self.genome.resolution}px", on_log=self.on_log)

    def on_log(self, row: dict[str, float]) -> None:
        graphs = self.graph_record()
        changed = graphs != self._logged_graphs  # how it runs: on the first line and whenever that changes
        self._logged_graphs = graphs
        self.log(row, **({"graphs": graphs} if changed else {}))
        self.board.scalars({k: v for k, v in row.items() if k != "iteration"}, int(row["iteration"]), "train/")
        _honour_preemption(self.trainer, self.ckpt_path, self.board)


def _prepare(task: CandidateTask) -> _Job:
    # The settings' plugins first (TrainConfig's ``plugins``, in ``task.train``): in a worker process of its own,
    # the loss, metric or action names they register are known only once they are imported here.
    if isinstance(task.train, dict):  # pickled before tasks carried a TrainConfig (a SLURM job requeued since)
        import_plugins(task.train.get("plugins") or (), f"candidate {task.candidate_id}: plugins")
        placed = task.train.get("device") in (None, "worker")
        task = dataclasses.replace(task, worker_device=placed, train=TrainConfig.from_dict(
            {**task.train, "device": "cpu"} if placed else task.train))
    import_plugins(task.train.plugins, f"candidate {task.candidate_id}: plugins")
    out = Path(task.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if task.threads:
        set_threads(task.threads)
    genome = Genome.from_json(task.genome_json, source=f"candidate {task.candidate_id}")
    config = task.train
    if task.worker_device:  # where its executor placed this worker
        config = dataclasses.replace(config, device=_WORKER_DEVICE or devices.resolve_device(None))
    runtime = model_run.runtime_of(config)  # how to run: this task's, not the checkpoint's
    share = _share(task)
    if share > 1:  # its share of the GPU, before anything is built (the trainer checks the whole card)
        try:
            check_fits(genome, config.batch_size, config.device, config.memory_limit_gb,
                       graphs=graphs_enabled(config.device.split(":")[0], config.cuda_graphs),
                       self_check=config.graph_self_check, share=share)
        except ConfigError as exc:
            raise ShareTooSmall(str(exc)) from None
    data = open_data_cached(task.data)
    folder = ModelFolder(out)
    write_model_description(folder, genome.to_json())  # also for a genome that cannot be built

    trainer = model_run.resume_in(folder, genome, data, runtime)  # this candidate's interrupted run, if any
    if trainer is None and task.continue_from is not None:
        trainer = model_run.build_trainer(data, resume=_source(task, task.continue_from), until=config.iterations,
                                          runtime=runtime)
        trainer.train_seconds = 0.0  # this candidate's clock counts its own training, not its source's
    if trainer is None:
        parent = None if task.parent_checkpoint is None else _source(task, task.parent_checkpoint)
        try:
            trainer = model_run.build_trainer(data, config, genome=genome, parent=parent,
                                              policy=task.inherit_policy,  # type: ignore[arg-type]
                                              new_layers=task.new_layer_init)  # type: ignore[arg-type]
        except (ConfigError, GenomeError, RuntimeError) as exc:  # this architecture cannot be built here
            raise CandidateFailure(str(exc)) from exc
    trainer.candidate = task.candidate_id  # its checkpoints say whose model they hold
    every = task.checkpoint_every or max(1, config.iterations // 4)
    end = config.iterations if task.until is None else min(task.until, config.iterations)
    board = Board(task.tb_dir, purge_step=trainer.iteration + 1)  # hides an interrupted writer's tail
    job = _Job(folder, trainer, task=task, genome=genome, config=config, data=data, end=end, every=every, board=board)
    job.begin()  # genome.json, inheritance.json; and stats.jsonl as the board: nothing past where it starts
    return job


def _source(task: CandidateTask, path: str) -> Any:
    """The checkpoint a candidate starts from, checked to hold the genome the ledger says it holds: a parent's
    checkpoint swapped for a sibling's stops the search (this is not the candidate's fault) instead of passing
    on the wrong weights."""
    ckpt = load_checkpoint(path)
    held = ckpt.state.get("candidate")  # (checkpoints from before candidates were recorded say nothing)
    if task.source_candidate is not None and held is not None and held != task.source_candidate:
        raise CheckpointError(f"{path} holds candidate {held}'s model, but the ledger says candidate"
                              f" {task.candidate_id} starts from candidate {task.source_candidate}'s: the file was"
                              " replaced by another model's; restore it from a backup, then --resume")
    if task.source_genome_key is not None and ckpt.genome.key() != task.source_genome_key:
        raise CheckpointError(f"{path} holds genome {ckpt.genome.key()} ({ckpt.genome.summary()}), but the ledger"
                              f" says the model candidate {task.candidate_id} starts from has genome"
                              f" {task.source_genome_key}: the file was replaced by another model's; restore it from"
                              " a backup, then --resume")
    return ckpt


def _conclude(job: _Job, outcome: TrainResult | Exception | None) -> CandidateResult:
    """Checkpoint, sample and score a candidate after its training (``outcome``; None: it needed none)."""
    task, trainer, ckpt_path = job.task, job.trainer, job.ckpt_path
    graphs = job.graph_record()  # how it trained: into the ledger with the result (its ``extra``)
    if isinstance(outcome, Exception):
        if isinstance(outcome, RuntimeError) and is_out_of_memory(outcome):
            raise CandidateFailure(f"does not fit the device: {outcome}") from outcome
        raise outcome
    if outcome is not None:
        if outcome.status != Status.DONE:
            return CandidateResult(task.candidate_id, Status(outcome.status), train_seconds=trainer.train_seconds,
                                   error=outcome.reason, extra={"stats": outcome.stats, "graphs": graphs},
                                   iterations=trainer.iteration)
        job.save()
        _honour_preemption(trainer, ckpt_path, job.board)  # asked for after the last logged iteration
    elif not ckpt_path.exists():
        job.save()  # e.g. a final training of 0 extra iterations: the result still lives here

    start = time.perf_counter()
    if not torch.isfinite(trainer.sample(8, seed=1)).all():
        return CandidateResult(task.candidate_id, Status.DIVERGED, train_seconds=trainer.train_seconds,
                               eval_seconds=time.perf_counter() - start, iterations=trainer.iteration,
                               error="the EMA generator's output is not finite", extra={"graphs": graphs})
    scores = evaluate_trainer(trainer, job.data, task)
    value = float(scores["value"])
    job.board.scalars({task.metric: value}, trainer.iteration, "metric/")
    if task.sample_grid:
        samples = job.save_samples(task.sample_grid)
        job.board.images("samples", samples, trainer.iteration)
    eval_seconds = time.perf_counter() - start
    extra = {**{k: v for k, v in scores.items() if k not in ("value", "metric")}, "graphs": graphs}
    extra.update(device=str(trainer.device), threads=torch.get_num_threads())  # search.cost: device-hours
    # The driver normalises: only it knows the baseline at this candidate's route iterations.
    return CandidateResult(task.candidate_id, Status.DONE, metric=value, extra=extra,
                           train_seconds=trainer.train_seconds, eval_seconds=eval_seconds, checkpoint=str(ckpt_path),
                           iterations=trainer.iteration)


def evaluate_trainer(trainer: Trainer, data: ImageSource, task: CandidateTask) -> dict[str, Any]:
    from ..metrics import evaluate_generator

    opts = dict(task.eval_options)
    batch = int(opts.pop("batch_size", 64))
    seed = int(opts.pop("seed", 0))
    return evaluate_generator(task.metric, trainer.G_ema.eval(), data, device=str(trainer.device), batch_size=batch,
                              seed=seed, progress=task.progress, **opts)
