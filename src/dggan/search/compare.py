"""``dggan compare RUN``: is the search's final model better than ProgGAN, at equal training and at equal cost?

Three models, scored with the search's metric and the same evaluation seeds:

- **final**: the search's final model (``RUN/best``), after ``route_iterations`` R of training along its route;
- **(a) ProgGAN at equal training**: the ProgGAN baseline trained for the same R iterations (the point of the
  baseline curve the final model is normalised by);
- **(b) ProgGAN at equal cost**: one ProgGAN trained with the search's whole compute C (every candidate's
  iterations plus the final training), i.e. the baseline continued at the target resolution up to C.

Both ProgGAN models come from the run's own baseline (``RUN/baseline`` for ``auto``; for other baselines a
ProgGAN route is trained in ``RUN/compare-baseline``), trained further here when they do not reach that far.

Every model is scored with the same held-out evaluation seeds (``metrics.seeds.heldout_seeds``: draws the
search never ranked, selected or normalised with, so the search's lucky draw is not scored again), and a
seed fixes the latents, the real subset and SWD's directions alike for every model: the scores pair up seed
by seed. ``metrics.seeds.Paired`` judges the paired differences (the rule is in ``VERDICT_RULE``). Beside them, the
real-vs-real floor of the data (``metrics.floor``) with the same seeds: what a generator drawing new real images
would score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.files import atomic_write_json, atomic_write_text
from ..errors import DgganError, SearchError
from ..metrics.registry import parse_metric
from ..metrics.seeds import VERDICT_RULE, OverSeeds, Paired, heldout_seeds
from ..runs import RunLayout, run_lock
from .config import SearchConfig, load_run_config
from .executors import Executor, executor_for
from .ledger import CandidateRow, FinalRow, Ledger
from .proggan import train_route
from .state import Status


@dataclass
class Scored(OverSeeds):
    name: str
    checkpoint: str
    route_iterations: int
    scores: list[float]  # one per evaluation seed


@dataclass
class Comparison:
    run: str
    metric: str
    target_resolution: int
    eval_seeds: list[int]
    final: Scored
    equal_training: Scored  # (a)
    equal_compute: Scored  # (b)
    search_iterations: int  # C: every candidate's iterations plus the final training
    notes: list[str] = field(default_factory=list)
    floor: dict[str, Any] | None = None  # metrics.floor.Floor.to_dict(): real against real, same seeds
    search_draw: float | None = None  # the final model's score with the search's own seed (what it was picked on)

    @property
    def lower_is_better(self) -> bool:
        return parse_metric(self.metric).lower_is_better

    def paired(self, other: Scored) -> Paired:
        return Paired.of(self.final.scores, other.scores, self.lower_is_better)

    def verdict(self, other: Scored) -> str:
        """The final model against ``other``: ``better``, ``worse`` or ``within noise`` (``VERDICT_RULE``)."""
        return self.paired(other).verdict

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "metric": self.metric, "target_resolution": self.target_resolution,
                "eval_seeds": self.eval_seeds, "eval_seeds_held_out": True, "search_iterations": self.search_iterations,
                "final": self.final.to_dict(), "equal_training": self.equal_training.to_dict(),
                "equal_compute": self.equal_compute.to_dict(),
                "paired_equal_training": self.paired(self.equal_training).to_dict(),
                "paired_equal_compute": self.paired(self.equal_compute).to_dict(),
                "final_vs_equal_training": self.verdict(self.equal_training),
                "final_vs_equal_compute": self.verdict(self.equal_compute), "verdict_rule": VERDICT_RULE,
                "floor": self.floor, "search_draw": self.search_draw, "notes": self.notes}

    def markdown(self) -> str:
        def scores(s: Scored) -> str:
            return ", ".join(f"{v:.4g}" for v in s.scores)

        def row(label: str, s: Scored) -> str:
            if s is self.final:
                return f"| {label} | {s.route_iterations:,} | {s.mean:.4g} ± {s.std:.2g} | {scores(s)} | | | |"
            p = self.paired(s)
            sem = "–" if p.n < 2 else f"{p.sem:.2g}"
            return (f"| {label} | {s.route_iterations:,} | {s.mean:.4g} ± {s.std:.2g} | {scores(s)} |"
                    f" {p.mean:+.4g} ± {sem} | {p.wins}/{p.n} | {p.verdict} |")

        lines = [f"Scores: {self.metric} at {self.target_resolution}px (lower is better), over held-out evaluation"
                 f" seeds {self.eval_seeds} (draws the search never scored with); each seed gives every model the"
                 " same latents and real images, so the scores pair up seed by seed.", "",
                 "| model | training iterations | score (mean ± std) | per seed | ProgGAN - final (mean ± s.e.)"
                 " | seeds final is better | final is |", "|---|---|---|---|---|---|---|",
                 row("search's final model", self.final),
                 row("(a) ProgGAN, equal training", self.equal_training),
                 row("(b) ProgGAN, the search's whole compute", self.equal_compute)]
        if self.floor:
            f = self.floor
            lines += ["", f"Real-vs-real floor ({f['method']}: {f['sample']} scored as if generated, against"
                      f" {f['real']}, {f['metric']}): {f['mean']:.4g} ± {f['std']:.2g} over the same seeds, what a"
                      " generator drawing new real images would score. A model near it is as close to the data as"
                      " new real images are."]
            if f["metric"] != self.metric:  # a held-out split smaller than the models' sample
                lines[-1] += (f" It uses {f['metric']}, fewer images than the models' {self.metric}; SWD and FID"
                              " shrink with more samples, so the floor sits a little high and a model may score"
                              " below it without copying its training images.")
        if self.search_draw is not None:
            lines += ["", f"The search picked the final model on its own draw (the run's seed): {self.search_draw:.4g};"
                      " the held-out seeds above are the honest estimate."]
        lines += ["", f"Verdict rule: {VERDICT_RULE}."]
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"


def search_iterations(rows: list[CandidateRow], final_iterations: int) -> int:
    """Every iteration the search trained: each candidate's own (pruned ones up to their last rung)."""
    total = 0
    for r in rows:
        if r.status in (Status.DONE, Status.DIVERGED, Status.PRUNED):
            total += int(r.extra.get("trained_iterations", r.iterations or 0))
    return total + final_iterations


def baseline_point(rows: list[CandidateRow], resolution: int, route: int) -> CandidateRow:
    """The baseline's model at ``resolution`` with ``route`` iterations (or the nearest after it)."""
    at = sorted((r for r in rows if r.resolution == resolution and r.status == Status.DONE),
                key=lambda r: r.route_iterations or 0)
    after = [r for r in at if (r.route_iterations or 0) >= route]
    if not after:
        raise SearchError(f"the baseline has no {resolution}px model after {route} iterations")
    return after[0]


def score_checkpoint(path: Path, config: SearchConfig, seed: int, device: str = "cpu",
                     metric: str | None = None) -> dict[str, Any]:
    """Score a checkpoint's EMA generator with ``metric`` (default: the search's) for one evaluation seed;
    the metric's whole result (``value``, SWD's per-level values, ...)."""
    from ..metrics import default_cache_dir, evaluate_generator
    from ..training.checkpoint import load_generator
    from .worker import open_data_cached

    _, net = load_generator(path, device=device)
    opts: dict[str, Any] = {"cache_dir": config.cache_dir or str(default_cache_dir())}
    if config.inception_weights:
        opts["inception_weights"] = config.inception_weights
    return evaluate_generator(metric or config.metric, net, open_data_cached(config.data), device=device,
                              batch_size=config.eval_batch_size, seed=seed, progress=False, **opts)


def data_floor(config: SearchConfig, seeds: list[int], device: str = "cpu",
               notes: list[str] | None = None) -> dict[str, Any] | None:
    """The real-vs-real floor of the search's data and metric over ``seeds`` (``metrics.floor``); None, and a
    note, when it cannot be scored (e.g. a dataset too small to halve)."""
    from ..metrics import default_cache_dir
    from ..metrics.floor import data_floor as floor_of

    opts: dict[str, Any] = {"cache_dir": config.cache_dir or str(default_cache_dir()), "device": device,
                            "batch_size": config.eval_batch_size}
    if config.inception_weights:
        opts["inception_weights"] = config.inception_weights
    try:
        floor = floor_of(config.metric, config.data, config.target_resolution, seeds, **opts)
    except DgganError as exc:
        if notes is not None:
            notes.append(f"no real-vs-real floor: {exc}")
        return None
    if notes is not None:
        notes.extend(f"floor: {n}" for n in floor.notes)
    return floor.to_dict()


def train_proggan(layout: RunLayout, config: SearchConfig, needs: list[dict[int, int]], *,
                  executor: Executor | None = None,
                  progress: bool = True) -> tuple[RunLayout, list[CandidateRow], list[str]]:
    """The run's ProgGAN route, trained (further) until it covers each of ``needs`` ({res: route iterations})
    in turn: ``RUN/baseline`` for the auto baseline, else ``RUN/compare-baseline``. Returns its folder, its
    candidates and notes for the reader."""
    sub = layout.baseline if config.baseline == "auto" else layout.compare_baseline
    notes = [] if config.baseline == "auto" else [
        f"the run's baseline is {config.baseline!r}; ProgGAN was trained in {sub.root} for this comparison"]
    own = executor is None
    executor = executor or executor_for(config, layout.root)
    try:
        with run_lock(layout.root):  # the search itself must not extend the same baseline meanwhile
            proggan = train_route(sub.root, config, needs, executor, progress, tb_root=layout.tb / sub.root.name,
                                  desc="ProgGAN for comparison")
            return sub, proggan.ledger.candidates(), notes
    finally:
        if own:
            executor.close()


def final_model(layout: RunLayout, config: SearchConfig) -> tuple[FinalRow, list[CandidateRow], int]:
    """(the final row, every candidate, the final model's route iterations); SearchError without one."""
    with Ledger.open(layout.ledger, readonly=True) as ledger:
        final, rows = ledger.final(), ledger.candidates()
    if final is None or final.status != Status.DONE or not final.checkpoint:
        raise SearchError(f"{layout.root}: the search has no final model yet (status:"
                          f" {None if final is None else final.status}); let it finish (--resume) first")
    best = next(r for r in rows if r.id == final.candidate)
    route = int(final.extra.get("route_iterations") or (best.route_iterations or 0) + config.final_iterations)
    return final, rows, route


def compare(run_dir: str | Path, *, eval_seeds: int = 3, executor: Executor | None = None,
            progress: bool = True) -> Comparison:
    layout = RunLayout(run_dir)
    config = load_run_config(layout.root)
    final, rows, route = final_model(layout, config)
    total = search_iterations(rows, config.final_iterations)
    target = config.target_resolution
    sub, base_rows, notes = train_proggan(layout, config, [{target: route}, {target: max(route, total)}],
                                          executor=executor, progress=progress)
    a, b = baseline_point(base_rows, target, route), baseline_point(base_rows, target, total)
    for row, want in ((a, route), (b, total)):
        if (row.route_iterations or 0) != want:
            notes.append(f"ProgGAN has no model at exactly {want:,} iterations; the nearest after it"
                         f" ({row.route_iterations:,}) stands in")
    best = next(r for r in rows if r.id == final.candidate)
    if best.genome.key() == a.genome.key():
        notes.append("the final model has ProgGAN's own architecture: no grown layer beat the ProgGAN route, so"
                     " (a) is the same architecture, and a result within noise against it says nothing for or against"
                     " growing")
    seeds = heldout_seeds(config.seed, eval_seeds)
    device = config.resolved_device()

    def scored(name: str, path: Path, its: int) -> Scored:
        return Scored(name, layout.relative(path), its,
                      [float(score_checkpoint(path, config, s, device)["value"]) for s in seeds])

    result = Comparison(
        run=str(layout.root), metric=config.metric, target_resolution=target, eval_seeds=seeds,
        final=scored("final", layout.resolve(final.checkpoint or ""), route),
        equal_training=scored("proggan_equal_training", sub.resolve(a.checkpoint or sub.checkpoint(a.id)),
                              a.route_iterations or 0),
        equal_compute=scored("proggan_equal_compute", sub.resolve(b.checkpoint or sub.checkpoint(b.id)),
                             b.route_iterations or 0),
        search_iterations=total, notes=notes, floor=data_floor(config, seeds, device, notes),
        search_draw=final.metric)
    atomic_write_json(layout.compare_json, result.to_dict())
    atomic_write_text(layout.compare_md, result.markdown())
    return result
