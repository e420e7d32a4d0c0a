"""Do wider or deeper networks beat ProgGAN at equal training, at the scale a CPU affords?

Usage: python benchmarks/bench_capacity.py [--data shapes digits] [--variants P G64+D64 G128+D128 ...]
                                           [--widths 32] [--seeds 0 1] [--n8 600] [--n16 1800] [--out DIR]

The search can only find a better GAN than ProgGAN if some architecture in its action space is better at
equal training. This measures that directly, without the search's noise: the ProgGAN route (``--n8``
iterations at 8 px, then ``grow_res`` and ``--n16`` at 16 px, the demo's training settings) against the
same route with convs grown at 16 px when the resolution doubles (``G128``: a G conv of 128 filters,
``D64``: a D conv of 64, ``G64k7``: kernel 7 instead of 3; ``+`` joins them); those convs start as identities,
as in the demo preset. A ``8:`` prefix puts them into the 8 px network instead, trained from scratch with it.
Every model is scored with SWD against **held-out** images at a third, two thirds and all of the 16 px stage,
over ``--eval-seeds`` evaluation seeds.

Writes ``OUT/results.jsonl`` (one line per finished run, rewritten atomically, so a stopped study resumes),
``OUT/results.md`` and ``OUT/results.png``: held-out SWD against 16 px iterations per variant (one curve per
``--n16``), with the floor: as many training images against the same held-out images.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dggan import Action, Genome, TrainConfig, Trainer, apply_action, constant_channels
from dggan._util.files import atomic_write_bytes, atomic_write_text
from dggan._util.threads import set_threads
from dggan.data import open_dataset
from dggan.data.base import ArraySource, ImageSource
from dggan.metrics import evaluate_generator, real_vs_real
from dggan.training.checkpoint import load_checkpoint

SHAPES_HELD_OUT = 512  # of the 2,048 synthetic shapes (the `shapes` preset's data), held out for scoring


def data_split(name: str) -> tuple[ImageSource, ImageSource, str]:
    """(training images, held-out images, the SWD metric sized to the held-out set)."""
    if name == "digits":
        held = open_dataset("digits:split=test")
        return open_dataset("digits:split=train"), held, f"swd{len(held)}"
    if name != "shapes":
        raise SystemExit(f"--data takes shapes and/or digits, got {name!r}")
    full = open_dataset("synthetic:n=2048,res=16").array
    order = np.random.default_rng(0).permutation(len(full))
    train = ArraySource(np.ascontiguousarray(full[order[SHAPES_HELD_OUT:]]), "shapes-train")
    held = ArraySource(np.ascontiguousarray(full[order[:SHAPES_HELD_OUT]]), "shapes-held-out")
    return train, held, f"swd{SHAPES_HELD_OUT}"


def grown(token: str) -> Action:
    """``G128`` -> a G conv of 128 filters (kernel 3); ``D64k7`` -> a D conv of 64 filters, kernel 7."""
    match = re.fullmatch(r"([GD])(\d+)(?:k(\d+))?", token)
    if match is None:
        raise SystemExit(f"a variant's part must look like G128, D64 or G64k7, got {token!r}")
    kind = {"G": "grow_g", "D": "grow_d"}[match[1]]
    return Action(kind, kernel=int(match[3] or 3), filters=int(match[2]))  # type: ignore[arg-type]


def genomes(variant: str, width: int, channels: int) -> tuple[Genome, Genome]:
    """The 8 px parent and the 16 px child of a variant (``P``: ProgGAN itself)."""
    early = variant.startswith("8:")
    parts = [] if variant.removeprefix("8:") == "P" else variant.removeprefix("8:").split("+")
    g8 = Genome.base(latent_size=64, channels=constant_channels(16, width), max_resolution=16,
                     image_channels=channels)
    for part in parts if early else []:
        g8 = apply_action(g8, grown(part))
    g16 = apply_action(g8, Action("grow_res"))
    for part in [] if early else parts:
        g16 = apply_action(g16, grown(part))
    return g8, g16


def one_run(data: str, variant: str, width: int, seed: int, n8: int, n16: int, eval_seeds: int) -> dict[str, Any]:
    train, held, metric = data_split(data)
    g8, g16 = genomes(variant, width, train.channels)

    def config(iterations: int, s: int) -> TrainConfig:  # the demo preset's training settings
        return TrainConfig(iterations=iterations, seed=s, lr=2e-3, ema_rampup=0.05, log_every=10**9)

    t0 = time.perf_counter()
    parent = Trainer(g8, config(n8, seed), train)
    parent.train(progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = load_checkpoint(parent.save(Path(tmp) / "parent.safetensors"))
    child = Trainer.child_of(ckpt, g16, config(n16, seed + 10), train, new_layers="identity")
    curve: dict[int, list[float]] = {}
    for mark in sorted({n16 // 3, 2 * n16 // 3, n16}):
        child.train(until=mark, progress=False)
        curve[mark] = [float(evaluate_generator(metric, child.G_ema, held, seed=e, latent_seed=100 + e,
                                                progress=False)["value"]) for e in range(eval_seeds)]
    return {"data": data, "variant": variant, "width": width, "seed": seed, "n8": n8, "n16": n16,
            "metric": metric, "g_params": g16.g_params(), "d_params": g16.d_params(),
            "seconds": time.perf_counter() - t0, "curve": {str(k): v for k, v in curve.items()}}


def real_floor(data: str, eval_seeds: int) -> list[float]:
    """The floor per evaluation seed: as many training images as the held-out set against it."""
    train, held, metric = data_split(data)
    return [float(real_vs_real(metric, train, held, 16, seed=e, progress=False)["value"]) for e in range(eval_seeds)]


Key = tuple[str, int, int, str]  # data, width, 16 px iterations (the fade-in is half of them), variant


def curves(records: list[dict[str, Any]]) -> dict[Key, dict[int, list[float]]]:
    """(data, width, n16, variant) -> 16 px iterations -> per training seed, the mean over evaluation seeds."""
    out: dict[Key, dict[int, list[float]]] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        points = out.setdefault((r["data"], r["width"], r["n16"], r["variant"]), {})
        for mark, values in r["curve"].items():
            points.setdefault(int(mark), []).append(statistics.fmean(values))
    return out


def plot(records: list[dict[str, Any]], floors: dict[str, list[float]], path: Path) -> None:
    """One panel per (data, width): every variant's curve, ProgGAN's thick, the floor dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import ScalarFormatter

    by_curve = curves(records)
    panels = sorted({(data, width) for data, width, _, _ in by_curve}, key=lambda p: (p[0], -p[1]))
    fig = Figure(figsize=(7.4 * len(panels), 4.4))
    FigureCanvasAgg(fig)
    for i, (data, width) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        keys = sorted((k for k in by_curve if k[:2] == (data, width)), key=lambda k: (k[3] != "P", k[3], k[2]))
        lengths = {k[2] for k in keys}
        for key in keys:
            n16, variant, points = key[2], key[3], by_curve[key]
            xs = sorted(points)
            means = [statistics.fmean(points[x]) for x in xs]
            stds = [statistics.pstdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
            seeds = max(map(len, points.values()))
            proggan = variant == "P"
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color="k" if proggan else None,
                        linewidth=2.5 if proggan else 1.2, zorder=3 if proggan else 2,
                        linestyle="-" if n16 == max(lengths) else ":",
                        label=f"{'ProgGAN' if proggan else variant} ({seeds} seed{'s' if seeds > 1 else ''}"
                              f"{f', {n16:,} its' if len(lengths) > 1 else ''})")
        if floors.get(data):
            ax.axhline(statistics.fmean(floors[data]), color="k", linestyle="--", linewidth=1,
                       label="real vs real (the floor)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        marks = sorted({x for key in keys for x in by_curve[key]})
        ax.set_xticks(marks, [f"{x:,}" for x in marks], minor=False)
        ax.set_xticks([], minor=True)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.set_xlabel("iterations at 16 px (after 600 at 8 px; fading in over the first half)")
        ax.set_ylabel(f"SWD against held-out images ({next(r['metric'] for r in records if r['data'] == data)})")
        ax.set_title(f"{data}, width {width}: grown layers vs ProgGAN", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, never on them
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def paired_column(runs: list[dict[str, Any]], base: list[dict[str, Any]], variant: str) -> str:
    """ProgGAN's end score minus the variant's, training seed by training seed (the same seeds on both sides):
    mean ± s.e., seeds the variant wins, and the verdict of ``dggan compare``'s rule (``metrics.seeds.Paired``)."""
    from dggan.metrics.seeds import Paired

    mine = {r["seed"]: statistics.fmean(r["curve"][str(r["n16"])]) for r in runs}
    theirs = {r["seed"]: statistics.fmean(r["curve"][str(r["n16"])]) for r in base}
    seeds = sorted(set(mine) & set(theirs))
    if variant == "P" or not seeds:
        return "–"
    p = Paired.of([mine[s] for s in seeds], [theirs[s] for s in seeds])
    sem = "–" if p.n < 2 else f"{p.sem:.1f}"
    return f"{p.mean:+.1f} ± {sem} ({p.wins}/{p.n} seeds), {p.verdict}"


def markdown(records: list[dict[str, Any]], floors: dict[str, list[float]] | None = None) -> str:
    """Per (data, width, variant): the held-out SWD at the end of each 16 px mark, mean ± std over training
    seeds (each the mean of its evaluation seeds), and the ratio to ProgGAN (P) of the same width."""
    groups: dict[Key, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["data"], r["width"], r["n16"], r["variant"]), []).append(r)

    def end(r: dict[str, Any]) -> float:
        return statistics.fmean(r["curve"][str(r["n16"])])

    lines = ["| data | width | its at 16 px | variant | G / D params | seeds | held-out SWD per training seed (end) |"
             " mean ± std | vs ProgGAN | ProgGAN − variant, paired by training seed | s per run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (data, width, n16, variant), rs in sorted(groups.items(),
                                                  key=lambda kv: (*kv[0][:3], kv[0][3] != "P", kv[0][3])):
        ends = [end(r) for r in sorted(rs, key=lambda r: r["seed"])]
        mean = statistics.fmean(ends)
        std = statistics.pstdev(ends) if len(ends) > 1 else 0.0
        base = groups.get((data, width, n16, "P"))
        ratio = f"{mean / statistics.fmean(end(r) for r in base):.2f}x" if base and variant != "P" else "–"
        lines.append(f"| {data} | {width} | {n16:,} | {variant} | {rs[0]['g_params']:,} / {rs[0]['d_params']:,} |"
                     f" {len(rs)} | {', '.join(f'{x:.1f}' for x in ends)} | {mean:.1f} ± {std:.1f} | {ratio} |"
                     f" {paired_column(rs, base or [], variant)} | {statistics.fmean(r['seconds'] for r in rs):.0f} |")
    for data, floor in sorted((floors or {}).items()):
        lines.append(f"\nReal vs real on {data} (the floor): {statistics.fmean(floor):.1f} ±"
                     f" {statistics.pstdev(floor):.1f} over {len(floor)} evaluation seeds.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["shapes"], choices=["shapes", "digits"])
    parser.add_argument("--variants", nargs="+", default=["P", "G64+D64", "G128+D128", "G256+D256"])
    parser.add_argument("--widths", nargs="+", type=int, default=[32])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--n8", type=int, default=600)
    parser.add_argument("--n16", type=int, default=1800)
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-capacity"))
    args = parser.parse_args()
    set_threads(args.threads)
    for variant in args.variants:
        genomes(variant, 32, 1)  # a malformed variant stops the study before any training
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    done = {(r["data"], r["variant"], r["width"], r["seed"], r["n8"], r["n16"]) for r in records}
    for data in args.data:
        for width in args.widths:
            for seed in args.seeds:
                for variant in args.variants:  # variants alternate within a seed: the load hits all alike
                    if (data, variant, width, seed, args.n8, args.n16) in done:
                        continue
                    record = one_run(data, variant, width, seed, args.n8, args.n16, args.eval_seeds)
                    records.append(record)
                    atomic_write_text(results, "".join(json.dumps(r) + "\n" for r in records))
                    print(json.dumps({k: v for k, v in record.items() if k != "curve"}), flush=True)
                    atomic_write_text(args.out / "results.md", markdown(records))
    floors = {data: real_floor(data, args.eval_seeds) for data in sorted({r["data"] for r in records})}
    text = markdown(records, floors)
    atomic_write_text(args.out / "results.md", text)
    if records:
        plot(records, floors, args.out / "results.png")
    print(text)


if __name__ == "__main__":
    main()
