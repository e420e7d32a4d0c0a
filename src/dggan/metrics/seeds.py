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

import random
import statistics
from dataclasses import asdict
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
