"""#27: does the search find a better architecture when one exists, and does its ranking beat random growth?

On the ``planted`` preset (ProgGAN at width 8 on the shapes is starved of discriminator capacity, which the
search's D actions add: ``bench_capacity.py --widths 8`` measures that advantage without any search), for each
search seed:

- ``dggan search --preset planted --set seed=S`` (the paper's top-K, "beam"), then ``dggan compare`` on three
  held-out evaluation seeds: is the final model better than ProgGAN at equal training, pair by pair?
- the same with ``--set selection=random`` (random growth: K of each step's trained children kept at random,
  same budget, same draws of (parent, action) pairs, same final pick), and its ``dggan compare``;
- ``dggan compare BEAM --against RANDOM``: the two final models on the same held-out seeds, pair by pair.

    python benchmarks/bench_power.py --out power --jobs 2

Each search is a subprocess with one torch thread; ``--jobs 2`` runs two at a time. A killed experiment resumes
(finished stages in OUT/stages.json, an unfinished search continues with ``--resume``). Tables: OUT/power.md,
OUT/power.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_acceptance import Stages, mean_std, run_logged, search_and_compare  # this script's folder is on sys.path

from dggan._util.files import atomic_write_json, atomic_write_text

SELECTIONS = ("beam", "random")


def one_search(out: Path, selection: str, seed: int, preset: str, stages: Stages, sets: list[str]) -> None:
    search_and_compare(out, f"{selection}-s{seed}",
                       ["--preset", preset, "--set", f"seed={seed}", "--set", f"selection={selection}",
                        *[arg for kv in sets for arg in ("--set", kv)]], stages)


def head_to_head(out: Path, seed: int, stages: Stages) -> None:
    key = f"s{seed}/against"
    if stages.get(key) is None:
        dggan = [str(Path(sys.executable).with_name("dggan"))]
        cmd = dggan + ["compare", str(out / f"beam-s{seed}"), "--against", str(out / f"random-s{seed}"),
                       "--eval-seeds", "3"]
        stages.put(key, {"wall_s": run_logged(cmd, out / f"against-s{seed}.log")})


def gather(out: Path, seeds: list[int], stages: Stages) -> dict:
    from dggan.evaluation.compare import describe_final
    from dggan.runs import RunLayout
    from dggan.search.ledger import Ledger

    runs, heads = [], []
    for seed in seeds:
        for selection in SELECTIONS:
            name = f"{selection}-s{seed}"
            layout = RunLayout(out / name)
            comp = json.loads(layout.compare_json.read_text())
            with Ledger.open(layout.ledger, readonly=True) as ledger:
                final, rows, wall = ledger.final(), ledger.candidates(), ledger.session_seconds()
                trained = sum(1 for r in rows if not r.extra.get("proggan_route"))
            runs.append({"run": name, "selection": selection, "seed": seed,
                         "model": describe_final(layout, final, rows),
                         "final": comp["final"]["scores"], "proggan": comp["equal_training"]["scores"],
                         "route_iterations": comp["final"]["route_iterations"], "candidates": trained,
                         "vs_proggan": comp["paired_equal_training"], "search_wall_s": wall,
                         "compare_wall_s": stages.get(f"{name}/compare")["wall_s"]})
        against = json.loads(RunLayout(out / f"beam-s{seed}").compare_against(out / f"random-s{seed}")[0].read_text())
        heads.append({"seed": seed, "beam": against["final"], "random": against["other_final"],
                      "paired": against["paired"], "verdict": against["verdict"], "eval_seeds": against["eval_seeds"]})
    return {"runs": runs, "beam_vs_random": heads}


def markdown(result: dict) -> str:
    lines = ["| run | final model | candidates | final (held-out) | ProgGAN, equal training | ProgGAN − final (paired)"
             " | final vs ProgGAN | search / compare wall |", "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        p = r["vs_proggan"]
        lines.append(f"| {r['run']} | {r['model']} | {r['candidates']} | {mean_std(r['final'])} |"
                     f" {mean_std(r['proggan'])} | {p['mean']:+.2f} ({p['wins']}/{p['n']} seeds final better) |"
                     f" **{p['verdict']}** | {r['search_wall_s'] / 60:.1f} / {r['compare_wall_s'] / 60:.1f} min |")
    lines += ["", "| seed | beam's final (held-out) | random growth's final | random − beam (paired) | beam is |",
              "|---|---|---|---|---|"]
    for h in result["beam_vs_random"]:
        p = h["paired"]
        lines.append(f"| {h['seed']} | {mean_std(h['beam']['scores'])} | {mean_std(h['random']['scores'])} |"
                     f" {p['mean']:+.2f} ({p['wins']}/{p['n']} seeds beam better) | **{h['verdict']}** |")

    def better(selection: str) -> int:
        return sum(r["vs_proggan"]["verdict"] == "better" for r in result["runs"] if r["selection"] == selection)

    n = len(result["beam_vs_random"])
    verdicts = [h["verdict"] for h in result["beam_vs_random"]]
    lines += ["", f"Better than ProgGAN at equal training (held-out seeds, paired): beam {better('beam')} of {n},"
              f" random growth {better('random')} of {n}. Beam against random growth: better in"
              f" {verdicts.count('better')}, within noise in {verdicts.count('within noise')}, worse in"
              f" {verdicts.count('worse')} of {n}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=Path("power"))
    ap.add_argument("--preset", default="planted")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="searches at a time (each on one torch thread)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="more search settings (as `dggan search --set`), the same for every search")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out / "stages.json")
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(one_search, out, sel, s, args.preset, stages, args.sets)
                for s in args.seeds for sel in SELECTIONS]
        for job in jobs:
            job.result()
    for seed in args.seeds:
        head_to_head(out, seed, stages)
    result = gather(out, args.seeds, stages)
    atomic_write_json(out / "power.json", result)
    table = markdown(result)
    atomic_write_text(out / "power.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
