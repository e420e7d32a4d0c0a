"""Evaluation seeds: which draws a search scores with, and a held-out family it never uses.

A metric's seed fixes its random draws (the generator's latents, SWD's real subset, patches and directions).
The search ranks, selects and normalises with the draw of the run seed itself (the worker's
``eval_options["seed"]``); the final pick and the final training's snapshots choose with ``selection_seed``s,
a family of their own. Its training seeds
(``run_seed * 100_003 + k``) stay far below ``HELDOUT_BASE`` as well.

A claim about the result (``dggan compare``) must use draws the search never saw, or its first draw is the
very one the selection was made on (a winner's curse). ``heldout_seeds`` gives them: every one is at least
``HELDOUT_BASE`` = 2**40, so none equals a seed the search uses while the run seed is below 2**23 (8.4M:
``run_seed * 100_003 + k`` < 2**40), and two runs with different seeds (below 2**24) get different draws.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import MetricError

HELDOUT_BASE = 2**40  # above every seed a search uses for scoring or training
HELDOUT_PER_RUN = 2**12  # held-out draws per run seed
_RUN_SEEDS = 2**24  # run seeds with their own held-out family (larger ones wrap around)


def selection_seed(run_seed: int, index: int) -> int:
    """The ``index``-th draw the search *chooses* with (the final pick, the final training's snapshots): the
    reported numbers use the run seed and ``dggan compare`` the held-out family, so a choice scored with those
    would report the maximum of the noise it was picked with. In [2**30, 2**31): below ``HELDOUT_BASE``."""
    return random.Random(f"selection:{run_seed}:{index}").getrandbits(31) | (1 << 30)


class OverSeeds:
    """Mean and spread of ``scores``, one per evaluation seed (a dataclass's field), and its dict with both."""

    scores: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        """The sample standard deviation over the seeds (0 with one)."""
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": self.mean, "std": self.std}  # type: ignore[call-overload]


def heldout_seeds(run_seed: int, n: int) -> list[int]:
    """``n`` evaluation seeds of ``run_seed`` that no search scoring or training uses (module docstring)."""
    if not 1 <= n <= HELDOUT_PER_RUN:
        raise MetricError(f"between 1 and {HELDOUT_PER_RUN} held-out evaluation seeds per run, not {n}")
    start = HELDOUT_BASE + (int(run_seed) % _RUN_SEEDS) * HELDOUT_PER_RUN
    return [start + i for i in range(n)]


# ---------------------------------------------------------------------- two models on the same seeds
K_SE = 2.0  # standard errors of the mean paired difference that decide a verdict
VERDICT_RULE = (f"a model against another, paired seed by seed (difference = the other's score - the model's,"
                f" oriented so that positive favours the model): 'better' or 'worse' when every paired"
                f" difference has the same sign over 3 or more seeds, or when the mean difference exceeds"
                f" {K_SE:g} standard errors of it; otherwise 'within noise' (always so with one seed); 'not"
                f" comparable' when a score on either side is not finite (a diverged or failed scoring)")


@dataclass(frozen=True)
class Paired:
    """Another model's score minus this model's, per evaluation seed (the same draws on both sides), oriented so
    that a positive difference favours this model (lower is better for FID and SWD). ``dggan compare`` judges
    the final model against ProgGAN with it, the final pick a grown candidate against the ProgGAN route."""

    differences: list[float]

    @classmethod
    def of(cls, mine: Sequence[float], other: Sequence[float], lower_is_better: bool = True) -> Paired:
        if len(mine) != len(other):
            raise MetricError(f"paired scores need one per seed on both sides, got {len(mine)} and {len(other)}")
        sign = 1.0 if lower_is_better else -1.0
        return cls([sign * (o - f) for f, o in zip(mine, other, strict=True)])

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences)

    @property
    def std(self) -> float:
        return statistics.stdev(self.differences) if self.n > 1 else 0.0

    @property
    def sem(self) -> float:
        return self.std / math.sqrt(self.n) if self.n > 1 else math.inf

    @property
    def wins(self) -> int:
        """Seeds on which this model scores better."""
        return sum(d > 0 for d in self.differences)

    @property
    def losses(self) -> int:
        return sum(d < 0 for d in self.differences)

    @property
    def p_value(self) -> float | None:
        """Two-sided paired t-test (scipy), for the reader; the verdict follows ``VERDICT_RULE``."""
        if self.n < 2 or self.std == 0.0:
            return None
        from scipy import stats

        return float(stats.ttest_1samp(self.differences, 0.0).pvalue)

    @property
    def verdict(self) -> str:
        """``better`` / ``worse`` (this model, against the other), ``within noise`` or ``not comparable``:
        ``VERDICT_RULE``."""
        if not all(math.isfinite(d) for d in self.differences):
            return "not comparable"
        if self.n < 2:
            return "within noise"
        if self.n >= 3 and self.wins == self.n:
            return "better"
        if self.n >= 3 and self.losses == self.n:
            return "worse"
        if self.mean != 0.0 and abs(self.mean) > K_SE * self.sem:
            return "better" if self.mean > 0 else "worse"
        return "within noise"

    def to_dict(self) -> dict[str, Any]:
        return {"differences": self.differences, "mean": self.mean, "std": self.std,
                "sem": None if self.n < 2 else self.sem, "wins": self.wins, "losses": self.losses, "n": self.n,
                "p_value": self.p_value, "verdict": self.verdict}


def paired_verdict(mine: Sequence[float], other: Sequence[float], lower_is_better: bool = True) -> str:
    """A model against another, scored on the same seeds: ``better``, ``worse`` or ``within noise``."""
    return Paired.of(mine, other, lower_is_better).verdict
