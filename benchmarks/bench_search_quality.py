"""Does the search find a better GAN than ProgGAN, and what does successive halving save?

Usage: python benchmarks/bench_search_quality.py claim   [--presets demo shapes] [--seeds 0 1 2] [--out DIR]
       python benchmarks/bench_search_quality.py halving [--presets demo shapes] [--seeds 0 1 2] [--out DIR]
       python benchmarks/bench_search_quality.py claim-long [--presets shapes] [--seeds 0 1 2] [--out DIR]
       python benchmarks/bench_search_quality.py selection --out CLAIM_DIR [--eval-seeds 5]

``claim``: each preset as it is (``demo``: the handwritten digits, ``shapes``: the synthetic shapes), one run
per seed, then ``dggan compare`` (the final model against ProgGAN at equal training and ProgGAN with the
search's whole compute, over ``--eval-seeds`` evaluation seeds) and, where the data has a held-out split
(digits), the final model's SWD against the held-out images next to the SWD between two halves of them.
``claim-long``: the same with every candidate trained four times longer (``LONG``).

``halving``: plain (``halving_eta=1``) against successive halving (eta 3, rungs 1/27, 1/9, 1/3, 1) on searches
with many children per step (``WIDE``: every one of 7 actions of 2 parents, as the paper's steps are wide
against K), in one
process, alternating the variants seed by seed so that the machine's load hits both alike.

``selection`` (after ``claim``): every full-budget candidate at the target re-scored over ``--eval-seeds``
seeds other than the one the search ranked by, next to the ProgGAN baseline at the same route iterations:
are there grown architectures that beat ProgGAN, and did the search's one-draw ranking find them?

Writes ``OUT/results.json`` and ``OUT/results.md``: per run the candidate-iterations the search trained,
its wall time, the best normalised metric at the target, the final model's metric and the comparisons;
per preset the means, the seed-to-seed spread, and halving / plain ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from dggan._util.threads import set_threads
from dggan.evaluation.compare import compare, score_checkpoint, search_iterations
from dggan.execution.state import Status
from dggan.search.config import preset
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger

HELD_OUT = {"digits": "digits:split=test"}  # presets' data -> a held-out split of the same images


def held_out_scores(run: Path, config: Any, seeds: list[int]) -> dict[str, Any] | None:
    """SWD of the final model against the held-out images, next to the floor: as many training images
    against the same held-out images (real against real at the same sample count)."""
    import dataclasses

    import numpy as np

    from dggan.data import open_dataset
    from dggan.metrics import real_vs_real

    spec = HELD_OUT.get(config.data)
    if spec is None:
        return None
    held = open_dataset(spec)
    n = len(held)
    metric = f"swd{n}"
    test_config = dataclasses.replace(config, data=spec)
    final = [float(score_checkpoint(run / "best" / "checkpoint.safetensors", test_config, s, metric=metric)["value"])
             for s in seeds]
    train = open_dataset(config.data)
    floor = [float(real_vs_real(metric, train, held, config.target_resolution, seed=s, progress=False)["value"])
             for s in seeds]
    return {"data": spec, "metric": metric, "final": final, "final_mean": float(np.mean(final)),
            "real_vs_real": floor, "real_vs_real_mean": float(np.mean(floor))}


# Many children per step (2 parents x 7 actions, p 1: 14) over 4 steps, short budgets: where halving has work to
# do, as in the paper's steps (~200 children for K = 20); rungs 1/27, 1/9, 1/3, 1.
WIDE: dict[str, Any] = {"p": 1.0, "filters": (16, 32, 64), "iterations": 300, "initial_iterations": 300,
                        "final_iterations": 600, "max_steps": 4, "halving_min_fraction": 1 / 27}
# ``claim-long``: the presets with four times the training per candidate, to test whether longer candidates
# let grown architectures pull ahead of ProgGAN at equal training.
LONG: dict[str, Any] = {"iterations": 2400, "initial_iterations": 2400, "final_iterations": 4800,
                        "checkpoint_every": 1200}
VARIANTS: dict[str, dict[str, Any]] = {"preset": {}, "long": LONG, "halving": {**WIDE, "halving_eta": 3},
                                       "plain": {**WIDE, "halving_eta": 1}}
CLAIM_VARIANTS = {"claim": "preset", "claim-long": "long"}


def one_run(name: str, variant: str, seed: int, out: Path, eval_seeds: int, threads: int) -> dict[str, Any]:
    config = preset(name, seed=seed, threads=threads, **VARIANTS[variant])
    run = out / f"{name}-{variant}-s{seed}"
    if run.exists():  # an earlier invocation was stopped mid-run: its wall time is lost, so start over
        aside = run.with_name(f"{run.name}.interrupted-{int(time.time())}")
        run.rename(aside)
        print(f"{run} was left unfinished; moved to {aside} and started again", flush=True)
    t0 = time.perf_counter()
    summary = run_search(run, config, progress=False)
    wall = time.perf_counter() - t0
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows, final = ledger.candidates(), ledger.final()
    target = [r for r in rows if r.status == Status.DONE and r.resolution == config.target_resolution]
    forced_step = (config.max_steps or 0) + 1
    first_at_target = min((r.step for r in rows if r.resolution == config.target_resolution), default=None)
    record: dict[str, Any] = {
        "preset": name, "variant": variant, "seed": seed, "wall_seconds": wall, "ok": summary.ok,
        "candidates": len(rows), "pruned": sum(r.status == Status.PRUNED for r in rows),
        "candidate_iterations": search_iterations(rows, 0),
        "best_normalized_at_target": min((r.normalized_metric for r in target if r.normalized_metric is not None),
                                         default=None),
        "final_metric": None if final is None else final.metric,
        "final_normalized": None if final is None else final.normalized_metric,
        "reached_target_before_forced_growth": first_at_target is not None and first_at_target < forced_step,
    }
    if variant in CLAIM_VARIANTS.values() and summary.ok:
        comparison = compare(run, eval_seeds=eval_seeds, progress=False).to_dict()
        record["compare"] = {k: comparison[k] for k in ("final", "equal_training", "equal_compute",
                                                        "final_vs_equal_training", "final_vs_equal_compute",
                                                        "search_iterations")}
        record["held_out"] = held_out_scores(run, config, comparison["eval_seeds"])
    print(json.dumps({k: v for k, v in record.items() if k not in ("compare", "held_out")}), flush=True)
    return record


def spread(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.pstdev(values):.2g}"


def markdown(records: list[dict[str, Any]]) -> str:
    lines = ["| preset | variant | seed | candidates (pruned) | candidate-iterations | wall | best norm. at target |"
             " reached target unforced |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['preset']} | {r['variant']} | {r['seed']} | {r['candidates']} ({r['pruned']}) |"
                     f" {r['candidate_iterations']:,} | {r['wall_seconds']:.0f} s |"
                     f" {r['best_normalized_at_target'] or float('nan'):.3f} |"
                     f" {'yes' if r['reached_target_before_forced_growth'] else 'no'} |")
    lines += ["", "| preset | final model | (a) ProgGAN, equal training | final vs (a) | (b) ProgGAN, whole compute |"
              " final vs (b) | final vs held-out | real vs real |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        c = r.get("compare")
        if not c:
            continue
        h = r.get("held_out")
        held = "–" if not h else f"{h['final_mean']:.4g}"
        floor = "–" if not h else f"{h['real_vs_real_mean']:.4g}"
        lines.append(
            f"| {r['preset']} s{r['seed']} | {c['final']['mean']:.4g} ± {c['final']['std']:.2g} |"
            f" {c['equal_training']['mean']:.4g} ± {c['equal_training']['std']:.2g} | {c['final_vs_equal_training']} |"
            f" {c['equal_compute']['mean']:.4g} ± {c['equal_compute']['std']:.2g}"
            f" ({c['equal_compute']['route_iterations']:,} its) | {c['final_vs_equal_compute']} |"
            f" {held} | {floor} |")
    lines += ["", "| preset | candidate-iterations halving / plain | wall halving / plain | best norm. halving |"
              " best norm. plain | final norm. halving | final norm. plain |", "|---|---|---|---|---|---|---|"]
    for name in sorted({r["preset"] for r in records}):
        h = [r for r in records if r["preset"] == name and r["variant"] == "halving"]
        p = [r for r in records if r["preset"] == name and r["variant"] == "plain"]
        if not h or not p:
            continue
        its = statistics.fmean(x["candidate_iterations"] for x in h) / statistics.fmean(
            x["candidate_iterations"] for x in p)
        wall = statistics.fmean(x["wall_seconds"] for x in h) / statistics.fmean(x["wall_seconds"] for x in p)
        lines.append(f"| {name} | {its:.2f} | {wall:.2f} |"
                     f" {spread([x['best_normalized_at_target'] for x in h if x['best_normalized_at_target']])} |"
                     f" {spread([x['best_normalized_at_target'] for x in p if x['best_normalized_at_target']])} |"
                     f" {spread([x['final_normalized'] for x in h if x['final_normalized']])} |"
                     f" {spread([x['final_normalized'] for x in p if x['final_normalized']])} |")
    return "\n".join(lines) + "\n"


def selection(out: Path, eval_seeds: int) -> str:
    """Re-score every full-budget candidate at the target of finished ``claim`` runs over several evaluation
    seeds, each next to the baseline curve's model at the same route iterations and the same seeds: does a
    grown architecture beat ProgGAN at equal training, and did the search's one-draw ranking pick it?"""
    from dggan.evaluation.compare import baseline_point
    from dggan.runs import RunLayout

    seeds = [1000 + i for i in range(eval_seeds)]  # not the draws the search ranked by
    lines = [f"Evaluation seeds {seeds[0]}-{seeds[-1]}; (a) = the ProgGAN baseline at the same route iterations.", "",
             "| run | candidate | action | route its | search's normalised (one draw) | re-scored | (a) |"
             " vs (a) |", "|---|---|---|---|---|---|---|---|"]
    summary: list[str] = []
    records = json.loads((out / "results.json").read_text())
    for rec in records:
        run = out / f"{rec['preset']}-{rec['variant']}-s{rec['seed']}"
        config = preset(rec["preset"], seed=rec["seed"], threads=1, **VARIANTS[rec["variant"]])
        layout = RunLayout(run)
        base = layout.baseline
        with Ledger.open(layout.ledger, readonly=True) as ledger:
            rows = [r for r in ledger.candidates() if r.status == Status.DONE
                    and r.resolution == config.target_resolution]
        with Ledger.open(base.ledger, readonly=True) as ledger:
            base_rows = ledger.candidates()
        cache: dict[int, list[float]] = {}

        def scores(path: Path, config: Any = config) -> list[float]:
            return [float(score_checkpoint(path, config, s)["value"]) for s in seeds]

        beats, picked, results = 0, None, []
        for r in sorted(rows, key=lambda r: r.normalized_metric or float("inf")):
            point = baseline_point(base_rows, config.target_resolution, r.route_iterations or 0)
            if point.id not in cache:
                cache[point.id] = scores(base.resolve(point.checkpoint or base.checkpoint(point.id)))
            mine, theirs = scores(layout.resolve(r.checkpoint or layout.checkpoint(r.id))), cache[point.id]
            m, sm = statistics.fmean(mine), statistics.pstdev(mine)
            b, sb = statistics.fmean(theirs), statistics.pstdev(theirs)
            verdict = "better" if m + sm < b - sb else "worse" if m - sm > b + sb else "tie"
            beats += verdict == "better"
            picked = picked or r.id
            results.append((m / b, r.id))
            lines.append(f"| {run.name} | {r.id} | {r.action.label() if r.action else 'ProgGAN route'} |"
                         f" {r.route_iterations:,} | {r.normalized_metric:.3f} | {m:.4g} ± {sm:.2g} |"
                         f" {b:.4g} ± {sb:.2g} | {verdict} |")
        best = min(results)[1] if results else None
        summary.append(f"- {run.name}: {len(rows)} full-budget at {config.target_resolution} px, {beats} beat (a)"
                       f" beyond the spread; the search ranked {picked} first, the re-scoring ranks {best} first")
    return "\n".join(lines + [""] + summary) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=["claim", "claim-long", "halving", "rescore-held-out", "selection"])
    parser.add_argument("--presets", nargs="+", default=["demo", "shapes"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    args.out = args.out or Path(f"runs/bench-{args.study}")
    variants = [CLAIM_VARIANTS[args.study]] if args.study in CLAIM_VARIANTS else ["halving", "plain"]
    if args.study == "selection":  # after ``claim``: re-score its candidates at the target
        text = selection(args.out, args.eval_seeds)
        (args.out / "selection.md").write_text(text)
        print(text)
        return
    if args.study == "rescore-held-out":  # recompute the held-out scores of finished claim runs
        results = args.out / "results.json"
        records = json.loads(results.read_text())
        for r in records:
            if r.get("held_out") and r.get("compare"):
                run = args.out / f"{r['preset']}-{r['variant']}-s{r['seed']}"
                config = preset(r["preset"], seed=r["seed"], threads=args.threads, **VARIANTS[r["variant"]])
                r["held_out"] = held_out_scores(run, config, r["compare"]["final"].get("seeds")
                                                or [r["seed"] + i for i in range(args.eval_seeds)])
        results.write_text(json.dumps(records, indent=1))
        (args.out / "results.md").write_text(markdown(records))
        print(markdown(records))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.json"
    records: list[dict[str, Any]] = json.loads(results.read_text()) if results.exists() else []
    done = {(r["preset"], r["variant"], r["seed"]) for r in records}
    for name in args.presets:
        for seed in args.seeds:
            for variant in variants:  # alternating: the machine's load hits both variants alike
                if (name, variant, seed) in done:
                    continue
                records.append(one_run(name, variant, seed, args.out, args.eval_seeds, args.threads))
                results.write_text(json.dumps(records, indent=1))
                (args.out / "results.md").write_text(markdown(records))
    print(markdown(records))


if __name__ == "__main__":
    main()
