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

from ..actions import Action, ActionSpace, GrowthLimits, apply_action, valid_actions
from ..genome import Genome
from ..io import atomic_write_json
from ..metrics.normalize import PROGGAN_FID_CIFAR10
from ..search.ledger import Ledger


def _drift(action: Action) -> float:
    """Mean change of log(normalized metric) that an action causes in the synthetic model."""
    if action.kind == "grow_res":
        return 0.0
    drift = -0.03
    if action.kind == "grow_d" and (action.kernel or 0) >= 7:
        drift += 0.08  # the paper: large kernels in D do much worse
    if action.filters == 1024:
        drift += 0.06 if action.kind == "grow_g" else 0.03  # G is more sensitive to over-complicated layers
    return drift


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
    each later step adds every (kept parent, valid action) pair with probability ``p`` and keeps the
    top ``top_k`` by normalized metric. The last ``pending_tail`` candidates are left pending (a
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
    atomic_write_json(run / "options.json", settings)

    base = Genome.base(channels=chans, max_resolution=target_resolution)
    conv_actions = [a for a in space.actions() if a.kind != "grow_res"]
    initial = [base] + [
        apply_action(base, conv_actions[int(rng.integers(len(conv_actions)))], limits, space)
        for _ in range(max(0, n_initial - 1))
    ]
    initial = initial[: max(1, min(n_initial, n_candidates))]

    ledger = Ledger.create(run / "ledger.sqlite", settings)
    ledger.set_durable(False)  # made-up data needs no fsync per write; without this 2,000 candidates take ~15 s
    total = 0
    try:

        def evaluate(cid: int, genome: Genome, log_norm: float, action: Action | None) -> float | None:
            """Record an outcome; returns the log normalized metric of a finished candidate."""
            nonlocal total
            total += 1
            risk = 0.015 + (0.04 if action is not None and action.filters == 1024 else 0.0)
            seconds = float(genome.g_params() + genome.d_params()) / 2e4 * rng.uniform(0.8, 1.2)
            ckpt = f"candidates/c{cid:05d}/checkpoint.safetensors"
            if total > n_candidates - pending_tail:
                ledger.update(cid, status="pending" if total < n_candidates else "running")
                return None
            roll = rng.random()
            if roll < 0.01:
                ledger.update(
                    cid,
                    status="failed",
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
                        status="diverged",
                        metric=norm * baseline[genome.resolution],
                        normalized_metric=norm,
                        train_seconds=seconds,
                        checkpoint=ckpt,
                        error="discriminator loss exploded (synthetic)",
                    )
                else:
                    ledger.update(
                        cid,
                        status="diverged",
                        train_seconds=seconds * 0.5,
                        error="loss became NaN (synthetic)",
                    )
                return None
            norm = math.exp(log_norm)
            metric = norm * baseline[genome.resolution]
            ledger.update(
                cid,
                status="done",
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
        parents = sorted(scores, key=lambda c: (scores[c], c))
        ledger.set_kept(0, parents[:top_k])
        step = 0
        while total < n_candidates and parents:
            step += 1
            children: list[int] = []
            for pid in parents:
                for action in valid_actions(genomes[pid], space, limits):
                    if total >= n_candidates or rng.random() >= p:
                        continue
                    child = apply_action(genomes[pid], action, limits, space)
                    cid = ledger.add_candidate(
                        step=step,
                        genome=child,
                        parent=pid,
                        action=action.to_dict(),
                        seed=int(rng.integers(2**31)),
                    )
                    genomes[cid] = child
                    imbalance = abs(math.log2(child.g_params() / child.d_params()))
                    log_norm = (
                        0.85 * scores[pid]
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
            parents = sorted(children, key=lambda c: (scores[c], c))[:top_k]
            ledger.set_kept(step, parents)
        if final and scores:
            top = max(genomes[c].resolution for c in scores)
            best = min((c for c in scores if genomes[c].resolution == top), key=lambda c: (scores[c], c))
            norm = math.exp(scores[best]) * 0.9  # longer final training helps a little
            ledger.set_final(
                candidate=best,
                status="done",
                metric=norm * baseline[top],
                normalized_metric=norm,
                iterations=500_000,
                train_seconds=3600.0,
                checkpoint="best/checkpoint.safetensors",
            )
            atomic_write_json(
                run / "best" / "metrics.json",
                {
                    "candidate": best,
                    "fid": norm * baseline[top],
                    "normalized_metric": norm,
                    "synthetic": True,
                },
            )
            atomic_write_json(run / "best" / "genome.json", genomes[best].to_dict())
    finally:
        ledger.close()
    return run
