"""Algorithm 1 of the paper as pure rules: which (parent, action) pairs a step draws, which children are
kept, when the search stops, and which candidate is "the best".

The driver, the K/p replay of the report and the synthetic-ledger generator all call these functions, so
a replay with the run's own K, p and seed retraces the real search exactly.

- Every (kept parent, valid action) pair is drawn with probability ``p``, from a random stream seeded by
  the search seed and the step. If none is drawn, one action of the **best** parent is (so a small p
  never ends the search).
- Past ``max_steps`` without the target resolution, growth is forced: **every** kept parent that can
  still double its resolution gets its ``grow_res`` child (no draw), so the best route is never dropped.
- The ``top_k`` finished children by normalised metric (ties: lower id) become the next parents; at step 0
  every finished initial candidate is a parent (the paper's P = {initial candidates}). ``selection="random"``
  (random growth, the baseline that measures the ranking's worth) keeps K finished children drawn at random
  instead, and halving's rungs keep a random 1/eta: the same budget and draws, no ranking until the final pick.
- The search stops when no parent has a valid action left, or at ``max_steps`` once a parent is at the
  target resolution.
- The best candidate is the finished one with the lowest score at the target resolution; before any
  candidate reaches it (a running search), the best at the highest resolution reached so far.
- The final pick (beyond the paper): the best few at the target are re-scored over selection seeds
  (``metrics.seeds.selection_seed``) and picked by their mean; the final training is scored at
  ``final_points`` and its best snapshot kept.
- Successive halving (beyond the paper, ``halving_keep``): at each rung of their budget a step's children
  are ranked by their normalised rung score and only the best 1/eta go on, never fewer than K.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..errors import LedgerError
from ..execution.state import Status
from ..model.actions import Action, ActionSpace, GrowthLimits, valid_actions
from ..model.genome import Genome


class Candidate(Protocol):
    """What the rules need to know of a candidate (a ledger row, or anything shaped like one)."""

    @property
    def id(self) -> int: ...

    @property
    def genome(self) -> Genome: ...

    @property
    def status(self) -> Status: ...

    @property
    def resolution(self) -> int: ...


C = TypeVar("C", bound=Candidate)

# The settings Algorithm 1 reads (``Rules.from_settings``); ``selection`` and ``actions``, newer, have defaults.
_RULE_KEYS = ("top_k", "p", "seed", "kernels", "filters", "grow_g", "grow_d", "grow_res", "target_resolution",
              "max_g_layers", "max_d_layers", "max_steps")


def seed_for(search_seed: int, candidate_id: int) -> int:
    """A candidate's training seed: a function of the search seed and its id only (the baseline's
    candidates are numbered in their own ledger), so a resumed or replayed search trains the same nets."""
    return search_seed * 100_003 + candidate_id


def final_points(final_iterations: int, count: int, grid: Iterable[int] = ()) -> list[int]:
    """Where the final training is scored, as iterations into it: the start (the chosen candidate itself),
    ``count - 1`` evenly spaced points after it, and always the end. ``grid`` (offsets where the ProgGAN curve
    has a model) snaps each point to the nearest of them (ties: the earlier), so every point has a ProgGAN
    model at exactly its training. ``count`` 1 (or no final training): the end only."""
    if count <= 1 or final_iterations <= 0:
        return [max(final_iterations, 0)]
    snaps = sorted({g for g in grid if 0 < g <= final_iterations} | {final_iterations})
    points = {0, final_iterations}
    for k in range(1, count - 1):
        want = round(k * final_iterations / (count - 1))
        points.add(min(snaps, key=lambda g: (abs(g - want), g)) if grid else want)  # noqa: B023 (called at once)
    return sorted(points)


@functools.lru_cache(maxsize=8192)
def _valid_actions(genome: Genome, space: ActionSpace, limits: GrowthLimits) -> tuple[Action, ...]:
    # Replays ask the same parents again and again (genomes, spaces and limits are frozen, so hashable).
    return tuple(valid_actions(genome, space, limits))


def step_rng(seed: int, step: int, purpose: str = "") -> random.Random:
    """The random stream of one step's draws: a function of the search seed, the step and what it draws
    (``""``: the (parent, action) pairs; random growth's selection and rungs have streams of their own, so
    its children are exactly the beam search's of the same seed wherever the parents agree)."""
    return random.Random(f"{seed}:{step}" + (f":{purpose}" if purpose else ""))


SELECTIONS = ("beam", "random")


def score_of(row: Any, key: str = "normalized_metric") -> float | None:
    """The score a candidate is ranked by (lower is better), or None when it has none."""
    value = getattr(row, key)
    if row.status != Status.DONE or value is None or not math.isfinite(value):
        return None
    return float(value)


def rank(rows: Iterable[C], key: str = "normalized_metric") -> list[C]:
    """Finished candidates with a score, best first (ties: lower id)."""
    scored = [r for r in rows if score_of(r, key) is not None]
    return sorted(scored, key=lambda r: (score_of(r, key), r.id))


def best_per_resolution(rows: Iterable[C], key: str = "normalized_metric") -> dict[int, C]:
    """The best finished candidate at each resolution, by resolution."""
    best: dict[int, C] = {}
    for r in rank(rows, key):  # best first: each resolution keeps its first
        best.setdefault(r.resolution, r)
    return dict(sorted(best.items()))


def best_candidate(rows: Iterable[C], target_resolution: int | None = None,
                   key: str = "normalized_metric", *, exact: bool = False) -> C | None:
    """The best finished candidate at ``target_resolution``; before any reached it (or without a target),
    the best at the highest resolution reached, unless ``exact`` (then None). "The best" everywhere: the
    search's final pick, the report, ``dggan status``, the headline and the replay all ask this."""
    ranked = rank(rows, key)
    at_target = [r for r in ranked if r.resolution == target_resolution]
    if at_target:
        return at_target[0]
    if not ranked or exact:
        return None
    top = max(r.resolution for r in ranked)
    return next(r for r in ranked if r.resolution == top)


def search_result(rows: Iterable[C], final_candidate: int | None, target_resolution: int | None = None,
                  key: str = "normalized_metric") -> C | None:
    """The candidate a run's result is about: the one the search trained further (``final_candidate``), else,
    while no final training exists, ``best_candidate``."""
    rows = list(rows)
    if final_candidate is not None:
        found = next((r for r in rows if r.id == final_candidate), None)
        if found is not None:
            return found
    return best_candidate(rows, target_resolution, key)


def pick_by_mean(scores: Mapping[int, Sequence[float]]) -> int | None:
    """The final pick: the candidate with the lowest mean score over its evaluation seeds (ties: lower id);
    candidates with a non-finite score are out. None when none is left."""
    means = {c: sum(v) / len(v) for c, v in scores.items() if v and all(math.isfinite(x) for x in v)}
    return min(means, key=lambda c: (means[c], c)) if means else None


class Linked(Candidate, Protocol):
    @property
    def parent(self) -> int | None: ...


L = TypeVar("L", bound=Linked)


def route(rows: Iterable[L], candidate: int) -> list[L]:
    """The ancestor chain of ``candidate`` via ``parent``, root first (its growing route)."""
    by_id = {r.id: r for r in rows}
    chain: list[L] = []
    seen: set[int] = set()
    cur: int | None = candidate
    while cur is not None and cur in by_id and cur not in seen:  # `seen` guards a corrupt cyclic ledger
        seen.add(cur)
        chain.append(by_id[cur])
        cur = by_id[cur].parent
    return chain[::-1]


def halving_keep(n: int, eta: int, top_k: int | None) -> int:
    """How many of ``n`` children go on to the next rung: the best 1/eta, but never fewer than K (when there
    are K), so that top-K is still chosen among children trained for their whole budget."""
    if eta <= 1 or top_k is None:
        return n
    return min(n, max(math.ceil(n / eta), top_k))


def halve(children: Sequence[C], rung_score: Callable[[C], float | None], eta: int,
          top_k: int | None, rng: random.Random | None = None) -> tuple[list[C], list[C]]:
    """One rung of successive halving: (go on, stop). Children with a finite rung score are ranked (ties:
    lower id) and the best ``halving_keep`` go on; a child without a score (it did not finish the rung)
    stops. With ``rng`` (random growth) as many go on, drawn at random. The search and the report's replay
    both decide with this."""
    scored = [c for c in children if (v := rung_score(c)) is not None and math.isfinite(v)]
    scored.sort(key=lambda c: (rung_score(c), c.id))
    if rng is not None:  # random growth: which children go on is drawn (from id order), not ranked
        scored.sort(key=lambda c: c.id)
        rng.shuffle(scored)
    keep = halving_keep(len(scored), eta, top_k)
    return scored[:keep], [c for c in children if c not in scored[:keep]]


@dataclass(frozen=True)
class Rules:
    """The settings Algorithm 1 runs by. ``top_k=None`` keeps every finished child (no pruning)."""

    top_k: int | None
    p: float
    seed: int
    space: ActionSpace
    limits: GrowthLimits
    max_steps: int | None = None
    key: str = "normalized_metric"
    selection: str = "beam"  # "beam": the paper's top-K; "random": K finished children drawn at random

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")

    @property
    def target_resolution(self) -> int:
        return self.limits.target_resolution

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **overrides: Any) -> Rules:
        """The rules of a run's settings (``SearchConfig.to_dict()``, as options.json and the ledger store
        them): the one way rules are built (``SearchConfig.rules`` calls this), so a replay and the search
        read the same values. A missing key is an error, not a default that could differ from the search's."""
        missing = [k for k in _RULE_KEYS if k not in settings]
        if missing:
            raise LedgerError(f"the run's settings lack {', '.join(missing)}; they were not written by a dggan"
                              " search (options.json / the ledger's settings)")
        space = ActionSpace(kernels=tuple(settings["kernels"]), filters=tuple(settings["filters"]),
                            grow_g=bool(settings["grow_g"]), grow_d=bool(settings["grow_d"]),
                            grow_res=bool(settings["grow_res"]),
                            # ledgers written before registered actions took the paper's three alone
                            extra=tuple(settings.get("actions") or ()))
        limits = GrowthLimits(int(settings["target_resolution"]), settings["max_g_layers"], settings["max_d_layers"])
        values: dict[str, Any] = {"top_k": settings["top_k"], "p": float(settings["p"]),
                                  "seed": int(settings["seed"]), "space": space, "limits": limits,
                                  "max_steps": settings["max_steps"],
                                  # ledgers written before random growth existed ranked by score
                                  "selection": settings.get("selection", "beam")}
        values.update(overrides)
        return cls(**values)

    # ------------------------------------------------------------------ growth
    def forced(self, step: int) -> bool:
        """Whether children of ``step`` are forced ``grow_res`` children (past ``max_steps``)."""
        return self.max_steps is not None and step > self.max_steps

    def actions_of(self, genome: Genome) -> tuple[Action, ...]:
        return _valid_actions(genome, self.space, self.limits)

    def children(self, step: int, parents: Sequence[C]) -> list[tuple[C, Action]]:
        """The (parent, action) pairs that become the children of ``step``; ``parents`` ranked best first."""
        if self.forced(step):
            grow = Action("grow_res")
            return [(parent, grow) for parent in parents if grow in self.actions_of(parent.genome)]
        options = [(parent, self.actions_of(parent.genome)) for parent in parents]
        pairs = [(parent, action) for parent, actions in options for action in actions]
        rng = step_rng(self.seed, step)
        drawn = [pair for pair in pairs if rng.random() < self.p]
        if not drawn and pairs:
            # p so small that nothing was drawn: grow the best parent that can still grow.
            parent, actions = next((parent, actions) for parent, actions in options if actions)
            drawn = [(parent, rng.choice(actions))]
        return drawn

    # ------------------------------------------------------------------ selection and stopping
    def select(self, candidates: Iterable[C], step: int) -> list[C]:
        """The parents of step + 1: the top-K finished candidates of ``step`` by score, best first (at step 0
        every finished initial candidate, as Algorithm 1 starts from P = {initial candidates}); with random
        selection, K of them drawn at random, in the order drawn."""
        ranked = rank(candidates, self.key)
        if self.top_k is None or step == 0:
            return ranked
        if self.selection == "random":
            # Drawn from the candidates in id order, so the draw cannot depend on their scores.
            pool = sorted(ranked, key=lambda r: r.id)
            return step_rng(self.seed, step, "select").sample(pool, min(self.top_k, len(pool)))
        return ranked[: self.top_k]

    def rung_rng(self, step: int, rung: int) -> random.Random | None:
        """The stream that draws which children go on at a rung under random growth (None: ranked)."""
        return step_rng(self.seed, step, f"rung{rung}") if self.selection == "random" else None

    def should_stop(self, step: int, parents: Sequence[C]) -> bool:
        """After selecting ``parents`` at ``step``: nothing can grow, or ``max_steps`` is reached at the target."""
        if not parents or not any(self.actions_of(p.genome) for p in parents):
            return True
        at_target = any(p.resolution == self.target_resolution for p in parents)
        return self.max_steps is not None and step >= self.max_steps and at_target


class Steps(Protocol[C]):
    """Where Algorithm 1's candidates come from: the search trains them and records them in its ledger; the
    report's replay looks them up among the recorded ones; the synthetic ledger makes their scores up."""

    def candidates(self, step: int) -> Sequence[C]:
        """The candidates of ``step``, trained and scored (step 0: the initial ones)."""
        ...

    def keep(self, step: int, choose: Callable[[], list[C]]) -> list[C]:
        """The parents of step + 1: ``choose()`` (the rules' top-K), recorded; or what was recorded before."""
        ...

    def grow(self, step: int, pairs: list[tuple[C, Action]]) -> None:
        """Make the children of ``step`` from the drawn (parent, action) pairs."""
        ...


def run_steps(rules: Rules, steps: Steps[C]) -> tuple[int, list[C]]:
    """Algorithm 1: train a step, keep its top-K, stop or draw the next step's children from them; returns the
    last step and its parents (empty when no candidate of that step finished). The one loop of the search,
    the replay and the synthetic ledger."""
    step = 0
    while True:
        current = steps.candidates(step)
        parents = steps.keep(step, lambda: rules.select(current, step))  # noqa: B023 (called at once)
        if not parents or rules.should_stop(step, parents):
            return step, parents
        steps.grow(step + 1, rules.children(step + 1, parents))
        step += 1
