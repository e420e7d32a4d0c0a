"""Algorithm 1 (top-K greedy pruning with random action sampling) and the final training, as a thin loop
over the ledger.

The driver keeps no state of its own: at every point it reads what is done from the ledger and does the
next thing (train pending candidates, select the top-K, sample the next step's children, run the final
training). A killed search therefore resumes by simply running the loop again. The rules and the loop of
Algorithm 1 live in ``algorithm``, running candidates in ``runner``, the baseline curve in ``baseline`` and
its ProgGAN route in ``proggan``; this module only sequences them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.files import append_jsonl, atomic_write_bytes, atomic_write_json
from .._util.tensorboard import INSTALL_HINT, Board
from .._util.tensorboard import available as board_available
from .._util.threads import set_threads
from ..errors import SearchError
from ..model.actions import Action, apply_action
from ..runs import ModelFolder, RunLayout, run_lock, write_model_description
from ..training.checkpoint import CheckpointError, load_checkpoint
from .algorithm import (
    best_candidate,
    best_per_resolution,
    final_points,
    pick_by_mean,
    rank,
    run_steps,
    seed_for,
    selection_seed,
)
from .baseline import BaselineCurve, resolutions, static_curve
from .config import RESUME_HINT, SearchConfig, create_run, load_run_config
from .executors import Executor, executor_for
from .ledger import CandidateRow, FinalRow, FinalScore, Ledger
from .preflight import check_data, check_device, check_executor, check_metric, data_channels, validate_new_search
from .proggan import run_baseline, train_route
from .runner import Runner
from .state import Status
from .worker import CandidateResult

__all__ = ["Search", "SearchError", "SearchSummary", "run_baseline", "run_search"]


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


class Search:
    """One run folder's search: reads the ledger, does the next thing, writes the result back."""

    def __init__(self, run_dir: str | Path, config: SearchConfig, executor: Executor, progress: bool = True,
                 log: Callable[[str], None] | None = None):
        self.runner = Runner(run_dir, config, executor, progress, log)
        self.layout, self.run_dir, self.ledger = self.runner.layout, self.runner.run_dir, self.runner.ledger
        self.config, self.executor, self.progress, self.log = config, executor, progress, self.runner.log
        self.rules = config.rules()
        self.runner.curve = self.runner.rung_curve = static_curve(config)
        self._board = Board(None)

    # ---------------------------------------------------------------- the baseline
    def baseline(self, needs: dict[int, int] | None = None) -> BaselineCurve:
        """The baseline curve, trained (``auto``) far enough to cover ``needs`` ({res: route iterations})."""
        curve = self.runner.curve
        if curve is not None and (not needs or self.config.baseline != "auto"
                                  or all(curve.covers(r, i) for r, i in needs.items())):
            if self.config.baseline != "auto" and self.ledger.get_meta("baseline") is None:
                self.ledger.set_meta("baseline", curve.to_json())  # what the report shows as used
            return curve
        if self.config.baseline != "auto":
            raise SearchError("internal: a static baseline has no curve")  # static_curve always returns one
        stored = self.ledger.get_meta("baseline")
        if stored and curve is None:
            curve = self.runner.curve = BaselineCurve.from_json(stored)
            rungs = self.ledger.get_meta("baseline_rungs")
            self.runner.rung_curve = BaselineCurve.from_json(rungs) if rungs else curve
            if not needs or all(curve.covers(r, i) for r, i in needs.items()):
                return curve
        first = self.config.initial_iterations or self.config.iterations
        least = {res: first + k * self.config.iterations for k, res in enumerate(resolutions(self.config))}
        wanted = {res: max(i, (needs or {}).get(res, 0)) for res, i in least.items()}
        proggan = train_route(self.layout.baseline.root, self.config, [wanted], self.executor, self.progress,
                              self.log, tb_root=self.layout.tb / "baseline")
        assert proggan.curve is not None
        # Intermediate rungs are compared with the baseline's own scores at the same fraction of its budget.
        self.runner.curve = proggan.curve
        self.runner.rung_curve = BaselineCurve.from_rungs(proggan.ledger.candidates(), proggan.ledger.rungs(),
                                                          self.config.rung_metric or self.config.metric, "auto")
        self.ledger.set_meta("baseline_rungs", self.runner.rung_curve.to_json())
        self.ledger.set_meta("baseline", proggan.curve.to_json())
        return proggan.curve

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

    # ---------------------------------------------------------------- Algorithm 1 (algorithm.Steps)
    def candidates(self, step: int) -> Sequence[CandidateRow]:
        """Train the step's unfinished candidates (the baseline first covers their routes); its candidates."""
        rows = [r for r in self.ledger.candidates(step=step) if r.status in (Status.PENDING, Status.RUNNING)]
        if rows:
            needs: dict[int, int] = {}
            for r in rows:
                needs[r.resolution] = max(needs.get(r.resolution, 0), r.route_iterations or 0)
            self.baseline(needs)  # equal-training normalisation: the baseline covers every route of this step
            self.runner.train_candidates(rows, f"step {step}", step=step)
        return self.ledger.candidates(step=step)

    def keep(self, step: int, choose: Callable[[], list[CandidateRow]]) -> list[CandidateRow]:
        kept = self.ledger.kept(step)
        if kept is None:  # a resumed search neither selects nor logs a step twice
            kept = [r.id for r in choose()]
            self.ledger.set_kept(step, kept)
            self._log_step(step)
        if not kept:
            self.log(f"step {step}: no candidate finished, so the search cannot grow further")
        return [self.ledger.get(cid) for cid in kept]

    def grow(self, step: int, pairs: list[tuple[CandidateRow, Action]]) -> None:
        if self.ledger.candidates(step=step):
            return  # drawn before an interruption
        first_id = self.ledger.max_id() + 1
        own = self.config.iterations
        self.ledger.add_candidates([
            {"step": step, "parent": parent.id, "action": action, "seed": seed_for(self.config.seed, first_id + i),
             "genome": apply_action(parent.genome, action, self.rules.limits, self.rules.space),
             "iterations": own, "route_iterations": (parent.route_iterations or 0) + own}
            for i, (parent, action) in enumerate(pairs)])

    def best_at_target(self) -> CandidateRow | None:
        return best_candidate(self.ledger.candidates(status=Status.DONE), self.config.target_resolution,
                              exact=True)

    # ---------------------------------------------------------------- the ProgGAN route in the race
    def add_proggan_route(self) -> CandidateRow | None:
        """With the auto baseline the ProgGAN route competes in the final pick: its model at the target resolution
        after as many route iterations as the best grown candidate there (equal training, so normalised 1 by
        construction) becomes a finished candidate reusing the baseline's checkpoint (nothing is trained twice),
        flagged ``extra["proggan_route"]``. Added once; None with a fixed baseline or without such a model."""
        if self.config.baseline != "auto":
            return None
        rows = self.ledger.candidates()
        added = next((r for r in rows if r.extra.get("proggan_route")), None)
        best = self.best_at_target()
        if added is not None or best is None or not self.layout.baseline.ledger.exists():
            return added
        sub = self.layout.baseline
        with Ledger.open(sub.ledger, readonly=True) as ledger:
            twin = next((r for r in ledger.candidates(status=Status.DONE) if r.resolution == best.resolution
                         and r.route_iterations == best.route_iterations and r.metric is not None
                         and r.checkpoint), None)
        if twin is None or twin.checkpoint is None or twin.metric is None:
            self.log(f"the ProgGAN route has no {best.resolution}px model after {best.route_iterations} iterations,"
                     " so it does not enter the final pick")
            return None
        root = min((r for r in rows if r.parent is None), key=lambda r: r.id)  # the route's own start
        normalized, info = self.baseline().normalize(twin.metric, twin.resolution, twin.route_iterations)
        # A continuation (no action) of the route's start: a replay neither draws it nor starts from it.
        cid = self.ledger.add_finished(
            {"step": best.step, "parent": root.id, "action": None, "genome": twin.genome, "seed": twin.seed,
             "iterations": (twin.route_iterations or 0) - (root.route_iterations or 0),
             "route_iterations": twin.route_iterations},
            status=Status.DONE, metric=twin.metric, normalized_metric=normalized, train_seconds=0.0,
            eval_seconds=0.0, checkpoint=self.layout.relative(sub.resolve(twin.checkpoint)),
            extra={**twin.extra, **info, "reused": f"baseline candidate {twin.id}", "proggan_route": True,
                   "trained_iterations": 0})  # the baseline trained it: no compute of the search's
        self.log(f"the ProgGAN route (baseline candidate {twin.id}, {twin.route_iterations} iterations) enters the"
                 f" final pick as candidate {cid}")
        return self.ledger.get(cid)

    # ---------------------------------------------------------------- the final pick
    def _score(self, rows: list[CandidateRow], seed: int) -> dict[int, CandidateResult]:
        """Score each of ``rows``' models with evaluation seed ``seed``, training nothing (one batch)."""
        tasks = []
        for r in rows:
            checkpoint = Path(self.runner.checkpoint_of(r.id))
            tasks.append(self.runner.score_task(r, checkpoint, _iteration_of(checkpoint, r.id), seed))
        results = {}
        for result in self.executor.run(tasks):
            self._stop_on_retry(result, f"scoring candidate {result.candidate_id}")
            results[result.candidate_id] = result
        return results

    def _stop_on_retry(self, result: CandidateResult, what: str) -> None:
        if result.retry:
            message = (f"{what} could not run: {result.error}; fix the cause, then `dggan search --resume"
                       f" {self.run_dir}` continues it {RESUME_HINT}")
            self.log(message)
            raise SearchError(message)

    def pick(self) -> CandidateRow | None:
        """The candidate the final training continues: the best ``final_pick_candidates`` at the target, re-scored
        over ``final_pick_seeds`` selection seeds (``algorithm.selection_seed``) and picked by their mean
        normalised score, not by one draw. Every score is recorded (``final_scores`` "pick"), so a resumed pick
        scores only what is missing; the choice and the spread are kept in meta ``final_pick``."""
        stored = self.ledger.get_meta("final_pick")
        if stored:
            return self.ledger.get(int(json.loads(stored)["candidate"]))
        ranked = [r for r in rank(self.ledger.candidates(status=Status.DONE))
                  if r.resolution == self.config.target_resolution]
        top = ranked[: self.config.final_pick_candidates]
        if len(top) <= 1:
            return top[0] if top else None
        curve = self.baseline()
        done = {(g.candidate, g.index) for g in self.ledger.final_scores("pick")}
        for i in range(self.config.final_pick_seeds):
            seed = selection_seed(self.config.seed, i)
            todo = [r for r in top if (r.id, i) not in done]
            if not todo:
                continue
            self.log(f"final pick: scoring candidates {[r.id for r in todo]} with selection seed {i + 1}"
                     f"/{self.config.final_pick_seeds}")
            for cid, result in self._score(todo, seed).items():
                row = next(r for r in top if r.id == cid)
                normalized, info = (curve.normalize(result.metric, row.resolution, row.route_iterations)
                                    if result.status == Status.DONE else (None, {}))
                self.ledger.add_final_score(FinalScore(
                    "pick", cid, i, seed, _iteration_of(Path(self.runner.checkpoint_of(cid)), cid),
                    row.route_iterations, result.metric, normalized,
                    {**info, "status": result.status.value, "eval_seconds": result.eval_seconds or 0.0}))
        scores: dict[int, list[float]] = {r.id: [] for r in top}
        for g in self.ledger.final_scores("pick"):
            if g.candidate in scores:
                scores[g.candidate].append(math.nan if g.normalized_metric is None else g.normalized_metric)
        choice = pick_by_mean(scores)
        chosen = top[0].id if choice is None else choice
        summary = {"candidate": chosen, "seeds": self.config.final_pick_seeds, "candidates": [
            {"id": r.id, "single": r.normalized_metric, "scores": scores[r.id], "mean": _mean(scores[r.id]),
             "std": _std(scores[r.id]), "proggan_route": bool(r.extra.get("proggan_route"))} for r in top]}
        self.ledger.set_meta("final_pick", json.dumps(summary, sort_keys=True))
        self.log("final pick (mean normalised score over selection seeds, ± spread): " + ", ".join(
            f"c{c['id']} {c['mean']:.4g} ± {c['std']:.2g}" for c in summary["candidates"])
            + f"; picked candidate {chosen}")
        return self.ledger.get(chosen)

    # ---------------------------------------------------------------- the final training
    def final(self) -> None:
        """Train the pick ``final_iterations`` more into RUN/best as segments (a task each, continuing in the same
        folder from its own checkpoint), scored at ``final_points`` with a selection seed; the best snapshot is
        copied aside as it appears and becomes RUN/best (the last one RUN/best/last), then is scored once with
        the search's seed for the reported number. Every point is recorded (``final_scores`` "point"), so a
        killed final training resumes at its next segment."""
        existing = self.ledger.final()
        if existing is not None and existing.status == Status.DONE:
            return
        self.add_proggan_route()
        best = self.pick()
        if best is None:
            self.log("no finished candidate reached the target resolution; skipping final training")
            return
        extra_its = self.config.final_iterations
        start_route = best.route_iterations or 0
        curve = self.baseline({best.resolution: start_route + extra_its})  # the ProgGAN baseline at equal training
        source = self.runner.checkpoint_of(best.id)
        start = _iteration_of(Path(source), best.id)
        grid = [i - start_route for i, _ in curve.points.get(best.resolution, ())] if curve.varies else []
        offsets = final_points(extra_its, self.config.final_snapshots, grid)
        single = len(offsets) == 1  # the end only: scored with the search's seed, as before
        seed = self.config.seed if single else selection_seed(self.config.seed, 0)
        model = self.layout.best_model
        points = {g.index: g for g in self.ledger.final_scores("point") if g.candidate == best.id}
        trained = self._route_points(best, [start_route + o for o in offsets]) if not single else None
        if not points:
            self.log(f"final training of candidate {best.id} for {extra_its} more iterations"
                     + ("" if single else f", scored at {len(offsets)} points")
                     + (": the ProgGAN route, which the baseline already trained that far (reused)" if trained else ""))
        for k, offset in enumerate(offsets):
            if k in points:
                continue
            if any(g.metric is None for g in points.values()):
                break  # it diverged: nothing after that point
            if offset == 0 and (score := self._start_from_pick(best, seed, start, source)) is not None:
                points[k] = score  # the pick scored this very model with this seed: no task
                self._log_point(score, len(offsets))
                continue
            snapshot = model.checkpoint
            if trained is not None:  # the baseline trained this route already: score its model there
                snapshot = trained[k]
                task = self.runner.score_task(best, snapshot, _iteration_of(snapshot, best.id), seed)
            else:
                task = self.runner.task(best, start + extra_its, model.root, continue_from=source, eval_seed=seed)
                if not single:
                    task = dataclasses.replace(task, until=start + offset)
            (result,) = list(self.executor.run([task]))
            self._stop_on_retry(result, f"the final training of candidate {best.id}")
            done = result.status == Status.DONE
            normalized, info = (curve.normalize(result.metric, best.resolution, start_route + offset)
                                if done else (None, {}))
            score = FinalScore("point", best.id, k, seed, start + offset, start_route + offset, result.metric,
                               normalized, {**info, "status": result.status.value, "error": result.error,
                                            "train_seconds": 0.0 if trained else result.train_seconds or 0.0,
                                            "eval_seconds": result.eval_seconds or 0.0,
                                            "result_extra": result.extra,
                                            **({"checkpoint": self.layout.relative(snapshot)} if trained else {})})
            if done and not single and all(score.metric < g.metric for g in points.values() if g.metric is not None):
                # Aside before it is recorded: a crash in between re-scores the same checkpoint and copies again.
                atomic_write_bytes(model.best_snapshot, snapshot.read_bytes())
            self.ledger.add_final_score(score)
            points[k] = score
            self._log_point(score, len(offsets))
            if not done:
                self.log(f"the final training diverged before point {k + 1} ({result.error}); the best snapshot"
                         " before it is kept")
                break
        self._finish_final(best, points, single, source, start_route)

    def _route_points(self, best: CandidateRow, routes: list[int]) -> list[Path] | None:
        """When the pick is the ProgGAN route, the baseline has already trained its final training: its
        checkpoints at ``routes`` (the same network continued, through the same code), so none is trained
        twice. None when it is not the route or the baseline lacks one of them (then it is trained)."""
        reused = str(best.extra.get("reused", ""))
        if not best.extra.get("proggan_route") or not reused.startswith("baseline candidate "):
            return None
        with Ledger.open(self.layout.baseline.ledger, readonly=True) as ledger:
            rows = ledger.candidates(status=Status.DONE)
        chain, current = {}, int(reused.split()[-1])
        while current is not None:
            row = next((r for r in rows if r.id == current), None)
            if row is None or row.genome != best.genome or row.checkpoint is None:
                break
            chain[row.route_iterations] = self.layout.baseline.resolve(row.checkpoint)
            current = next((r.id for r in rows if r.parent == row.id and r.action is None), None)
        if not all(r in chain for r in routes):
            return None
        return [chain[r] for r in routes]

    def _start_from_pick(self, best: CandidateRow, seed: int, start: int, source: str) -> FinalScore | None:
        """The final training's first point (its start: the pick itself) from the pick's score with the same
        seed, when there is one; its checkpoint is set aside as the best snapshot so far, and the first segment
        then starts from ``source`` (RUN/best has no checkpoint yet)."""
        pick = next((g for g in self.ledger.final_scores("pick") if g.candidate == best.id and g.seed == seed
                     and g.iterations == start), None)
        if pick is None or pick.metric is None or self.layout.best_model.checkpoint.exists():
            return None
        atomic_write_bytes(self.layout.best_model.best_snapshot, Path(source).read_bytes())
        score = dataclasses.replace(pick, kind="point", index=0,
                                    extra={**pick.extra, "reused": "final pick", "train_seconds": 0.0,
                                           "eval_seconds": 0.0})
        self.ledger.add_final_score(score)
        return score

    def _log_point(self, score: FinalScore, count: int) -> None:
        """A point of the final training into best/stats.jsonl, TensorBoard (RUN/tb/search, final/) and the log."""
        row = {"iteration": score.iterations, "final_point": score.index, "route_iterations": score.route_iterations,
               "selection_metric": score.metric, "normalized": score.normalized_metric,
               "proggan": score.extra.get("baseline")}
        with contextlib.suppress(OSError):
            self.layout.best.mkdir(exist_ok=True)
            append_jsonl(self.layout.best_model.stats, row)
        self._board.scalars({"metric": score.metric, "proggan": score.extra.get("baseline"),
                             "normalized": score.normalized_metric}, score.route_iterations or 0, "final/")
        if count > 1:
            shown = "diverged" if score.metric is None else f"{self.config.metric} {score.metric:.4g}"
            self.log(f"final training point {score.index + 1}/{count} (iteration {score.iterations}): {shown}"
                     + ("" if score.normalized_metric is None else f", {score.normalized_metric:.3f} of ProgGAN"))

    def _finish_final(self, best: CandidateRow, points: dict[int, FinalScore], single: bool, source: str,
                      start_route: int) -> None:
        """RUN/best := the best snapshot (RUN/best/last the last), scored with the search's seed; the final row."""
        model, curve = self.layout.best_model, self.baseline()
        finished = [g for g in points.values() if g.metric is not None]
        last = points[max(points)]
        seconds = sum(float(g.extra.get("eval_seconds", 0.0)) for g in self.ledger.final_scores())
        train_seconds = max(float(g.extra.get("train_seconds", 0.0)) for g in points.values())
        flags = {"proggan_route": bool(best.extra.get("proggan_route"))}
        pick = self.ledger.get_meta("final_pick")
        if pick:
            flags["pick"] = json.loads(pick)
        if not finished:
            self.ledger.set_final(candidate=best.id, status=last.extra.get("status", Status.FAILED),
                                  extra={**flags, "eval_seconds": seconds}, iterations=last.iterations,
                                  train_seconds=train_seconds, error=last.extra.get("error"))
            atomic_write_json(self.layout.final_metrics, {"candidate": best.id, "status": last.extra.get("status"),
                                                          "error": last.extra.get("error")})
            return
        chosen = min(finished, key=lambda g: (g.metric, g.index))
        if single:
            result = CandidateResult(best.id, Status.DONE, metric=chosen.metric,
                                     extra=chosen.extra.get("result_extra", {}), checkpoint=str(model.checkpoint))
        else:
            if last.metric is not None and not model.last.checkpoint.exists():  # before best/ is replaced
                write_model_description(model.last, best.genome.to_json())
                stored = last.extra.get("checkpoint")
                last_checkpoint = self.layout.resolve(stored) if stored else model.checkpoint
                samples = ModelFolder(last_checkpoint.parent).samples
                if samples.exists():
                    atomic_write_bytes(model.last.samples, samples.read_bytes())
                atomic_write_bytes(model.last.checkpoint, last_checkpoint.read_bytes())
            if model.best_snapshot.exists():
                atomic_write_bytes(model.checkpoint, model.best_snapshot.read_bytes())
            result = self._report_score(best, chosen)
            seconds += result.eval_seconds or 0.0
        route = chosen.route_iterations or start_route
        normalized, info = curve.normalize(result.metric, best.resolution, route)
        snapshot = {"point": chosen.index, "points": len(points), "iterations": chosen.iterations,
                    "final_iterations": route - start_route, "selection_seed": chosen.seed,
                    "selection_metric": chosen.metric}
        lasts = {"point": last.index, "iterations": last.iterations, "route_iterations": last.route_iterations,
                 "selection_metric": last.metric, "normalized_selection": last.normalized_metric}
        self.ledger.set_final(candidate=best.id, status=Status.DONE, metric=result.metric, normalized_metric=normalized,
                              extra={**result.extra, **info, **flags, "eval_seconds": seconds,
                                     "route_iterations": route, "snapshot": snapshot, "last": lasts,
                                     "source": self.layout.relative(source)},
                              iterations=chosen.iterations, train_seconds=train_seconds,
                              checkpoint=self.layout.relative(model.checkpoint))
        model.best_snapshot.unlink(missing_ok=True)
        atomic_write_json(self.layout.final_metrics, {
            "candidate": best.id, **result.to_dict(), "normalized_metric": normalized, **info,
            "route_iterations": route, "genome_summary": best.genome.summary(), "snapshot": snapshot,
            "last": lasts, **flags})
        if not single:
            self.log(f"final model: the snapshot of point {chosen.index + 1}/{len(points)} ({route - start_route} of"
                     f" {self.config.final_iterations} final iterations), {self.config.metric} {result.metric:.4g}"
                     f" with the search's seed ({normalized:.3f} of ProgGAN); the last one is in"
                     f" {self.layout.relative(model.last.root)}")

    def _report_score(self, best: CandidateRow, chosen: FinalScore) -> CandidateResult:
        """The chosen snapshot (now RUN/best) scored with the search's seed: the number reported, not the
        maximum of the noise it was chosen with. Also writes RUN/best/samples.png of it."""
        task = self.runner.score_task(best, self.layout.best_model.checkpoint, chosen.iterations, self.config.seed,
                                      samples=True)
        (result,) = list(self.executor.run([task]))
        self._stop_on_retry(result, "scoring the final model")
        if result.status != Status.DONE or result.metric is None:
            raise SearchError(f"the final model's snapshot could not be scored ({result.error}); see"
                              f" {self.layout.best_model.error} and resume")
        return result

    # ---------------------------------------------------------------- TensorBoard
    def _open_board(self) -> Board:
        """The search's own TensorBoard log (RUN/tb/search), or a Board that does nothing."""
        if not self.config.tensorboard:
            return Board(None)
        if not board_available():
            self.log(f"TensorBoard logs are off: tensorboard is not installed ({INSTALL_HINT}; or --set"
                     " tensorboard=false to silence this)")
            return Board(None)
        return Board(self.layout.tb / "search")

    def _log_step(self, step: int) -> None:
        """After a step's selection: the best normalised metric so far per resolution (and its genome), and how
        many candidates are in each status."""
        board = self._board
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

    # ---------------------------------------------------------------- the whole run
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
                first_id = self.ledger.max_id() + 1
                ids = self.ledger.add_candidates([{"step": 0, "parent": None, "action": None, "genome": g,
                                                   "seed": seed_for(self.config.seed, first_id + i),
                                                   "iterations": first, "route_iterations": first}
                                                  for i, g in enumerate(self.config.initial_genomes(channels))])
                self._reuse_baseline_start(ids[0])
            with self._open_board() as self._board:
                step, _ = run_steps(self.rules, self)
                if self.config.final_iterations > 0 or self.config.baseline != "none":
                    self.final()
                    final = self.ledger.final()
                    if final is not None:
                        self._board.scalars({"final_normalized": final.normalized_metric,
                                             "final_metric": final.metric}, step, "search/")
        return self._summary(step, time.perf_counter() - start)

    def _summary(self, step: int, wall: float) -> SearchSummary:
        rows = self.ledger.candidates()
        final = self.ledger.final()
        best = self.best_at_target()
        train_s, eval_s = _work_seconds(rows, final)
        if self.layout.baseline.ledger.exists():  # the auto baseline's work is part of this run
            with Ledger.open(self.layout.baseline.ledger, readonly=True) as sub:
                sub_train, sub_eval = _work_seconds(sub.candidates(), sub.final())
            train_s, eval_s = train_s + sub_train, eval_s + sub_eval
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


def _iteration_of(checkpoint: Path, candidate: int) -> int:
    """The iteration a candidate's checkpoint is at (its training clock; read without the tensors)."""
    try:
        return int(load_checkpoint(checkpoint, tensors=False).state["iteration"])
    except CheckpointError as exc:
        raise SearchError(f"the final pick and training need candidate {candidate}'s checkpoint, which is missing or"
                          f" damaged ({exc}); restore it from a backup and resume (nothing recorded is lost)") from None


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _work_seconds(rows: list[CandidateRow], final: FinalRow | None) -> tuple[float, float]:
    """Training and scoring seconds recorded in a ledger (the final training counts as training)."""
    train = sum(r.train_seconds or 0 for r in rows) + ((final.train_seconds or 0) if final else 0)
    evals = sum(r.eval_seconds or 0 for r in rows) + ((final.extra.get("eval_seconds", 0) or 0) if final else 0)
    return train, evals


def run_search(run_dir: str | Path, config: SearchConfig | None = None, *, resume: bool = False,
               executor: Executor | None = None, progress: bool = True,
               runtime: dict[str, Any] | None = None) -> SearchSummary:
    """Start (``config``) or resume (``resume=True``) a search in ``run_dir`` and run it to the end, then
    score the paper's tables (``tables``) for its final model.

    ``runtime`` changes, on resume, settings that say where the search runs (threads, executor, workers,
    device) without touching what it computes.
    """
    run_dir = Path(run_dir).resolve()  # paths written into the run (best/metrics.json) are absolute
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
        search = Search(run_dir, config, executor, progress)
        summary = search.run()
        layout = RunLayout(run_dir)
        if config.tables and summary.final_status == Status.DONE and not layout.tables_json.exists():
            from .tables import tables

            search.log("scoring the paper's tables (dggan tables) into RUN/best/tables.md")
            tables(run_dir, executor=executor, progress=progress)
        return summary
    finally:
        if own:
            executor.close()
