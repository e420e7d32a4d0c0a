"""The result of a search in one sentence with numbers, for the end of ``dggan search`` and the top of the
report: the final model's metric, the ProgGAN baseline's at equal training, the ratio, the route; when the
final model is the ProgGAN route itself, that plainly; then ``dggan compare``'s paired verdicts and the cost
(``search.cost``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.durations import duration  # noqa: F401 (also imported from here; it lives where quick commands load it)
from ..errors import DgganError
from ..execution.state import Status
from ..model.actions import action_label
from ..runs import RunLayout
from ..search.algorithm import route as route_of
from ..search.algorithm import search_result
from ..search.ledger import CandidateRow, FinalRow
from ..search.view import RunView, run_cost


def route_text(route: list[CandidateRow]) -> str:
    """``init 8px → G k3 f32 → res 16px → D k3 f16``. A row without an action continues its parent: the
    ProgGAN route's model in the final pick stands on its root with every doubling in between (``res`` each)."""
    if not route:
        return "–"
    parts = [f"init {route[0].resolution}px"]
    for prev, r in zip(route, route[1:], strict=False):
        if r.action is not None and r.action.kind == "grow_res":
            parts.append(f"res {r.resolution}px")
        elif r.action is None:
            res = prev.resolution
            while res < r.resolution:
                res *= 2
                parts.append(f"res {res}px")
            if r.resolution == prev.resolution:
                parts.append("trained on")
        else:
            parts.append(action_label(r.action))
    return " → ".join(parts)


@dataclass
class Headline:
    metric: str
    target_resolution: int | None
    candidate: int | None  # the best candidate at the target (trained further in the final training)
    final_metric: float | None
    final_normalized: float | None
    route_iterations: int | None
    baseline_value: float | None  # what the final metric was divided by
    baseline_kind: str | None  # auto | run | fixed | none
    route: str
    comparison: dict[str, Any] | None  # compare.json, when `dggan compare` ran
    samples: Path | None
    reason: str = ""  # why there is no result yet
    run_dir: str = "RUN"
    proggan_route: bool = False  # the final model's architecture is the ProgGAN route's: no grown layer won
    cost: list[str] = field(default_factory=list)  # search.cost.RunCost.lines()
    seed: int | None = None  # the evaluation seed of the reported number (the search's seed)
    final_iterations: int | None = None  # of the route iterations, those of the final training

    @property
    def ok(self) -> bool:
        return self.final_metric is not None

    def sentence(self) -> str:
        if not self.ok:
            return f"No result yet: {self.reason}"
        seed = f" with the search's seed {self.seed}" if self.seed is not None else ""
        m = f"{self.metric} {self.final_metric:.4g}{seed}"
        its = "its training"
        if self.route_iterations:  # route iterations everywhere: the count the tables, the log and compare give
            its = f"{self.route_iterations:,} route iterations"
            if self.final_iterations:
                its += f", {self.final_iterations:,} of them the final training"
        head = f"The final model (candidate {self.candidate}, {self.target_resolution}px) scores {m}"
        if self.proggan_route and self.baseline_kind in ("auto", "run"):
            same = (": 1.000 of ProgGAN trained as long, being the same network"
                    if self.final_normalized is not None and round(self.final_normalized, 3) == 1.0 else
                    f"; ProgGAN trained as long scores {self.baseline_value:.4g}" if self.baseline_value else "")
            return (f"No grown architecture beat ProgGAN at equal training: the final model (candidate"
                    f" {self.candidate}, {self.target_resolution}px) is the ProgGAN route itself, scoring {m} after"
                    f" {its}{same}.")
        if self.baseline_kind in ("auto", "run") and self.baseline_value and self.final_normalized is not None:
            ratio = self.final_normalized
            if round(ratio, 2) == 1.0:
                verdict = "level with"
            else:
                verdict = (f"{(1 - ratio) * 100:.0f}% better than" if ratio < 1
                           else f"{(ratio - 1) * 100:.0f}% worse than")
            return (f"{head} after {its}; ProgGAN trained as long scores {self.baseline_value:.4g}: {ratio:.2f}x,"
                    f" {verdict} ProgGAN at equal training (lower is better).")
        if self.baseline_kind == "fixed" and self.final_normalized is not None:
            return (f"{head} after {its}; the fixed baseline at {self.target_resolution}px is"
                    f" {self.baseline_value:.4g}: {self.final_normalized:.2f}x (not measured at equal training).")
        return f"{head} after {its} (no ProgGAN baseline to compare with)."

    def lines(self) -> list[str]:
        out = [self.sentence()]
        if self.ok:
            out.append(f"Route: {self.route}")
        if self.ok and not self.comparison and self.baseline_kind in ("auto", "run"):
            # At demo scale one SWD draw moves by 10-20% between evaluation seeds (benchmarks/README.md).
            out.append(f"One evaluation draw each: `dggan compare {self.run_dir}` re-scores both over several"
                       " seeds before a difference is trusted.")
        if self.comparison:
            out.append(comparison_text(self.comparison))
        out += self.cost
        if self.samples is not None:
            out.append(f"Samples: {self.samples}")
        return out


def _paired(c: dict[str, Any], key: str) -> str:
    """``worse: better on 0 of 3 seeds, ProgGAN - final -19.8 ± 12 s.e.`` (or the bare verdict of an older
    compare.json)."""
    verdict = c[f"final_vs_{key}"]
    p = c.get(f"paired_{key}")
    if not p:
        return verdict
    sem = "" if p.get("sem") is None else f" ± {p['sem']:.2g} s.e."
    return f"{verdict}: final better on {p['wins']} of {p['n']} seeds, ProgGAN - final {p['mean']:+.3g}{sem}"


def comparison_text(c: dict[str, Any]) -> str:
    """``dggan compare``'s result (compare.json) in one sentence: both ProgGANs, paired, and the floor."""
    a, b = c["equal_training"], c.get("equal_compute")
    held = " held-out" if c.get("eval_seeds_held_out") else ""
    text = (f"Re-scored over {len(c['eval_seeds'])}{held} evaluation seeds: final {c['final']['mean']:.4g} ±"
            f" {c['final']['std']:.2g}; ProgGAN at equal training {a['mean']:.4g} ± {a['std']:.2g}"
            f" ({_paired(c, 'equal_training')}); ")
    if b:
        text += (f"ProgGAN with the search's whole compute ({b['route_iterations']:,} route iterations)"
                 f" {b['mean']:.4g} ± {b['std']:.2g} ({_paired(c, 'equal_compute')}).")
    else:
        text += (f"ProgGAN with the search's whole compute ({c['search_iterations']:,} route iterations) left out"
                 " (above dggan compare's --equal-compute-limit).")
    floor = c.get("floor")
    if floor:
        text += (f" Real-vs-real floor ({floor['method']}, {floor['metric']}): {floor['mean']:.4g} ±"
                 f" {floor['std']:.2g}.")
    return text


def is_proggan_route(layout: RunLayout, rows: list[CandidateRow], final: FinalRow, view: RunView | None = None) -> bool:
    """Whether the final model's architecture is the ProgGAN route's: the search picked the ProgGAN route itself
    (``final.extra["proggan_route"]``), or a candidate it grew has that architecture: the auto baseline has the
    same genome at that resolution, or (without one) its route is the first initial genome grown by
    ``grow_res`` alone. ``view``: the run's, when read already (its baseline's view is read once)."""
    if final.extra.get("proggan_route"):
        return True
    best = next((r for r in rows if r.id == final.candidate), None)
    if best is None:
        return False
    if layout.baseline.ledger.is_file():
        try:
            sub = view.baseline if view is not None else None
            sub = sub or RunView.read(layout.baseline.root)
            keys = {r.genome.key() for r in sub.rows if r.resolution == best.resolution}
            return best.genome.key() in keys
        except DgganError:
            return False
    route = route_of(rows, best.id)
    first = min((r.id for r in rows if r.step == 0), default=None)
    return bool(route) and route[0].id == first and all(
        r.action is None or r.action.kind == "grow_res" for r in route[1:])


def headline(run_dir: str | Path, rows: list[CandidateRow] | None = None, final: FinalRow | None = None,
             settings: dict[str, Any] | None = None, view: RunView | None = None) -> Headline:
    """The headline of the run in ``run_dir`` (rows, final and settings are its view's when not given; ``view``:
    the run's, when read already)."""
    layout = RunLayout(run_dir)
    if rows is None or settings is None:
        view = view or RunView.read(layout.root)
        rows, final, settings = view.rows, view.final, view.settings
    target = settings.get("target_resolution")
    metric = str(settings.get("metric", "metric"))
    best = search_result(rows, None if final is None else final.candidate, target)
    comparison = None
    if layout.compare_json.is_file():
        try:
            comparison = json.loads(layout.compare_json.read_text())
        except (OSError, json.JSONDecodeError):
            comparison = None
    if final is None or final.status != Status.DONE:
        reason = ("the search is still running or stopped before its final training"
                  if final is None else f"the final training ended {final.status}: {final.error}")
        if best is None or best.resolution != target:
            reason = "no candidate has finished at the target resolution yet"
        return Headline(metric, target, None if best is None else best.id, None, None, None, None, None,
                        route_text(route_of(rows, best.id)) if best else "–", comparison, None, reason)
    samples = layout.best_model.samples
    cost = run_cost(view or layout.root)
    return Headline(
        metric=metric, target_resolution=target, candidate=final.candidate, final_metric=final.metric,
        final_normalized=final.normalized_metric, route_iterations=final.extra.get("route_iterations"),
        baseline_value=final.extra.get("baseline"), baseline_kind=final.extra.get("baseline_kind"),
        route=route_text(route_of(rows, final.candidate)), comparison=comparison,
        samples=samples if samples.is_file() else None, run_dir=str(run_dir),
        proggan_route=is_proggan_route(layout, rows, final, view), cost=cost.lines() if cost is not None else [],
        seed=settings.get("seed") if isinstance(settings.get("seed"), int) else None,
        final_iterations=(final.extra.get("snapshot") or {}).get("final_iterations"))
