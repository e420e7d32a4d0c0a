"""Algorithm 1 (top-K greedy pruning with random action sampling) as a thin loop over the ledger.

The driver keeps no state of its own: at every point it reads what is done from the ledger and does
the next thing (train pending candidates, select the top-K, sample the next step's children, run the
final training). A killed search therefore resumes by simply running the loop again. The rules of
Algorithm 1 live in ``algorithm``, the baseline curve in ``baseline``; this module only sequences them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .._util.files import atomic_write_json
from .._util.tensorboard import INSTALL_HINT, Board
from .._util.tensorboard import available as board_available
from .._util.threads import set_threads
from ..errors import SearchError
from ..metrics.refstats import default_cache_dir
from ..model.actions import Action, apply_action
from ..runs import LEDGER_NAME, OPTIONS_NAME, RunLayout, run_lock
from ..training.checkpoint import CheckpointError, load_checkpoint
from .algorithm import best_candidate, best_per_resolution, halving_keep
from .baseline import BaselineCurve, baseline_config, longest_route, resolutions, static_curve
from .config import SearchConfig, create_run, load_run_config
from .executors import Executor, executor_for
from .ledger import CandidateRow, FinalRow, Ledger
from .preflight import check_data, check_device, check_executor, check_metric, data_channels, validate_new_search
from .state import Status
from .worker import CandidateResult, CandidateTask

__all__ = ["LEDGER_NAME", "OPTIONS_NAME", "Search", "SearchError", "SearchSummary", "baseline_config",
           "run_baseline", "run_search", "validate_new_search"]


@dataclass
class SearchSummary:
    run_dir: Path
    steps: int
    candidates: int
    best_id: int | None  # best finished candidate at the target resolution
    best_normalized: float | None
    final_metric: float | None
    final_status: str | None
    wall_seconds: float  # this session (a resumed search counts from the resume)
    train_seconds: float  # the whole run's training and scoring, every session and the baseline included
    eval_seconds: float
    total_wall_seconds: float = 0.0  # every session of this run
    final_normalized: float | None = None
    final_route_iterations: int | None = None
    final_needed: bool = True  # whether the settings ask for a final training

    @property
    def ok(self) -> bool:
        """Whether the search produced what it promises: a model at the target resolution (trained further
        when final training was asked for)."""
        if self.best_id is None:
            return False
        return self.final_status == Status.DONE if self.final_needed else True

    @property
    def problem(self) -> str:
        if self.best_id is None:
            return "no candidate finished at the target resolution (see the candidates' errors: dggan ls RUN)"
        if self.final_needed and self.final_status != Status.DONE:
            return f"the final training did not finish (status {self.final_status}; see RUN/best/error.txt)"
        return ""


# ---------------------------------------------------------------------- the search
class Search:
    """One run folder's search: reads the ledger, does the next thing, writes the result back."""

    def __init__(self, run_dir: str | Path, config: SearchConfig, executor: Executor, progress: bool = True,
                 log: Callable[[str], None] | None = None, tb_root: Path | None = None):
        self.layout = RunLayout(run_dir)
        # TensorBoard logs: RUN/tb; a baseline searched inside a run logs under that run's RUN/tb/baseline.
        self.tb_root = tb_root or self.layout.tb
        self.run_dir = self.layout.root
        self.config = config
        self.rules = config.rules()
        self.executor = executor
        self.progress = progress
        self.log = log or self._log
        self.ledger = Ledger.open(self.layout.ledger)
        self.device = "worker" if executor.name != "inprocess" else config.resolved_device()
        self._curve = static_curve(config)
        self._rung_curve = self._curve  # intermediate rungs' baseline (auto: the baseline's own rung scores)

    def _log(self, message: str) -> None:
        """To the terminal (above the progress bars) and to RUN/log.txt, so a quiet run still says it."""
        if self.progress:
            tqdm.write(message)
        else:
            print(message, file=sys.stderr, flush=True)
        with contextlib.suppress(OSError), open(self.layout.log, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    # ---------------------------------------------------------------- one candidate's task
    def _eval_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"batch_size": self.config.eval_batch_size, "seed": self.config.seed}
        if self.config.inception_weights:
            opts["inception_weights"] = self.config.inception_weights
        opts["cache_dir"] = self.config.cache_dir or str(default_cache_dir())
        return opts

    def _checkpoint_of(self, candidate: int) -> str:
        row = self.ledger.get(candidate)
        return str(self.layout.resolve(row.checkpoint) if row.checkpoint else self.layout.checkpoint(candidate))

    def _task(self, row: CandidateRow, iterations: int, out_dir: Path, parent_checkpoint: str | None = None,
              continue_from: str | None = None) -> CandidateTask:
        train = self.config.train_config(iterations, seed=row.seed, device="cpu").to_dict()
        train["device"] = self.device
        return CandidateTask(
            candidate_id=row.id, genome_json=row.genome.to_json(indent=None), parent_checkpoint=parent_checkpoint,
            out_dir=str(out_dir), train=train, data=self.config.data, metric=self.config.metric,
            inherit_policy=self.config.inherit_policy, new_layer_init=self.config.new_layer_init,
            checkpoint_every=self.config.checkpoint_every, sample_grid=self.config.sample_grid,
            eval_options=self._eval_options(), continue_from=continue_from,
            progress=self.progress and self.executor.name == "inprocess",  # bars of other processes would garble
            threads=self.config.threads, tb_dir=str(self.tb_root / out_dir.name) if self.config.tensorboard else None)

    def own_budget(self, row: CandidateRow) -> int:
        return row.iterations or (self.config.iterations if row.parent is not None
                                  else self.config.initial_iterations or self.config.iterations)

    def _candidate_task(self, row: CandidateRow, rung: tuple[int, str] | None = None) -> CandidateTask:
        """Train ``row``: from scratch, as a child of its parent, or (no action) continuing its parent; with
        ``rung`` = (iterations, metric) only up to that many of its own iterations, scored with that metric."""
        own = self.own_budget(row)
        start = 0
        if row.parent is None:
            task = self._task(row, own, self.layout.candidate(row.id))
        else:
            parent = self._checkpoint_of(row.parent)
            if row.action is None:  # a baseline point: the same network trained ``own`` iterations more
                start = int(load_checkpoint(parent, tensors=False).state["iteration"])
                task = self._task(row, start + own, self.layout.candidate(row.id), continue_from=parent)
            else:
                task = self._task(row, own, self.layout.candidate(row.id), parent_checkpoint=parent)
        if rung is not None and rung[0] < own:
            task = dataclasses.replace(task, until=start + rung[0], metric=rung[1])
        return task

    def _record(self, result: CandidateResult, row: CandidateRow, rung: int, rung_its: int, last: bool) -> None:
        """A candidate's score at a rung (the last rung is its whole budget: its result)."""
        route = (row.route_iterations or 0) - self.own_budget(row) + rung_its
        curve = self._curve if last else self._rung_curve
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

    def train(self, rows: list[CandidateRow], desc: str, step: int | None = None) -> None:
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
            self._run_tasks(todo, label)
            if step is not None and rung < rung_count - 1:
                self._halve(step, rung, ids)

    def _run_tasks(self, todo: list[tuple[CandidateRow, int, tuple[int, str], bool]], desc: str) -> None:
        if not todo:
            return
        by_id = {r.id: (r, rung, its, last) for r, rung, (its, _), last in todo}
        tasks = [self._candidate_task(r, rung_spec) for r, _, rung_spec, _ in todo]
        self.ledger.update_many(list(by_id), status=Status.RUNNING)
        bar = tqdm(total=len(tasks), desc=desc, unit="cand", disable=None if self.progress else True)
        label = f"best {self.config.metric}/ProgGAN" if self._curve is not None and self._curve.kind != "none" \
            else f"best {self.config.metric}"
        try:
            for result in self.executor.run(tasks):
                if result.retry:
                    unfinished = [r.id for r in self.ledger.candidates() if r.id in by_id
                                  and r.status == Status.RUNNING and r.id != result.candidate_id]
                    self.ledger.update_many(unfinished, status=Status.PENDING)
                    self._stop(result)
                row, rung, its, last = by_id[result.candidate_id]
                self._record(result, row, rung, its, last)
                best = self.ledger.best_normalized()
                bar.set_postfix_str(f"{label} {best:.3f}" if best is not None else "")
                bar.update(1)
                if result.status != Status.DONE:
                    self.log(f"candidate {result.candidate_id}: {result.status} ({result.error})")
        finally:
            bar.close()

    def _halve(self, step: int, rung: int, ids: set[int]) -> None:
        """The verdict of ``rung``: the step's children still in, ranked by their normalised rung score; the
        best 1/eta (never fewer than K) go on, the others are pruned. Made once, recorded with the statuses."""
        if self.ledger.pruned_at(step, rung) is not None:
            return
        alive = [r for r in self.ledger.candidates(step=step) if r.id in ids
                 and r.status in (Status.PENDING, Status.RUNNING)]
        scores = {g.candidate: g for g in self.ledger.rungs() if g.rung == rung and g.candidate in ids}

        def key(r: CandidateRow) -> tuple[bool, float, int]:
            value = scores[r.id].normalized_metric if r.id in scores else None
            return (value is None, value or 0.0, r.id)

        ranked = sorted(alive, key=key)
        keep = halving_keep(len(ranked), self.config.halving_eta, self.config.top_k)
        pruned = {r.id: (scores[r.id].iterations, scores[r.id].route_iterations) for r in ranked[keep:]
                  if r.id in scores}
        self.ledger.prune(step, rung, pruned)
        if pruned:
            self.log(f"step {step} rung {rung + 1}: {len(ranked) - len(pruned)} of {len(ranked)} children go on,"
                     f" {len(pruned)} pruned")

    def _stop(self, result: CandidateResult) -> None:
        """A fault that is not the candidate's: keep it pending (and everything in flight unfinished) and stop,
        so that ``--resume`` continues exactly once the problem is fixed."""
        self.ledger.update(result.candidate_id, status=Status.PENDING, error=f"interrupted: {result.error}")
        message = (f"candidate {result.candidate_id} could not be trained: {result.error}. This is not the"
                   f" candidate's fault, so it stays pending; fix the cause, then continue with"
                   f" `dggan search --resume {self.run_dir}` (nothing finished is lost)")
        self.log(message)
        raise SearchError(message)

    # ---------------------------------------------------------------- the baseline
    def baseline(self, needs: dict[int, int] | None = None) -> BaselineCurve:
        """The baseline curve, trained (``auto``) far enough to cover ``needs`` ({res: route iterations})."""
        if self._curve is not None and (not needs or self.config.baseline != "auto"
                                        or all(self._curve.covers(r, i) for r, i in needs.items())):
            if self.config.baseline != "auto" and self.ledger.get_meta("baseline") is None:
                self.ledger.set_meta("baseline", self._curve.to_json())  # what the report shows as used
            return self._curve
        if self.config.baseline != "auto":
            raise SearchError("internal: a static baseline has no curve")  # static_curve always returns one
        stored = self.ledger.get_meta("baseline")
        if stored and self._curve is None:
            self._curve = BaselineCurve.from_json(stored)
            rungs = self.ledger.get_meta("baseline_rungs")
            self._rung_curve = BaselineCurve.from_json(rungs) if rungs else self._curve
            if not needs or all(self._curve.covers(r, i) for r, i in needs.items()):
                return self._curve
        sub = self.layout.baseline
        if not sub.ledger.exists():
            create_run(sub.root, baseline_config(self.config))
        proggan = Search(sub.root, baseline_config(self.config), self.executor, self.progress, self.log,
                         tb_root=self.tb_root / "baseline")
        wanted = {res: max(i, (needs or {}).get(res, 0)) for res, i in self.baseline_needs().items()}
        self._curve = proggan.extend_route(wanted, desc="baseline (ProgGAN)")
        # Intermediate rungs are compared with the baseline's own scores at the same fraction of its budget.
        self._rung_curve = BaselineCurve.from_rungs(proggan.ledger.candidates(), proggan.ledger.rungs(),
                                                    self.config.rung_metric or self.config.metric, "auto")
        self.ledger.set_meta("baseline_rungs", self._rung_curve.to_json())
        self.ledger.set_meta("baseline", self._curve.to_json())
        return self._curve

    def baseline_needs(self) -> dict[int, int]:
        """The least the auto baseline must cover: the ProgGAN route's first point at every resolution."""
        first = self.config.initial_iterations or self.config.iterations
        return {res: first + k * self.config.iterations for k, res in enumerate(resolutions(self.config))}

    def extend_route(self, needs: dict[int, int], desc: str = "baseline") -> BaselineCurve:
        """(A baseline run.) Train the ProgGAN route, then continue it at each resolution, scoring every
        ``iterations``, until its route iterations reach ``needs[res]``."""
        step_size = self.config.iterations
        first = self.config.initial_iterations or step_size
        top = max(needs)
        while True:
            rows = self.ledger.candidates()
            broken = [r for r in rows if r.status in (Status.DIVERGED, Status.FAILED)]
            if broken:
                r = broken[0]
                raise SearchError(f"the ProgGAN baseline {r.status} at {r.resolution}px (candidate {r.id} of"
                                  f" {self.run_dir}: {r.error}); candidates cannot be normalised without it. Lower"
                                  " lr, or use a fixed baseline (--set baseline={res: value}) or baseline=none")
            new: list[dict[str, Any]] = []
            if not rows:
                genome = self.config.initial_genomes(data_channels(self.config))[0]
                new.append({"step": 0, "parent": None, "action": None, "genome": genome,
                            "seed": self.config.seed * 100_003 + 1, "iterations": first, "route_iterations": first})
            for res in resolutions(self.config):
                if not rows or res > top:
                    break
                chain = sorted((r for r in rows if r.resolution == res), key=lambda r: r.route_iterations or 0)
                if not chain:
                    below = sorted((r for r in rows if r.resolution == res // 2), key=lambda r: r.route_iterations or 0)
                    if below and below[0].status == Status.DONE:  # ProgGAN grows right after its first budget
                        route = below[0]
                        new.append({"step": route.step + 1, "parent": route.id, "action": Action("grow_res"),
                                    "genome": apply_action(route.genome, Action("grow_res"), self.rules.limits,
                                                           self.rules.space),
                                    "iterations": step_size, "route_iterations": (route.route_iterations or 0)
                                    + step_size})
                    continue
                last = chain[-1]
                need = needs.get(res, 0)
                if last.status == Status.DONE and (last.route_iterations or 0) < need:
                    more = min(step_size, need - (last.route_iterations or 0))
                    new.append({"step": last.step + 1, "parent": last.id, "action": None, "genome": last.genome,
                                "iterations": more, "route_iterations": (last.route_iterations or 0) + more})
            if new:
                first_id = self.ledger.max_id() + 1
                for i, row in enumerate(new):
                    row.setdefault("seed", self.config.seed * 100_003 + first_id + i)
                self.ledger.add_candidates(new)
            rows = self.ledger.candidates()
            status = {r.id: r.status for r in rows}
            ready = [r for r in rows if r.status in (Status.PENDING, Status.RUNNING)
                     and (r.parent is None or status[r.parent] == Status.DONE)]
            if not ready:
                return BaselineCurve.from_rows(rows, "auto")
            self.train(ready, desc)

    def _reuse_baseline_start(self, candidate: int) -> None:
        """With the auto baseline, the first initial candidate is exactly the baseline's first one (same
        genome, seed and budget): take its result instead of training it twice."""
        sub = self.layout.baseline
        if self.config.baseline != "auto" or not sub.ledger.exists():
            return
        row = self.ledger.get(candidate)
        with Ledger.open(sub.ledger, readonly=True) as ledger:
            twin = next((r for r in ledger.candidates(step=0, status=Status.DONE)
                         if r.genome == row.genome and r.seed == row.seed), None)
        if twin is None or twin.metric is None or twin.checkpoint is None:
            return
        normalized, info = self.baseline().normalize(twin.metric, row.resolution, row.route_iterations)
        self.ledger.update(candidate, status=Status.DONE, metric=twin.metric, normalized_metric=normalized,
                           extra={**twin.extra, **info, "reused": f"baseline candidate {twin.id}"},
                           train_seconds=0.0, eval_seconds=0.0,
                           checkpoint=self.layout.relative(sub.resolve(twin.checkpoint)))

    # ---------------------------------------------------------------- Algorithm 1
    def train_step(self, step: int) -> None:
        rows = [r for r in self.ledger.candidates(step=step) if r.status in (Status.PENDING, Status.RUNNING)]
        if not rows:
            return
        needs: dict[int, int] = {}
        for r in rows:
            needs[r.resolution] = max(needs.get(r.resolution, 0), r.route_iterations or 0)
        self.baseline(needs)  # equal-training normalisation: the baseline covers every route of this step
        self.train(rows, f"step {step}", step=step)

    def select(self, step: int) -> list[int]:
        kept = self.ledger.kept(step)
        if kept is None:
            kept = [r.id for r in self.rules.select(self.ledger.candidates(step=step), step)]
            self.ledger.set_kept(step, kept)
        return kept

    def sample_children(self, step: int, parents: list[CandidateRow]) -> int:
        """Add the children of ``step`` that Algorithm 1 draws from ``parents`` (ranked best first)."""
        pairs = self.rules.children(step, parents)
        first_id = self.ledger.max_id() + 1
        own = self.config.iterations
        self.ledger.add_candidates([
            {"step": step, "parent": parent.id, "action": action, "seed": self.config.seed * 100_003 + first_id + i,
             "genome": apply_action(parent.genome, action, self.rules.limits, self.rules.space),
             "iterations": own, "route_iterations": (parent.route_iterations or 0) + own}
            for i, (parent, action) in enumerate(pairs)])
        return len(pairs)

    def best_at_target(self) -> CandidateRow | None:
        """The finished candidate at the target resolution with the lowest normalised metric."""
        best = best_candidate(self.ledger.candidates(status=Status.DONE), self.config.target_resolution)
        return best if best is not None and best.resolution == self.config.target_resolution else None

    def final(self) -> None:
        existing = self.ledger.final()
        if existing is not None and existing.status == Status.DONE:
            return
        best = self.best_at_target()
        if best is None:
            self.log("no finished candidate reached the target resolution; skipping final training")
            return
        route = (best.route_iterations or 0) + self.config.final_iterations
        curve = self.baseline({best.resolution: route})  # the ProgGAN baseline at equal training
        source = self._checkpoint_of(best.id)
        try:
            source_state = load_checkpoint(source, tensors=False).state  # only its clock and iteration
        except CheckpointError as exc:
            raise SearchError(f"the final training needs candidate {best.id}'s checkpoint, which is missing or"
                              f" damaged ({exc}); restore it from a backup and resume. Nothing was changed") from None
        iterations = int(source_state["iteration"]) + self.config.final_iterations
        task = self._task(best, iterations, self.layout.best, continue_from=source)
        self.log(f"final training of candidate {best.id} for {self.config.final_iterations} more iterations")
        (result,) = list(self.executor.run([task]))
        if result.retry:
            message = (f"the final training of candidate {best.id} could not run: {result.error}; fix the cause,"
                       f" then `dggan search --resume {self.run_dir}` continues it")
            self.log(message)
            raise SearchError(message)
        normalized, info = (curve.normalize(result.metric, best.resolution, route)
                            if result.status == Status.DONE else (None, {}))
        self.ledger.set_final(candidate=best.id, status=result.status, metric=result.metric,
                              normalized_metric=normalized,
                              extra={**result.extra, **info, "eval_seconds": result.eval_seconds,
                                     "route_iterations": route},
                              iterations=iterations, train_seconds=result.train_seconds,
                              checkpoint=None if result.checkpoint is None else self.layout.relative(result.checkpoint),
                              error=result.error)
        atomic_write_json(self.layout.best / "metrics.json", {
            "candidate": best.id, **result.to_dict(), "normalized_metric": normalized, **info,
            "route_iterations": route, "genome_summary": best.genome.summary()})

    # ---------------------------------------------------------------- TensorBoard
    def _board(self) -> Board:
        """The search's own TensorBoard log (RUN/tb/search), or a Board that does nothing."""
        if not self.config.tensorboard:
            return Board(None)
        if not board_available():
            self.log(f"TensorBoard logs are off: tensorboard is not installed ({INSTALL_HINT}; or --set"
                     " tensorboard=false to silence this)")
            return Board(None)
        return Board(self.tb_root / "search")

    def _log_step(self, board: Board, step: int) -> None:
        """After a step's selection: the best normalised metric so far per resolution (and its genome), and how
        many candidates are in each status."""
        if not board.active:
            return
        rows = self.ledger.candidates()
        counts = Counter(r.status.value for r in rows)
        board.scalars({s.value: counts.get(s.value, 0) for s in Status}, step, "search/candidates/")
        best = best_per_resolution(rows)
        board.scalars({f"{res}px": r.normalized_metric for res, r in best.items()}, step, "search/best_normalized/")
        for res, r in best.items():
            board.text(f"search/best_{res}px", f"c{r.id:05d} ({r.normalized_metric:.4g}): {r.genome.summary()}", step)
        board.flush()

    def _grow(self, board: Board) -> int:
        """Algorithm 1's steps, from the first unfinished one to the stopping rule; returns the last step."""
        step = 0
        while True:
            self.train_step(step)
            fresh = self.ledger.kept(step) is None  # a resumed search does not log a step twice
            kept = self.select(step)
            if fresh:
                self._log_step(board, step)
            if not kept:
                self.log(f"step {step}: no candidate finished, so the search cannot grow further")
                return step
            parents = [self.ledger.get(cid) for cid in kept]
            if self.rules.should_stop(step, parents):
                return step
            if not self.ledger.candidates(step=step + 1):
                self.sample_children(step + 1, parents)
            step += 1

    def run(self) -> SearchSummary:
        start = time.perf_counter()
        with run_lock(self.run_dir):
            if self.executor.name == "inprocess":
                threads = set_threads(self.config.threads)
                self.log(f"torch threads: {threads} ({'set' if self.config.threads else 'chosen from the free cores'})")
            first = self.config.initial_iterations or self.config.iterations
            self.baseline({self.config.base_resolution: first})
            if not self.ledger.candidates(step=0):
                channels = data_channels(self.config)  # 1 for greyscale data such as digits
                ids = self.ledger.add_candidates([{"step": 0, "parent": None, "action": None, "genome": g,
                                                   "seed": self.config.seed * 100_003 + i + 1,
                                                   "iterations": first, "route_iterations": first}
                                                  for i, g in enumerate(self.config.initial_genomes(channels))])
                self._reuse_baseline_start(ids[0])
            with self._board() as board:
                step = self._grow(board)
                if self.config.final_iterations > 0 or self.config.baseline != "none":
                    self.final()
                    final = self.ledger.final()
                    if final is not None:
                        board.scalars({"final_normalized": final.normalized_metric, "final_metric": final.metric},
                                      step, "search/")
                    if self.config.tables and final is not None and final.status == Status.DONE \
                            and not (self.layout.best / "tables.json").exists():
                        from .tables import tables

                        self.log("scoring the paper's tables (dggan tables) into RUN/best/tables.md")
                        tables(self.run_dir, executor=self.executor, progress=self.progress, lock=False)
        rows = self.ledger.candidates()
        final = self.ledger.final()
        best = self.best_at_target()
        train_s, eval_s = _work_seconds(rows, final)
        if self.layout.baseline.ledger.exists():  # the auto baseline's work is part of this run
            with Ledger.open(self.layout.baseline.ledger, readonly=True) as sub:
                sub_train, sub_eval = _work_seconds(sub.candidates(), sub.final())
            train_s, eval_s = train_s + sub_train, eval_s + sub_eval
        wall = time.perf_counter() - start
        sessions = json.loads(self.ledger.get_meta("sessions") or "[]")
        sessions.append({"ended": time.time(), "wall_seconds": wall, "executor": self.executor.name})
        self.ledger.set_meta("sessions", json.dumps(sessions))
        summary = SearchSummary(
            run_dir=self.run_dir, steps=step + 1, candidates=len(rows), best_id=best.id if best else None,
            best_normalized=best.normalized_metric if best else None,
            final_metric=final.metric if final else None, final_status=final.status if final else None,
            wall_seconds=wall, train_seconds=train_s, eval_seconds=eval_s,
            total_wall_seconds=sum(s["wall_seconds"] for s in sessions),
            final_normalized=final.normalized_metric if final else None,
            final_route_iterations=final.extra.get("route_iterations") if final else None,
            final_needed=self.config.final_iterations > 0 or self.config.baseline != "none")
        self.ledger.set_meta("last_summary", json.dumps({
            "wall_seconds": summary.total_wall_seconds, "train_seconds": train_s, "eval_seconds": eval_s,
            "candidates": summary.candidates, "executor": self.executor.name}))
        return summary


def _work_seconds(rows: list[CandidateRow], final: FinalRow | None) -> tuple[float, float]:
    """Training and scoring seconds recorded in a ledger (the final training counts as training)."""
    train = sum(r.train_seconds or 0 for r in rows) + ((final.train_seconds or 0) if final else 0)
    evals = sum(r.eval_seconds or 0 for r in rows) + ((final.extra.get("eval_seconds", 0) or 0) if final else 0)
    return train, evals


def run_search(run_dir: str | Path, config: SearchConfig | None = None, *, resume: bool = False,
               executor: Executor | None = None, progress: bool = True,
               runtime: dict[str, Any] | None = None) -> SearchSummary:
    """Start (``config``) or resume (``resume=True``) a search in ``run_dir`` and run it to the end.

    ``runtime`` changes, on resume, settings that say where the search runs (threads, executor, workers,
    device) without touching what it computes.
    """
    run_dir = Path(run_dir)
    if resume:
        config = load_run_config(run_dir)
        if runtime:
            config = SearchConfig.from_dict({**config.to_dict(), **runtime}, source="--resume settings")
        check_device(config)
        check_executor(config)
        check_data(config)  # the files may have moved since the run started
        check_metric(config)
    elif config is None:
        raise SearchError("run_search needs a config for a new run (or resume=True)")
    else:
        validate_new_search(config, run_dir)  # before any folder is made or work is done
        create_run(run_dir, config)
    own = executor is None
    executor = executor or executor_for(config, run_dir)
    try:
        return Search(run_dir, config, executor, progress).run()
    finally:
        if own:
            executor.close()


def run_baseline(run_dir: str | Path, config: SearchConfig, *, executor: Executor | None = None,
                 progress: bool = True) -> BaselineCurve:
    """``dggan baseline``: the ProgGAN route of ``config``'s search in a run folder of its own, continued at
    every resolution as far as that search can reach (``longest_route``), for ``--set baseline=RUN``."""
    run_dir = Path(run_dir)
    sub = baseline_config(config)
    validate_new_search(sub, run_dir)
    create_run(run_dir, sub)
    first = config.initial_iterations or config.iterations
    reach = longest_route(config)
    needs = {res: min(reach, first + (config.max_steps or 0) * config.iterations + k * config.iterations)
             for k, res in enumerate(resolutions(config))}
    needs[config.target_resolution] = reach
    own = executor is None
    executor = executor or executor_for(config, run_dir)
    try:
        search = Search(run_dir, sub, executor, progress)
        with run_lock(run_dir):
            return search.extend_route(needs)
    finally:
        if own:
            executor.close()
