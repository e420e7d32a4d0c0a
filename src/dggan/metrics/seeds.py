"""Evaluation seeds: which draws a search scores with, and a held-out family it never uses.

A metric's seed fixes its random draws (the generator's latents, SWD's real subset, patches and directions).
The search ranks, selects and normalises with draws of the run seed: ``search_seed(run_seed)``, the run seed
itself (the worker's ``eval_options["seed"]``), and a search that re-scores its pick over several draws
should take them from ``search_seeds`` (the run seed, then the next ones). Its training seeds
(``run_seed * 100_003 + k``) stay far below ``HELDOUT_BASE`` as well.

A claim about the result (``dggan compare``) must use draws the search never saw, or its first draw is the
very one the selection was made on (a winner's curse). ``heldout_seeds`` gives them: every one is at least
``HELDOUT_BASE`` = 2**40, so none equals a seed the search uses while the run seed is below 2**23 (8.4M:
``run_seed * 100_003 + k`` < 2**40), and two runs with different seeds (below 2**24) get different draws.
"""

from __future__ import annotations

from ..errors import MetricError

HELDOUT_BASE = 2**40  # above every seed a search uses for scoring or training
HELDOUT_PER_RUN = 2**12  # held-out draws per run seed
_RUN_SEEDS = 2**24  # run seeds with their own held-out family (larger ones wrap around)


def search_seed(run_seed: int) -> int:
    """The draw the search scores every candidate (and its final model) with."""
    return int(run_seed)


def search_seeds(run_seed: int, n: int) -> list[int]:
    """``n`` draws for a search that re-scores beyond its first: the run seed, then the next ones (all below
    ``HELDOUT_BASE``, so never one of ``heldout_seeds``)."""
    return [int(run_seed) + i for i in range(n)]


def heldout_seeds(run_seed: int, n: int) -> list[int]:
    """``n`` evaluation seeds of ``run_seed`` that no search scoring or training uses (module docstring)."""
    if not 1 <= n <= HELDOUT_PER_RUN:
        raise MetricError(f"between 1 and {HELDOUT_PER_RUN} held-out evaluation seeds per run, not {n}")
    start = HELDOUT_BASE + (int(run_seed) % _RUN_SEEDS) * HELDOUT_PER_RUN
    return [start + i for i in range(n)]


def is_heldout(seed: int) -> bool:
    return int(seed) >= HELDOUT_BASE
