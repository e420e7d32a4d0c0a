"""The paper's analyses of a search (Sec. "Analysis", Fig. 3), as pure functions over ledger rows.

Conventions used throughout (lower metric is better, as for FID and SWD):

* The *score* of a candidate is its ``normalized_metric`` (metric over the ProgGAN baseline at its
  resolution; < 1 means better than ProgGAN). Runs without a baseline fall back to the raw ``metric``
  (``score_key``), which is only comparable within one resolution.
* A candidate is *finished* when its status is ``done`` and its score is a finite number.
* The best candidate and the K/p replay follow Algorithm 1's own rules (``dggan.search.algorithm``).
* ``diverged`` children count as an outcome (not improved, not good); ``failed`` (crashed) and
  ``pending``/``running`` children say nothing about the architecture and are left out.
* A candidate is *good* for a threshold ``t`` when its score is < ``t`` (better than ``t`` times the
  baseline); the paper's wording swaps "above"/"below" but its Fig. 3 plots this reading.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..execution.state import Status
from ..model.actions import PAPER_FILTERS, PAPER_KERNELS, Action, action_kinds, action_label
from ..search import algorithm
from ..search.algorithm import Rules, best_candidate, halve, route, run_steps
from ..search.ledger import CandidateRow, RungRow

ScoreKey = str  # "normalized_metric" or "metric"

__all__ = ["action_label"]  # re-exported for the report; the rest is listed in dggan.analysis


# ---------------------------------------------------------------------- basics
def action_key(action: Action | None) -> tuple[str, int, int] | None:
    """Hashable identity of an action: (kind, kernel, filters); 0 where not applicable."""
    if action is None:
        return None
    return (action.kind, action.kernel or 0, action.filters or 0)


def _action_sort_key(key: tuple[str, int, int]) -> tuple[int, str, int, int]:
    order = list(action_kinds())  # registration order: grow_g, grow_d, grow_res, then the others
    return (order.index(key[0]) if key[0] in order else len(order), key[0], key[1], key[2])


def score_key(rows: Sequence[CandidateRow]) -> ScoreKey:
    """``normalized_metric`` when any finished candidate has one, else the raw ``metric``."""
    if any(r.status == Status.DONE and _finite(r.normalized_metric) for r in rows):
        return "normalized_metric"
    return "metric"


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def score(row: CandidateRow, key: ScoreKey = "normalized_metric") -> float | None:
    """The row's score when it is finished, else None."""
    return algorithm.score_of(row, key)


def finished(rows: Iterable[CandidateRow], key: ScoreKey = "normalized_metric") -> list[CandidateRow]:
    return [r for r in rows if score(r, key) is not None]


# ---------------------------------------------------------------------- 1. G-to-D capacity
@dataclass(frozen=True)
class CapacityPoint:
    id: int
    step: int
    status: str
    resolution: int
    g_params: int
    d_params: int
    g2d_ratio: float
    score: float
    on_route: bool


@dataclass(frozen=True)
class Capacity:
    points: list[CapacityPoint]
    route: list[int]  # ids of the best candidate's growing route that have a point, root first
    zoom_threshold: float
    # G2D ratio range of candidates that beat the baseline (score < 1): the paper's [1/64, 64] claim.
    ratio_range_better_than_baseline: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def capacity(
    rows: Sequence[CandidateRow],
    key: ScoreKey = "normalized_metric",
    zoom_threshold: float = 1.2,
    best_id: int | None = None,
) -> Capacity:
    """Every candidate with a finite score (done, and diverged ones that were still evaluated)."""
    on_route = {r.id for r in route(rows, best_id)} if best_id is not None else set()
    points = []
    for r in rows:
        value = getattr(r, key)
        if r.status not in (Status.DONE, Status.DIVERGED) or not _finite(value) or r.d_params <= 0:
            continue
        points.append(
            CapacityPoint(
                r.id,
                r.step,
                r.status,
                r.resolution,
                r.g_params,
                r.d_params,
                r.g_params / r.d_params,
                float(value),
                r.id in on_route,
            )
        )
    ids = {p.id for p in points}
    route_ids = [r.id for r in route(rows, best_id)] if best_id is not None else []
    better = [p.g2d_ratio for p in points if p.status == Status.DONE and p.score < 1.0]
    span = (min(better), max(better)) if better else None
    return Capacity(points, [i for i in route_ids if i in ids], zoom_threshold, span)


# ---------------------------------------------------------------------- 2. effect of each action
@dataclass(frozen=True)
class ActionEffect:
    label: str
    kind: str
    kernel: int
    filters: int
    n_children: int  # children with an outcome: finished or diverged
    n_improved: int  # child score < parent score
    improved_share: float | None
    n_diverged: int
    mean_ratio: float | None  # mean of child/parent score over finished children (diverged left out)
    std_ratio: float | None  # population std (ddof=0) of the same ratios


def action_effects(rows: Sequence[CandidateRow], key: ScoreKey = "normalized_metric") -> list[ActionEffect]:
    """For every action taken: share of children better than their parent, and child/parent ratio stats."""
    by_id = {r.id: r for r in rows}
    ratios: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    diverged: dict[tuple[str, int, int], int] = defaultdict(int)
    for child in rows:
        akey = action_key(child.action)
        parent = by_id.get(child.parent) if child.parent is not None else None
        if akey is None or parent is None or score(parent, key) is None:
            continue
        if child.status == Status.DIVERGED or (child.status == Status.DONE and score(child, key) is None):
            diverged[akey] += 1
        elif child.status == Status.DONE:
            ratios[akey].append(score(child, key) / score(parent, key))  # type: ignore[operator]
    out = []
    for akey in sorted(set(ratios) | set(diverged), key=_action_sort_key):
        rs = np.asarray(ratios.get(akey, []), dtype=float)
        n = len(rs) + diverged[akey]
        improved = int((rs < 1.0).sum())
        action = Action(akey[0], akey[1] or None, akey[2] or None)  # 0: an action without kernel and filters
        out.append(
            ActionEffect(
                label=action.label(),
                kind=akey[0],
                kernel=akey[1],
                filters=akey[2],
                n_children=n,
                n_improved=improved,
                improved_share=improved / n if n else None,
                n_diverged=diverged[akey],
                mean_ratio=float(rs.mean()) if len(rs) else None,
                std_ratio=float(rs.std()) if len(rs) else None,
            )
        )
    return out


# ---------------------------------------------------------------------- 3. pruning risk
@dataclass(frozen=True)
class PruningRisk:
    threshold: float
    good_parents: int  # parents with score < threshold that have children with an outcome
    good_parent_children: int
    good_parent_good_children: int
    p_good_given_good_parent: float | None
    suboptimal_parents: int
    suboptimal_parent_children: int
    suboptimal_parent_good_children: int
    p_good_given_suboptimal_parent: float | None


PAPER_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(11))


def pruning_thresholds(rows: Sequence[CandidateRow], key: ScoreKey = "normalized_metric") -> tuple[list[float], bool]:
    """(thresholds, is the paper's range): the paper's 0.5 .. 1.0, unless no parent scores below 1.0
    there (a short or a raw-metric run), then 11 steps from the parents' 10th to 90th score percentile."""
    parents = {r.parent for r in rows if r.parent is not None}
    scores = [s for r in rows if r.id in parents and (s := score(r, key)) is not None]
    if not scores or (key == "normalized_metric" and min(scores) < 1.0):
        return list(PAPER_THRESHOLDS), True
    lo, hi = (float(q) for q in np.quantile(scores, [0.1, 0.9]))
    if hi <= lo:
        lo, hi = lo * 0.9, lo * 1.1 + 1e-12
    return [float(f"{t:.4g}") for t in np.linspace(lo, hi, 11)], False


def pruning_risk(
    rows: Sequence[CandidateRow],
    key: ScoreKey = "normalized_metric",
    thresholds: Sequence[float] | None = None,
) -> list[PruningRisk]:
    """How likely good vs sub-optimal parents are to have good children, per threshold.

    Good means score < threshold, for parents and children alike. Pooled over all children of
    the group (a share of children, not an average of per-parent shares). Diverged children are
    not good; failed or unfinished children are left out.
    """
    if thresholds is None:
        thresholds = PAPER_THRESHOLDS
    by_id = {r.id: r for r in rows}
    # (parent score, child score or inf for diverged) for each child with an outcome
    pairs: list[tuple[int, float, float]] = []
    for child in rows:
        parent = by_id.get(child.parent) if child.parent is not None else None
        if parent is None or score(parent, key) is None:
            continue
        if child.status == Status.DIVERGED or (child.status == Status.DONE and score(child, key) is None):
            pairs.append((parent.id, score(parent, key), math.inf))  # type: ignore[arg-type]
        elif child.status == Status.DONE:
            pairs.append((parent.id, score(parent, key), score(child, key)))  # type: ignore[arg-type]
    out = []
    for t in thresholds:
        groups: dict[bool, list[tuple[int, float, float]]] = {True: [], False: []}
        for pid, ps, cs in pairs:
            groups[ps < t].append((pid, ps, cs))

        def stats(group: list[tuple[int, float, float]], t: float = t) -> tuple[int, int, int, float | None]:
            n = len(group)
            good = sum(1 for _, _, cs in group if cs < t)
            return len({pid for pid, _, _ in group}), n, good, (good / n if n else None)

        g, s = stats(groups[True]), stats(groups[False])
        out.append(PruningRisk(float(t), *g, *s))
    return out


# ---------------------------------------------------------------------- 4. K and p replay
@dataclass(frozen=True)
class ReplayRun:
    k: int | None  # None: keep every child (no pruning)
    p: float
    seed: int
    best_score: float | None  # best finished candidate at the target resolution it visited
    best_id: int | None
    cost: int  # candidates it trained (including diverged and failed ones)
    iterations: int = 0  # candidate-iterations it trained (a pruned child counts up to its last rung)
    eta: int = 1  # successive halving's eta in this replay (1: off)
    kept: tuple[tuple[int, ...], ...] = ()  # the parents it kept at each step (ids, best first)


class ReplayIndex:
    """The recorded search, indexed for replays of Algorithm 1 with other K, p and seeds.

    A replay runs the search's own rules and loop (``dggan.search.algorithm.Rules`` and ``run_steps``) over
    the recorded candidates: a (parent, action) pair the real search never trained is skipped, so a replay
    explores no more than the real run did. With the run's own K, p, eta and seed it retraces the real
    search exactly (the same kept sets at every step).
    """

    def __init__(
        self,
        rows: Sequence[CandidateRow],
        key: ScoreKey = "normalized_metric",
        target_resolution: int | None = None,
        settings: dict[str, Any] | None = None,
        rungs: Sequence[RungRow] = (),
    ):
        self.key = key
        self.rows = {r.id: r for r in rows}
        self.rung_scores: dict[int, dict[int, RungRow]] = defaultdict(dict)
        for g in rungs:
            self.rung_scores[g.candidate][g.rung] = g
        self.children: dict[tuple[int, tuple[str, int, int]], CandidateRow] = {}
        for r in sorted(rows, key=lambda r: r.id):
            akey = action_key(r.action)
            if r.parent is not None and akey is not None and _trained(r):
                self.children.setdefault((r.parent, akey), r)  # a re-tried pair: the first one counts
        self.initial = [r for r in sorted(rows, key=lambda r: r.id) if r.parent is None and _trained(r)]
        settings = dict(settings or {})
        done = finished(rows, key)
        reached = max((r.resolution for r in rows), default=8)
        self.target_resolution = (target_resolution or settings.get("target_resolution")
                                  or (max(r.resolution for r in done) if done else None))
        settings["target_resolution"] = max(self.target_resolution or reached, reached)
        self.rules = Rules.from_settings({**_REPLAY_DEFAULTS, **settings}, key=key)
        # A candidate's whole budget: what a search without halving trains it for (the row of a child that
        # halving pruned holds the iterations it reached).
        budget = settings.get("iterations")
        self.child_budget = budget if isinstance(budget, int) else None
        first = settings.get("initial_iterations") or budget
        self.initial_budget = first if isinstance(first, int) else None

    def run(self, k: int | None, p: float, seed: int = 0, eta: int = 1) -> ReplayRun:
        """Algorithm 1 over the recorded candidates with top-K ``k`` (None: keep all), ``p`` and ``seed``; with
        ``eta`` > 1 successive halving prunes each step's children by their recorded rung scores (a child
        without a score at a rung, because the real search pruned it earlier, drops out there)."""
        rules = Rules(top_k=k, p=p, seed=seed, space=self.rules.space, limits=self.rules.limits,
                      max_steps=self.rules.max_steps, key=self.key, selection=self.rules.selection)
        replay = _Replay(self, eta, k, rules)
        run_steps(rules, replay)
        best = self.best(replay.visited if eta <= 1 else (r for r in replay.visited if r.status == Status.DONE))
        return ReplayRun(k, float(p), seed, None if best is None else score(best, self.key),
                         None if best is None else best.id, len(replay.visited), replay.iterations, eta,
                         tuple(replay.kept))

    def survivors(self, kids: list[CandidateRow], eta: int, k: int | None, rules: Rules | None = None,
                  step: int = 0) -> tuple[list[CandidateRow], dict[int, int]]:
        """(children that reach their whole budget, {pruned child: rung it stopped at}), decided by
        ``algorithm.halve`` on the recorded rung scores, as the search decided (random growth: ``rules``' draws)."""
        if eta <= 1:
            return kids, {}
        stopped: dict[int, int] = {}
        alive = list(kids)
        last = max((max(s) for c in kids if (s := self.rung_scores.get(c.id))), default=0)
        for rung in range(last):
            def rung_score(c: CandidateRow, rung: int = rung) -> float | None:
                g = self.rung_scores.get(c.id, {}).get(rung)
                return None if g is None else g.normalized_metric

            alive, stop = halve(alive, rung_score, eta, k, None if rules is None else rules.rung_rng(step, rung))
            stopped.update({c.id: rung for c in stop})
        return alive, stopped

    def trained(self, row: CandidateRow, stopped_rung: int | None) -> int:
        """Iterations a replay trains ``row`` for: up to ``stopped_rung`` when it prunes it there, else its whole
        budget (a child the real search pruned gets the budget a search without halving would have given it)."""
        scores = self.rung_scores.get(row.id, {})
        if stopped_rung is not None and stopped_rung in scores:
            return scores[stopped_rung].iterations
        reached = max((g.iterations for g in scores.values()), default=0)
        if row.status == Status.PRUNED:
            budget = self.initial_budget if row.parent is None else self.child_budget
            return int(budget if budget is not None else reached or row.iterations or 0)
        return int(row.iterations or reached)

    def best(self, visited: Iterable[CandidateRow]) -> CandidateRow | None:
        return best_candidate(visited, self.target_resolution, self.key, exact=True)

    def actual(self) -> ReplayRun:
        """The real search as a replay row: its best at the target resolution and every trained candidate. The
        ProgGAN route's row (``proggan_route``) is left out: the search adds it only in the final pick, and no
        replay draws it, so with the run's own K, p and seed the replay reaches exactly this best."""
        trained = [r for r in self.rows.values() if _trained(r) and not r.extra.get("proggan_route")]
        best = self.best(trained)
        return ReplayRun(
            None,
            1.0,
            -1,
            None if best is None else score(best, self.key),
            None if best is None else best.id,
            len(trained),
            sum(int(r.iterations or 0) for r in trained),
        )


    def proggan_route(self) -> CandidateRow | None:
        """The ProgGAN route's row that the search's final pick added (auto baseline), or None."""
        return next((r for r in self.rows.values() if r.extra.get("proggan_route") and _trained(r)), None)


class _Replay:
    """``algorithm.Steps`` over a recorded search: a step's children are the recorded ones of the drawn pairs;
    those that successive halving lets through compete for the next parents."""

    def __init__(self, index: ReplayIndex, eta: int, k: int | None, rules: Rules):
        self.index, self.eta, self.k, self.rules = index, eta, k, rules
        self.visited: list[CandidateRow] = list(index.initial)
        self.iterations = sum(index.trained(r, None) for r in index.initial)
        self.kept: list[tuple[int, ...]] = []
        self._current: list[CandidateRow] = list(index.initial)

    def candidates(self, step: int) -> list[CandidateRow]:
        return self._current

    def keep(self, step: int, choose: Callable[[], list[CandidateRow]]) -> list[CandidateRow]:
        parents = choose()
        self.kept.append(tuple(r.id for r in parents))
        return parents

    def grow(self, step: int, pairs: list[tuple[CandidateRow, Action]]) -> None:
        kids = [child for parent, action in pairs
                if (child := self.index.children.get((parent.id, action_key(action)))) is not None]  # type: ignore[arg-type]
        self.visited += kids
        survivors, stopped_at = self.index.survivors(kids, self.eta, self.k, self.rules, step)
        self.iterations += sum(self.index.trained(r, stopped_at.get(r.id)) for r in kids)
        self._current = survivors


# What a replay assumes of a ledger whose settings lack a key (written before the key existed, or rows alone).
# Only the action space, the limits and max_steps are read from them: K, p and the seed are the replay's own.
_REPLAY_DEFAULTS: dict[str, Any] = {"top_k": None, "p": 1.0, "seed": 0, "kernels": list(PAPER_KERNELS),
                                    "filters": list(PAPER_FILTERS), "grow_g": True, "grow_d": True,
                                    "grow_res": True, "actions": [], "max_g_layers": None, "max_d_layers": None,
                                    "max_steps": None}


def _trained(r: CandidateRow) -> bool:
    return r.status.finished


@dataclass(frozen=True)
class ReplayCell:
    k: int | None
    p: float
    seeds: int
    reached: int  # seeds whose replay reached a finished candidate at the target resolution
    best_mean: float | None
    best_std: float | None
    best_min: float | None
    cost_mean: float
    cost_std: float
    runs: list[ReplayRun] = field(default_factory=list, repr=False)
    eta: int = 1
    iterations_mean: float = 0.0  # candidate-iterations

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("runs")
        return d


def replay_grid(
    rows: Sequence[CandidateRow],
    ks: Sequence[int | None],
    ps: Sequence[float],
    seeds: int = 5,
    key: ScoreKey = "normalized_metric",
    index: ReplayIndex | None = None,
    etas: Sequence[int] = (1,),
) -> list[ReplayCell]:
    """Every (K, p, eta) setting, each averaged over ``seeds`` replays (seeds 0..seeds-1)."""
    index = index or ReplayIndex(rows, key)
    out = []
    for eta in etas:
        for k, p in ((k, p) for k in ks for p in ps):
            runs = [index.run(k, p, s, eta) for s in range(seeds)]
            bests = np.asarray([r.best_score for r in runs if r.best_score is not None], dtype=float)
            costs = np.asarray([r.cost for r in runs], dtype=float)
            out.append(
                ReplayCell(
                    k,
                    float(p),
                    seeds,
                    len(bests),
                    float(bests.mean()) if len(bests) else None,
                    float(bests.std()) if len(bests) else None,
                    float(bests.min()) if len(bests) else None,
                    float(costs.mean()),
                    float(costs.std()),
                    runs,
                    eta,
                    float(np.mean([r.iterations for r in runs])),
                )
            )
    return out


# ---------------------------------------------------------------------- 5. early scores (successive halving)
@dataclass(frozen=True)
class RungPredictiveness:
    rung: int
    fraction: float  # of the candidates' budget
    n: int  # candidates with a score at this rung and at their whole budget
    spearman: float | None
    p_value: float | None


def rung_predictiveness(rows: Sequence[CandidateRow], rungs: Sequence[RungRow]) -> list[RungPredictiveness]:
    """For each early rung: Spearman's rank correlation between the rung's normalised score and the score at
    the whole budget, over the candidates that reached it (survivors only: the pruned have no final score)."""
    from scipy.stats import spearmanr

    finals = {r.id: r.normalized_metric for r in rows if r.status == Status.DONE and _finite(r.normalized_metric)}
    budget = {r.id: r.iterations for r in rows}
    by_rung: dict[int, list[tuple[float, float, float]]] = defaultdict(list)
    last = max((g.rung for g in rungs), default=0)
    for g in rungs:
        if g.rung < last and g.candidate in finals and _finite(g.normalized_metric):
            fraction = g.iterations / budget[g.candidate] if budget.get(g.candidate) else math.nan
            by_rung[g.rung].append((g.normalized_metric, finals[g.candidate], fraction))  # type: ignore[arg-type]
    out = []
    for rung, pairs in sorted(by_rung.items()):
        fraction = float(np.nanmedian([f for _, _, f in pairs]))
        if len(pairs) >= 3 and len({a for a, _, _ in pairs}) > 1 and len({b for _, b, _ in pairs}) > 1:
            rho, pv = spearmanr([a for a, _, _ in pairs], [b for _, b, _ in pairs])
            out.append(RungPredictiveness(rung, fraction, len(pairs), float(rho), float(pv)))
        else:
            out.append(RungPredictiveness(rung, fraction, len(pairs), None, None))
    return out


def search_hyperparameters(rows: Sequence[CandidateRow], settings: dict[str, Any]) -> tuple[int, float]:
    """The run's (K, p): from its settings, else (a ledger without settings) estimated from the ledger."""
    k, p = settings.get("top_k"), settings.get("p")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        per_step: dict[int, int] = defaultdict(int)
        for r in rows:
            if r.kept:
                per_step[r.step] += 1
        k = max(per_step.values(), default=0) or max(1, len(finished(rows, score_key(rows))))
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p <= 1:
        parents = {r.parent for r in rows if r.parent is not None}
        n_actions = len({action_key(r.action) for r in rows if r.action is not None}) or 1
        children = sum(1 for r in rows if r.parent is not None)
        p = min(1.0, children / (len(parents) * n_actions)) if parents else 1.0
    return int(k), float(p)


def default_grid(k_real: int, p_real: float) -> tuple[list[int | None], list[float]]:
    """Ks: powers of two below the run's K, then K itself; ps: 0.1..1 plus the run's p."""
    ks: list[int | None] = [k for k in (1, 2, 4, 8, 16, 32, 64) if k < k_real] + [k_real]
    ps = sorted({0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, round(p_real, 3)})
    return ks, ps
