"""Running candidates: a ledger row becomes a worker task, tasks go to the executor rung by rung, results
come back into the ledger as they finish, and a fault that is not the candidate's stops the search.

A ``Runner`` keeps no state that the ledger does not hold: the search (``driver``) and the ProgGAN route
(``proggan``) both train their candidates through it, so each is resumable in the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .._util.durations import duration
from .._util.progress import progress_bar
from ..errors import SearchError
from ..execution.executors import Executor, runs_in_process
from ..execution.state import Status
from ..execution.worker import CandidateResult, CandidateTask
from ..metrics.refstats import default_cache_dir
from ..runs import ModelFolder, RunLayout
from ..training.checkpoint import load_checkpoint
from .algorithm import best_candidate, halve
from .baseline import Curves
from .config import RESUME_HINT, SearchConfig
from .ledger import WAITING_KEY, CandidateRow, Ledger

# (candidate, rung index, (its own iterations at that rung, metric), whether it is its last rung)
Todo = tuple[CandidateRow, int, tuple[int, str], bool]


class IterationProgress:
    """Iterations a batch of tasks has trained so far and the time left at the rate so far, read from each task's
    stats.jsonl (every executor's worker writes a line every ``log_every`` iterations): what a progress line says
    while no candidate of the batch has finished ("0/1 cand done" for minutes says nothing)."""

    def __init__(self, tasks: list[CandidateTask], clock: Callable[[], float] = time.monotonic):
        self.spans = []
        for t in tasks:
            stats = ModelFolder(Path(t.out_dir)).stats
            end = t.until if t.until is not None else int(t.train.iterations)
            self.spans.append((stats, min(end, _start_iteration(stats, t.continue_from)), end))
        self.total = sum(end - start for _, start, end in self.spans)
        self.clock = clock
        self.t0 = clock()

    def trained(self) -> int:
        from .watch import newest_line

        done = 0
        for stats, start, end in self.spans:
            line = newest_line(stats)
            if line is not None and isinstance(line.row.get("iteration"), (int, float)):
                done += int(max(0, min(end, line.row["iteration"]) - start))
        return done

    def __call__(self) -> str:
        if self.total <= 0:
            return ""
        done = self.trained()
        text = f"{done:,}/{self.total:,} iterations"
        if 0 < done < self.total:
            left = (self.clock() - self.t0) * (self.total - done) / done
            text += f", about {duration(left)} left"
        return text


def _start_iteration(stats: Path, continue_from: str | None) -> int:
    """Where a task's training starts: its folder's newest stats line (a later rung, a resumed candidate), else the
    checkpoint it continues (a baseline point), else 0 (a new child)."""
    from .watch import newest_line

    line = newest_line(stats)
    if line is not None and isinstance(line.row.get("iteration"), (int, float)):
        return int(line.row["iteration"])
    if continue_from:
        try:
            return int(load_checkpoint(continue_from, tensors=False).state["iteration"])
        except Exception:  # only a progress estimate: the task itself reports a bad checkpoint
            return 0
    return 0


class Runner:
    """One run folder's candidates: builds their tasks, hands them to the executor, records the results."""

    def __init__(self, run_dir: str | Path, config: SearchConfig, executor: Executor, progress: bool = True,
                 log: Callable[[str], None] | None = None, tb_root: Path | None = None, curves: Curves | None = None):
        self.layout = RunLayout(run_dir)
        self.run_dir = self.layout.root
        # TensorBoard logs: RUN/tb; a baseline trained inside a run logs under that run's RUN/tb/baseline.
        self.tb_root = tb_root or self.layout.tb
        self.config = config
        self.executor = executor
        self.progress = progress
        self.log = log or self._log
        self.ledger = Ledger.open(self.layout.ledger)
        # In the driver's process, candidates train on its device; elsewhere, each worker picks its own.
        self.device = config.resolved_device() if runs_in_process(executor) else "worker"
        # What scores are normalised by (the owner trains the baseline and updates it; none: raw metrics).
        self.curves = curves if curves is not None else Curves()

    def close(self) -> None:
        """Close the ledger (its write-ahead log is folded back in, so the run folder is left clean)."""
        self.ledger.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log(self, message: str) -> None:
        say(self.layout, message, self.progress)

    # ---------------------------------------------------------------- one candidate's task
    def eval_options(self, seed: int | None = None) -> dict[str, Any]:
        """How the worker scores: the search's evaluation seed (``config.seed``), or ``seed`` (a selection seed)."""
        opts: dict[str, Any] = {"batch_size": self.config.eval_batch_size,
                                "seed": self.config.seed if seed is None else seed}
        if self.config.inception_weights:
            opts["inception_weights"] = self.config.inception_weights
        opts["cache_dir"] = self.config.cache_dir or str(default_cache_dir())
        return opts

    def checkpoint_of(self, candidate: int) -> str:
        row = self.ledger.get(candidate)
        return str(self.layout.resolve(row.checkpoint) if row.checkpoint else self.layout.checkpoint(candidate))

    def task(self, row: CandidateRow, iterations: int, out_dir: Path, parent_checkpoint: str | None = None,
             continue_from: str | None = None, eval_seed: int | None = None) -> CandidateTask:
        # In this process, the driver's device; elsewhere the device each worker's executor placed it on (the
        # config's "cpu" stands for it: ``worker_device``).
        placed = self.device == "worker"
        train = self.config.train_config(iterations, seed=row.seed, device="cpu" if placed else self.device)
        # The genome the checkpoint it starts from must hold (checked by the worker): a file swapped for another
        # model's would otherwise pass on the wrong weights without a word.
        source = (row.genome if continue_from is not None else
                  self.ledger.get(row.parent).genome if parent_checkpoint is not None and row.parent is not None
                  else None)
        return CandidateTask(
            candidate_id=row.id, genome_json=row.genome.to_json(indent=None), parent_checkpoint=parent_checkpoint,
            out_dir=str(out_dir), train=train, data=self.config.data, metric=self.config.metric,
            inherit_policy=self.config.inherit_policy, new_layer_init=self.config.new_layer_init,
            checkpoint_every=self.config.checkpoint_every, sample_grid=self.config.sample_grid,
            eval_options=self.eval_options(eval_seed), continue_from=continue_from,
            progress=self.progress and runs_in_process(self.executor),  # bars of other processes would garble
            threads=self.config.threads, tb_dir=str(self.tb_root / out_dir.name) if self.config.tensorboard else None,
            source_genome_key=None if source is None else source.key(),
            source_candidate=row.parent if parent_checkpoint is not None else None, worker_device=placed)

    def score_task(self, row: CandidateRow, checkpoint: Path, iteration: int, seed: int,
                   samples: bool = False) -> CandidateTask:
        """Score ``row``'s model in ``checkpoint`` (at its own ``iteration``) with evaluation seed ``seed`` and
        train nothing: the worker resumes the checkpoint of its folder, has nothing to train before ``until``
        (a budget one past it, so no fade-in is finished either) and scores it. Writes no TensorBoard point
        (and no samples unless asked), so the model's own log keeps its scores."""
        folder = checkpoint.parent
        if checkpoint != ModelFolder(folder).checkpoint:
            raise SearchError(f"internal: {checkpoint} is not the checkpoint of a model folder")
        task = self.task(row, iteration + 1, folder, eval_seed=seed)
        return dataclasses.replace(task, until=iteration, tb_dir=None,
                                   sample_grid=self.config.sample_grid if samples else 0)

    def own_budget(self, row: CandidateRow) -> int:
        return row.iterations or (self.config.iterations if row.parent is not None
                                  else self.config.initial_iterations or self.config.iterations)

    def candidate_task(self, row: CandidateRow, rung: tuple[int, str] | None = None) -> CandidateTask:
        """Train ``row``: from scratch, as a child of its parent, or (no action) continuing its parent; with
        ``rung`` = (iterations, metric) only up to that many of its own iterations, scored with that metric."""
        own = self.own_budget(row)
        start = 0
        if row.parent is None:
            task = self.task(row, own, self.layout.candidate(row.id))
        else:
            parent = self.checkpoint_of(row.parent)
            if row.action is None:  # a baseline point: the same network trained ``own`` iterations more
                start = int(load_checkpoint(parent, tensors=False).state["iteration"])
                task = self.task(row, start + own, self.layout.candidate(row.id), continue_from=parent)
            else:
                task = self.task(row, own, self.layout.candidate(row.id), parent_checkpoint=parent)
        if rung is not None and rung[0] < own:
            task = dataclasses.replace(task, until=start + rung[0], metric=rung[1])
        return task

    # ---------------------------------------------------------------- results
    def record(self, result: CandidateResult, row: CandidateRow, rung: int, rung_its: int, last: bool) -> None:
        """A candidate's score at a rung (the last rung is its whole budget: its result)."""
        route = (row.route_iterations or 0) - self.own_budget(row) + rung_its
        curve = self.curves.full if last else self.curves.rungs
        normalized, info = None, {}
        if result.status == Status.DONE and curve is not None:
            normalized, info = curve.normalize(result.metric, row.resolution, route)
        if result.status == Status.DONE:
            metric_name = self.config.metric if last else (self.config.rung_metric or self.config.metric)
            self.ledger.add_rung(candidate=row.id, rung=rung, iterations=rung_its, route_iterations=route,
                                 metric=result.metric, normalized_metric=normalized,
                                 extra={"metric": metric_name, **info})
        checkpoint = None if result.checkpoint is None else self.layout.relative(result.checkpoint)
        if last or result.status != Status.DONE:  # a candidate that diverged at an early rung ends there
            fields: dict[str, Any] = {}
            if not last:
                fields = {"iterations": result.iterations if result.iterations is not None else rung_its}
            self.ledger.update(result.candidate_id, status=result.status,
                               metric=result.metric if last else None, normalized_metric=normalized if last else None,
                               extra={**result.extra, **info}, train_seconds=result.train_seconds,
                               eval_seconds=result.eval_seconds, checkpoint=checkpoint, error=result.error, **fields)
        else:
            self.ledger.update(result.candidate_id, status=Status.PENDING, train_seconds=result.train_seconds,
                               checkpoint=checkpoint)

    def train_candidates(self, rows: list[CandidateRow], desc: str, step: int | None = None) -> None:
        """Train and score ``rows`` rung by rung (without successive halving: one rung, the whole budget),
        recording every result as it comes; with ``step`` the children of that step compete at each rung."""
        if not rows:
            return
        ids = {r.id for r in rows}
        rung_count = max(len(self.config.rungs(self.own_budget(r))) for r in rows)
        for rung in range(rung_count):
            current = [r for r in self.ledger.candidates() if r.id in ids]
            alive = [r for r in current if r.status in (Status.PENDING, Status.RUNNING)]
            if not alive:
                return
            scored = {g.candidate for g in self.ledger.rungs() if g.candidate in ids and g.rung == rung}
            todo = []
            for r in alive:
                rungs = self.config.rungs(self.own_budget(r))
                last = rung == len(rungs) - 1
                if rung < len(rungs) and (r.id not in scored or last):
                    todo.append((r, rung, rungs[rung], last))
            label = desc if rung_count == 1 else f"{desc} rung {rung + 1}/{rung_count}"
            self.run_tasks(todo, label)
            if step is not None and rung < rung_count - 1:
                self.halve(step, rung, ids)

    def run_tasks(self, todo: list[Todo], desc: str) -> None:
        if not todo:
            return
        by_id = {r.id: (r, rung, its, last) for r, rung, (its, _), last in todo}
        tasks = [self.candidate_task(r, rung_spec) for r, _, rung_spec, _ in todo]
        self.ledger.update_many(list(by_id), status=Status.RUNNING)
        # A terminal gets a bar; a log file (nohup, a batch job) gets a plain line per finished candidate.
        bar = progress_bar(total=len(tasks), desc=desc, unit="cand", disable=None if self.progress else True,
                           detail=IterationProgress(tasks) if self.progress else None)
        # A ProgGAN route's own runner (baseline "none") holds its own curve: ProgGAN over itself says nothing.
        full = self.curves.full
        normalized = full is not None and full.kind != "none" and self.config.baseline != "none"
        label = f"best {self.config.metric}/ProgGAN"
        if hasattr(self.executor, "on_wait"):  # the slurm executor says why its jobs wait (squeue's reason)
            self.executor.on_wait = lambda message: self._waiting(bar, message)
        try:
            for result in self.executor.run(tasks):
                if result.retry:
                    unfinished = [r.id for r in self.ledger.candidates() if r.id in by_id
                                  and r.status == Status.RUNNING and r.id != result.candidate_id]
                    self.ledger.update_many(unfinished, status=Status.PENDING)
                    self.stop(result)
                row, rung, its, last = by_id[result.candidate_id]
                self.record(result, row, rung, its, last)
                best = (best_candidate(self.ledger.candidates(status=Status.DONE), self.config.target_resolution)
                        if normalized else None)
                bar.set_postfix_str(f"{label} {best.normalized_metric:.3f}"
                                    if best is not None and best.normalized_metric is not None else "")
                bar.update(1)
                if result.status != Status.DONE:
                    self.log(f"candidate {result.candidate_id}: {result.status} ({result.error})")
        except BaseException:
            # Stopped (a refused submission, an interrupt): what this batch left unfinished is pending again, so
            # no view shows it running and --resume picks it up.
            unfinished = [r.id for r in self.ledger.candidates() if r.id in by_id and r.status == Status.RUNNING]
            self.ledger.update_many(unfinished, status=Status.PENDING)
            raise
        finally:
            if hasattr(self.executor, "on_wait"):
                self._waiting(None, None)
                self.executor.on_wait = None
            bar.close()

    def _waiting(self, bar: Any, message: str | None) -> None:
        """What the executor says while its candidates wait (e.g. SLURM's pending reason): on the progress line
        and in the ledger, where ``dggan status`` reads it; None clears it."""
        if bar is not None:
            bar.set_postfix_str(message or "")
        if message:
            self.log(message)
        self.ledger.set_meta(WAITING_KEY, json.dumps({"message": message, "at": time.time()}) if message else "")

    def halve(self, step: int, rung: int, ids: set[int]) -> None:
        """The verdict of ``rung`` (``algorithm.halve``) on the step's children still in: made once, recorded
        with the statuses."""
        if self.ledger.pruned_at(step, rung) is not None:
            return
        alive = [r for r in self.ledger.candidates(step=step) if r.id in ids
                 and r.status in (Status.PENDING, Status.RUNNING)]
        scores = {g.candidate: g for g in self.ledger.rungs() if g.rung == rung and g.candidate in ids}
        go_on, stop = halve(alive, lambda r: scores[r.id].normalized_metric if r.id in scores else None,
                            self.config.halving_eta, self.config.top_k, self.config.rules().rung_rng(step, rung))
        pruned = {r.id: (scores[r.id].iterations, scores[r.id].route_iterations) for r in stop if r.id in scores}
        self.ledger.prune(step, rung, pruned)
        if pruned:
            self.log(f"step {step} rung {rung + 1}: {len(go_on)} of {len(alive)} children go on,"
                     f" {len(pruned)} pruned")

    def stop(self, result: CandidateResult) -> None:
        """A fault that is not the candidate's: keep it pending (and everything in flight unfinished) and stop,
        so that ``--resume`` continues exactly once the problem is fixed."""
        self.ledger.update(result.candidate_id, status=Status.PENDING, error=f"interrupted: {result.error}")
        message = (f"candidate {result.candidate_id} could not be trained: {result.error}. This is not the"
                   f" candidate's fault, so it stays pending; fix the cause, then continue with"
                   f" `dggan search --resume {self.run_dir}` (nothing finished is lost) {RESUME_HINT}")
        self.log(message)
        raise SearchError(message)


def say(layout: RunLayout, message: str, progress: bool = True) -> None:
    """To the terminal (above the progress bars) and to RUN/log.txt, so a quiet run still says it."""
    if progress:
        tqdm.write(message)
    else:
        print(message, file=sys.stderr, flush=True)
    with contextlib.suppress(OSError), open(layout.log, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
