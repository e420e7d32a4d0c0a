"""The end of a search: the final pick and the final training (#19), split off the driver so that it only
sequences.

- With the ``auto`` baseline the ProgGAN route at the best grown candidate's training joins the pick as a
  candidate (reused, never trained twice), so a run never hands back a model worse than the ProgGAN it
  already trained.
- The best few candidates at the target are re-scored over selection seeds and picked by the mean.
- The final training runs in segments through the runner, scored at its points with a selection seed; the best
  snapshot becomes ``RUN/best`` (the last one ``RUN/best/last``) and is reported scored with the search's seed.
- One number for one network: a score taken with a selection seed is divided by ProgGAN's model at the same route
  iterations scored with that same seed (``proggan_reference``), never by the baseline curve (the search's seed).
  The ProgGAN route is then 1.000 of ProgGAN everywhere, as in the headline, instead of the ratio of two draws.

Everything is read back from the ledger, so a killed final training resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import statistics
from pathlib import Path

from .._util.files import append_jsonl, atomic_write_bytes, atomic_write_json
from .._util.tensorboard import Board
from ..errors import SearchError
from ..execution.state import Status
from ..execution.worker import CandidateResult
from ..metrics.seeds import Paired, selection_seed
from ..runs import ModelFolder, write_model_description
from ..training.checkpoint import CheckpointError, load_checkpoint
from .algorithm import best_candidate, final_points, pick_by_mean, rank
from .config import RESUME_HINT, SearchConfig
from .ledger import CandidateRow, FinalScore, Ledger
from .proggan import SearchBaseline
from .runner import Runner


def best_at_target(ledger: Ledger, config: SearchConfig) -> CandidateRow | None:
    """The best finished candidate at exactly the target resolution (Algorithm 1's one "best")."""
    return best_candidate(ledger.candidates(status=Status.DONE), config.target_resolution, exact=True)


class FinalTraining:
    """The final pick and training of a search: ``train()`` does both (resuming from the ledger), through the
    search's runner, normalised by its baseline; ``board`` gets the final training's points."""

    def __init__(self, runner: Runner, baseline: SearchBaseline, board: Board | None = None):
        self.runner, self.baseline = runner, baseline
        self.config, self.ledger, self.layout = runner.config, runner.ledger, runner.layout
        self.executor, self.log, self.run_dir = runner.executor, runner.log, runner.run_dir
        self.board = board if board is not None else Board(None)

    def best_at_target(self) -> CandidateRow | None:
        return best_at_target(self.ledger, self.config)

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
        normalized, info = self.baseline.train_to().normalize(twin.metric, twin.resolution, twin.route_iterations)
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

    # ---------------------------------------------------------------- ProgGAN on the same seed
    def proggan_reference(self, resolution: int, route: int | None, seed: int,
                          cache: dict[tuple[int, int | None, int], dict] | None = None) -> dict | None:
        """ProgGAN's model at ``resolution`` after ``route`` route iterations (the auto baseline's checkpoint there)
        scored with evaluation seed ``seed``: what a score with that seed is divided by. ``{"metric", "seed",
        "candidate"}`` (a baseline candidate), or None without such a model (a fixed baseline, or off its grid)."""
        key = (resolution, route, seed)
        if cache is not None and key in cache:
            return cache[key]
        if self.config.baseline != "auto" or route is None or not self.layout.baseline.ledger.exists():
            return None
        sub = self.layout.baseline
        with Ledger.open(sub.ledger, readonly=True) as ledger:
            twin = next((r for r in ledger.candidates(status=Status.DONE) if r.resolution == resolution
                         and r.route_iterations == route and r.checkpoint), None)
        if twin is None or twin.checkpoint is None:
            return None
        checkpoint = sub.resolve(twin.checkpoint)
        task = self.runner.score_task(twin, checkpoint, _iteration_of(checkpoint, twin.id), seed)
        (result,) = list(self.executor.run([task]))
        self._stop_on_retry(result, f"scoring ProgGAN (baseline candidate {twin.id})")
        if result.status != Status.DONE or result.metric is None:
            return None
        ref = {"metric": result.metric, "seed": seed, "candidate": twin.id,
               "eval_seconds": result.eval_seconds or 0.0}
        if cache is not None:
            cache[key] = ref
        return ref

    def same_seed(self, metric: float | None, resolution: int, route: int | None, seed: int,
                  ref: dict | None) -> tuple[float | None, dict]:
        """``metric`` (scored with ``seed``) normalised by ProgGAN scored with the same seed (``ref``), with how;
        without ``ref`` by the baseline curve, scored with the search's seed (a fixed baseline is a number)."""
        curve = self.baseline.train_to()
        normalized, info = curve.normalize(metric, resolution, route)
        if metric is None or ref is None:
            return normalized, {**info, "baseline_same_seed": not curve.varies or seed == self.config.seed}
        seconds = ref.pop("eval_seconds", 0.0)  # counted once, by the first score it serves
        return metric / ref["metric"], {**info, "baseline": ref["metric"], "baseline_seed": ref["seed"],
                                        "baseline_candidate": ref["candidate"], "baseline_same_seed": True,
                                        "baseline_eval_seconds": seconds}

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
        """The candidate the final training continues: the best ``final_pick_candidates`` at the target (and the
        ProgGAN route, when it is not among them), re-scored over ``final_pick_seeds`` selection seeds
        (``metrics.seeds.selection_seed``) and picked by their mean normalised score, not by one draw. With two
        or more seeds the ProgGAN route is the default: a grown candidate is picked over it only when it is
        better pair by pair on the same seeds (``metrics.seeds.Paired``, the rule ``dggan compare`` judges
        with), so a gap within the noise never hands back a grown model. Every score is recorded
        (``final_scores`` "pick"), so a resumed pick scores only what is missing; the choice, the spread and
        each candidate's verdict against the route are kept in meta ``final_pick``."""
        stored = self.ledger.get_meta("final_pick")
        if stored:
            return self.ledger.get(int(json.loads(stored)["candidate"]))
        ranked = [r for r in rank(self.ledger.candidates(status=Status.DONE))
                  if r.resolution == self.config.target_resolution]
        top = ranked[: self.config.final_pick_candidates]
        if len(top) <= 1:
            return top[0] if top else None
        proggan = next((r for r in ranked if r.extra.get("proggan_route")), None)
        if proggan is not None and proggan not in top:
            top.append(proggan)  # the safe default is always in the race
        done = {(g.candidate, g.index): g for g in self.ledger.final_scores("pick")}
        for i in range(self.config.final_pick_seeds):
            seed = selection_seed(self.config.seed, i)
            todo = [r for r in top if (r.id, i) not in done]
            if not todo:
                continue
            self.log(f"final pick: scoring candidates {[r.id for r in todo]} with selection seed {i + 1}"
                     f"/{self.config.final_pick_seeds}")
            results = self._score(todo, seed)
            # ProgGAN with this very seed: the route's own score (it is ProgGAN's model at its route iterations),
            # else the baseline's model at a candidate's route iterations, scored now.
            refs: dict[tuple[int, int | None, int], dict] = {}
            if proggan is not None:
                own = results.get(proggan.id)
                metric = own.metric if own is not None and own.status == Status.DONE else (
                    done[(proggan.id, i)].metric if (proggan.id, i) in done else None)
                if metric is not None:
                    refs[(proggan.resolution, proggan.route_iterations, seed)] = {
                        "metric": metric, "seed": seed, "candidate": _baseline_id(proggan)}
            for cid, result in results.items():
                row = next(r for r in top if r.id == cid)
                normalized, info = None, {}
                if result.status == Status.DONE:
                    ref = self.proggan_reference(row.resolution, row.route_iterations, seed, refs)
                    normalized, info = self.same_seed(result.metric, row.resolution, row.route_iterations, seed, ref)
                self.ledger.add_final_score(FinalScore(
                    "pick", cid, i, seed, _iteration_of(Path(self.runner.checkpoint_of(cid)), cid),
                    row.route_iterations, result.metric, normalized,
                    {**info, "status": result.status.value, "eval_seconds": result.eval_seconds or 0.0}))
        by_seed: dict[int, dict[int, float]] = {r.id: {} for r in top}
        for g in self.ledger.final_scores("pick"):
            if g.candidate in by_seed:
                by_seed[g.candidate][g.index] = math.nan if g.normalized_metric is None else g.normalized_metric
        scores = {c: [v[i] for i in sorted(v)] for c, v in by_seed.items()}
        verdicts = against_proggan_route(scores, None if proggan is None else proggan.id)
        # The route (and, without verdicts, everyone) is eligible; a grown candidate only when it beat the route.
        eligible = {c: v for c, v in scores.items() if c not in verdicts or verdicts[c] == "better"}
        choice = pick_by_mean(eligible)
        chosen = top[0].id if choice is None else choice
        summary = {"candidate": chosen, "seeds": self.config.final_pick_seeds, "rule": PICK_RULE, "candidates": [
            {"id": r.id, "single": r.normalized_metric, "scores": scores[r.id], "mean": _mean(scores[r.id]),
             "std": _std(scores[r.id]), "proggan_route": bool(r.extra.get("proggan_route")),
             **({"vs_proggan_route": verdicts[r.id]} if r.id in verdicts else {})} for r in top]}
        self.ledger.set_meta("final_pick", json.dumps(summary, sort_keys=True))
        self.log("final pick (mean normalised score over selection seeds, ± spread): " + ", ".join(
            f"c{c['id']} {c['mean']:.3f} ± {c['std']:.2g}" + _against(c) for c in summary["candidates"])
            + f"; picked candidate {chosen}")
        return self.ledger.get(chosen)

    # ---------------------------------------------------------------- the final training
    def train(self) -> None:
        """Train the pick ``final_iterations`` more into RUN/best as segments (a task each, continuing in the same
        folder from its own checkpoint), scored at ``final_points`` with a selection seed; the best snapshot is
        copied aside as it appears and becomes RUN/best (the last one RUN/best/last), then is scored once with
        the search's seed for the reported number. Every point is recorded (``final_scores`` "point"), so a
        killed final training resumes at its next segment."""
        existing = self.ledger.final()
        if existing is not None and existing.status == Status.DONE:
            if existing.checkpoint and not self.layout.resolve(existing.checkpoint).is_file():
                # The result is gone: say so, not "finished" beside a path that holds nothing.
                raise SearchError(f"the final model's checkpoint {self.layout.resolve(existing.checkpoint)} is"
                                  " missing: the run finished, but its result was deleted or moved; restore it"
                                  " from a backup (the ledger still records its scores)")
            return
        self.add_proggan_route()
        best = self.pick()
        if best is None:
            self.log("no finished candidate reached the target resolution; skipping final training")
            return
        extra_its = self.config.final_iterations
        start_route = best.route_iterations or 0
        curve = self.baseline.train_to({best.resolution: start_route + extra_its})  # ProgGAN at equal training
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
                self._log_point(score, len(offsets), start_route)
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
            normalized, info = None, {}
            if done:
                route = start_route + offset
                # ProgGAN on this point's seed: the route's point is ProgGAN's model itself, scored just now.
                ref = ({"metric": result.metric, "seed": seed, "candidate": _baseline_id(best)} if trained
                       else None if single else self.proggan_reference(best.resolution, route, seed))
                normalized, info = self.same_seed(result.metric, best.resolution, route, seed, ref)
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
            self._log_point(score, len(offsets), start_route)
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
                                           "eval_seconds": 0.0, "baseline_eval_seconds": 0.0})
        self.ledger.add_final_score(score)
        return score

    def _log_point(self, score: FinalScore, count: int, start_route: int) -> None:
        """A point of the final training into best/stats.jsonl, TensorBoard (RUN/tb/search, final/) and the log.
        Iterations are route iterations (the count the headline and the tables give), ProgGAN is scored with the
        point's own seed where it can be (``same_seed``)."""
        proggan = score.extra.get("baseline")
        row = {"iteration": score.iterations, "final_point": score.index, "route_iterations": score.route_iterations,
               "selection_metric": score.metric, "normalized": score.normalized_metric, "proggan": proggan,
               "seed": score.seed, "proggan_same_seed": bool(score.extra.get("baseline_same_seed"))}
        with contextlib.suppress(OSError):
            self.layout.best.mkdir(exist_ok=True)
            append_jsonl(self.layout.best_model.stats, row)
        self.board.scalars({"metric": score.metric, "proggan": proggan,
                             "normalized": score.normalized_metric}, score.route_iterations or 0, "final/")
        if count > 1:
            route = score.route_iterations or 0
            where = (f"{route:,} route iterations, {route - start_route:,} of {self.config.final_iterations:,} final"
                     f" iterations")
            if score.metric is None:
                shown = "diverged"
            else:
                shown = f"{self.config.metric} {score.metric:.4g}"
                if proggan is not None and not self.baseline.train_to().varies:
                    shown += f", the fixed baseline {proggan:.4g}: {score.normalized_metric:.3f} of it"
                elif proggan is not None and score.extra.get("baseline_same_seed"):
                    shown += f", ProgGAN as long {proggan:.4g}: {score.normalized_metric:.3f} of ProgGAN"
            self.log(f"final training point {score.index + 1}/{count} ({where}): {shown} (selection seed"
                     f" {score.seed})")

    def _finish_final(self, best: CandidateRow, points: dict[int, FinalScore], single: bool, source: str,
                      start_route: int) -> None:
        """RUN/best := the best snapshot (RUN/best/last the last), scored with the search's seed; the final row."""
        model, curve = self.layout.best_model, self.baseline.train_to()
        finished = [g for g in points.values() if g.metric is not None]
        last = points[max(points)]
        seconds = sum(float(g.extra.get("eval_seconds", 0.0)) + float(g.extra.get("baseline_eval_seconds", 0.0))
                      for g in self.ledger.final_scores())
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
            self.log(f"final model: the snapshot of point {chosen.index + 1}/{len(points)} ({route:,} route"
                     f" iterations, {route - start_route:,} of {self.config.final_iterations:,} final iterations),"
                     f" {self.config.metric} {result.metric:.4g} with the search's seed {self.config.seed}"
                     f" ({normalized:.3f} of ProgGAN trained as long, same seed); the last one is in"
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


def _baseline_id(row: CandidateRow) -> int | None:
    """The baseline candidate whose checkpoint the ProgGAN route's row reuses (``extra["reused"]``)."""
    reused = str(row.extra.get("reused", ""))
    return int(reused.split()[-1]) if reused.startswith("baseline candidate ") else None


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


PICK_RULE = ("the lowest mean normalised score over the selection seeds; with the ProgGAN route in the race and two"
             " or more seeds, a grown candidate is eligible only when it is better than the route pair by pair"
             " (metrics.seeds.VERDICT_RULE), so the route stays the pick when no grown candidate beats it beyond"
             " the noise")


def against_proggan_route(scores: dict[int, list[float]], route: int | None) -> dict[int, str]:
    """Each grown candidate's paired verdict against the ProgGAN route on the same selection seeds (``better``,
    ``worse``, ``within noise``, ``not comparable``); empty, so the pick is by the mean alone, without the route,
    with one seed, or when the route's own scores are not all finite."""
    ref = scores.get(route) if route is not None else None
    if not ref or len(ref) < 2 or not all(math.isfinite(x) for x in ref):
        return {}
    return {c: Paired.of(v, ref).verdict if len(v) == len(ref) else "not comparable"
            for c, v in scores.items() if c != route}


def _against(entry: dict) -> str:
    verdict = entry.get("vs_proggan_route")
    if entry.get("proggan_route"):
        return " (the ProgGAN route)"
    if verdict is None:
        return ""
    return f" ({verdict} than the route)" if verdict in ("better", "worse") else f" ({verdict} against the route)"
