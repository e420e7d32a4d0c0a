"""A synthetic search ledger: Algorithm 1 run over a made-up metric model, written with the Ledger API.

For tests and benchmarks of the analyses and the report (thousands of candidates in seconds, no
training). The metric model has structure the analyses should find: D layers with large kernels hurt,
1024-filter layers hurt and diverge more often, and very unbalanced G/D capacity hurts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..actions import Action, ActionSpace, GrowthLimits, apply_action
from ..genome import Genome
from ..io import atomic_write_json
from ..metrics.paper import PROGGAN_FID_CIFAR10
from ..runs import RunLayout
from ..search.algorithm import Rules, best_candidate
from ..search.ledger import Ledger, Status


def _drift(action: Action) -> float:
    """Mean change of log(normalized metric) that an action causes in the synthetic model."""
    if action.kind == "grow_res":
        return -0.08  # a grown resolution tends to beat its parent's (normalised) score, as real runs show
    drift = -0.03
    if action.kind == "grow_d" and (action.kernel or 0) >= 7:
        drift += 0.08  # the paper: large kernels in D do much worse
    if action.filters == 1024:
        drift += 0.06 if action.kind == "grow_g" else 0.03  # G is more sensitive to over-complicated layers
    return drift


class _Row:
    """The little of a candidate that Algorithm 1's rules read."""

    def __init__(self, cid: int, genome: Genome):
        self.id, self.genome, self.resolution, self.status = cid, genome, genome.resolution, Status.DONE


def write_synthetic_run(
    run_dir: str | Path,
    n_candidates: int = 200,
    *,
    seed: int = 0,
    top_k: int = 20,
    p: float = 0.4,
    n_initial: int = 3,
    target_resolution: int = 32,
    channels: int = 64,
    space: ActionSpace | None = None,
    pending_tail: int = 0,
    final: bool = True,
) -> Path:
    """Write RUN/options.json and RUN/ledger.sqlite holding ``n_candidates`` candidates; returns RUN.

    Step 0 holds ``n_initial`` initial candidates (the base genome and variants of it, no parent);
    later steps follow Algorithm 1's own rules (``dggan.search.algorithm.Rules``) with ``top_k``, ``p``
    and ``seed``; only the scores come from the made-up model. The last ``pending_tail`` candidates are left pending (a
    search still running). No checkpoints are written; ``checkpoint`` paths point where they would be.
    """
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    space = space or ActionSpace()
    limits = GrowthLimits(target_resolution=target_resolution)
    chans = {res: channels for res in (4, 8, 16, 32, 64, 128, 256) if res <= target_resolution}
    baseline = {r: v for r, v in PROGGAN_FID_CIFAR10.items() if r <= target_resolution}
    for res in chans:  # resolutions the CIFAR table lacks get a plausible baseline (none below d0 = 8)
        if res >= 8:
            baseline.setdefault(res, 20.0)
    # The keys of the search's own settings (SearchConfig.to_dict()), so the report reads both alike.
    settings: dict[str, Any] = {
        "data": "synthetic-ledger",
        "metric": "fid10k",
        "baseline": {str(k): v for k, v in sorted(baseline.items())},
        "initial_channels": [channels],
        "latent_size": 128,
        "base_resolution": 8,
        "target_resolution": target_resolution,
        "top_k": top_k,
        "p": p,
        "kernels": list(space.kernels),
        "filters": list(space.filters),
        "grow_g": space.grow_g,
        "grow_d": space.grow_d,
        "grow_res": space.grow_res,
        "seed": seed,
        "extra": {"synthetic_ledger": True, "initial_candidates": n_initial},
    }
    layout = RunLayout(run)
    atomic_write_json(layout.options, settings)
    rules = Rules.from_settings(settings)

    base = Genome.base(channels=chans, max_resolution=target_resolution)
    conv_actions = [a for a in space.actions() if a.kind != "grow_res"]
    initial = [base] + [
        apply_action(base, conv_actions[int(rng.integers(len(conv_actions)))], limits, space)
        for _ in range(max(0, n_initial - 1))
    ]
    initial = initial[: max(1, min(n_initial, n_candidates))]

    ledger = Ledger.create(layout.ledger, settings)
    ledger.set_durable(False)  # made-up data needs no fsync per write; without this 2,000 candidates take ~15 s
    total = 0
    try:

        def evaluate(cid: int, genome: Genome, log_norm: float, action: Action | None) -> float | None:
            """Record an outcome; returns the log normalized metric of a finished candidate."""
            nonlocal total
            total += 1
            risk = 0.015 + (0.04 if action is not None and action.filters == 1024 else 0.0)
            seconds = float(genome.g_params() + genome.d_params()) / 2e4 * rng.uniform(0.8, 1.2)
            ckpt = layout.relative(layout.checkpoint(cid))
            if total > n_candidates - pending_tail:
                ledger.update(cid, status=Status.PENDING if total < n_candidates else Status.RUNNING)
                return None
            roll = rng.random()
            if roll < 0.01:
                ledger.update(
                    cid,
                    status=Status.FAILED,
                    error="RuntimeError: CUDA out of memory (synthetic)",
                    train_seconds=seconds * 0.1,
                )
                return None
            if roll < 0.01 + risk:
                # Half of the diverged runs were still evaluated (huge FID), half stopped with NaN losses.
                if rng.random() < 0.5:
                    norm = float(rng.uniform(8, 20))
                    ledger.update(
                        cid,
                        status=Status.DIVERGED,
                        metric=norm * baseline[genome.resolution],
                        normalized_metric=norm,
                        train_seconds=seconds,
                        checkpoint=ckpt,
                        error="discriminator loss exploded (synthetic)",
                    )
                else:
                    ledger.update(
                        cid,
                        status=Status.DIVERGED,
                        train_seconds=seconds * 0.5,
                        error="loss became NaN (synthetic)",
                    )
                return None
            norm = math.exp(log_norm)
            metric = norm * baseline[genome.resolution]
            ledger.update(
                cid,
                status=Status.DONE,
                metric=metric,
                normalized_metric=norm,
                train_seconds=seconds,
                eval_seconds=seconds * 0.1,
                checkpoint=ckpt,
                extra={"fid": metric, "iterations": 100_000, "synthetic": True},
            )
            return log_norm

        scores: dict[int, float] = {}
        genomes: dict[int, Genome] = {}
        for genome in initial:
            cid = ledger.add_candidate(step=0, genome=genome, parent=None, action=None, seed=int(rng.integers(2**31)))
            value = evaluate(cid, genome, float(rng.normal(math.log(1.05), 0.08)), None)
            genomes[cid] = genome
            if value is not None:
                scores[cid] = value

        def ranked(ids: list[int]) -> list[int]:
            return sorted(ids, key=lambda c: (scores[c], c))

        parents = ranked(list(scores))  # Algorithm 1 starts from every initial candidate
        ledger.set_kept(0, parents)
        step = 0
        while total < n_candidates and parents:
            step += 1
            children: list[int] = []
            for pid, action in rules.children(step, [_Row(c, genomes[c]) for c in parents]):
                if total >= n_candidates:
                    break
                child = apply_action(genomes[pid.id], action, limits, space)
                cid = ledger.add_candidate(step=step, genome=child, parent=pid.id, action=action,
                                           seed=int(rng.integers(2**31)))
                genomes[cid] = child
                imbalance = abs(math.log2(child.g_params() / child.d_params()))
                log_norm = (
                    0.85 * scores[pid.id]
                    + 0.15 * math.log(0.7)
                    + _drift(action)
                    + 0.03 * max(0.0, imbalance - 3.0)
                    + float(rng.normal(0, 0.15 if action.kind == "grow_res" else 0.07))
                )
                value = evaluate(cid, child, log_norm, action)
                if value is not None:
                    scores[cid] = value
                    children.append(cid)
            if not children and total < n_candidates:
                break  # nothing left to grow (every parent hit its limits)
            parents = ranked(children)[:top_k]
            ledger.set_kept(step, parents)
        if final and scores:
            best = best_candidate(ledger.candidates(status=Status.DONE), target_resolution)
            assert best is not None
            top = best.resolution
            norm = math.exp(scores[best.id]) * 0.9  # longer final training helps a little
            ledger.set_final(
                candidate=best.id,
                status=Status.DONE,
                metric=norm * baseline[top],
                normalized_metric=norm,
                iterations=500_000,
                train_seconds=3600.0,
                checkpoint="best/checkpoint.safetensors",
            )
            atomic_write_json(
                layout.best / "metrics.json",
                {
                    "candidate": best.id,
                    "fid": norm * baseline[top],
                    "normalized_metric": norm,
                    "synthetic": True,
                },
            )
            atomic_write_json(layout.best / "genome.json", genomes[best.id].to_dict())
    finally:
        ledger.close()
    return run
