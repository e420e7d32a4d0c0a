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

import dataclasses
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.files import atomic_write_json, atomic_write_text
from .._util.progress import progress_bar
from .._util.threads import set_threads
from ..errors import DgganError, SearchError
from ..execution.executors import Executor, executor_for
from ..execution.state import Status
from ..metrics.registry import parse_metric
from ..metrics.seeds import VERDICT_RULE, OverSeeds, Paired, heldout_seeds
from ..runs import RunLayout, run_lock
from ..search.config import SearchConfig, load_run_config
from ..search.integrity import final_checkpoint
from ..search.ledger import CandidateRow, FinalRow
from ..search.proggan import train_route
from ..search.view import RunView


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
    equal_compute: Scored | None  # (b); None when left out (above the limit: equal_compute_skipped says why)
    search_iterations: int  # C: every candidate's iterations plus the final training
    notes: list[str] = field(default_factory=list)
    floor: dict[str, Any] | None = None  # metrics.floor.Floor.to_dict(): real against real, same seeds
    search_draw: float | None = None  # the final model's score with the search's own seed (what it was picked on)
    equal_compute_skipped: str | None = None

    @property
    def lower_is_better(self) -> bool:
        return parse_metric(self.metric).lower_is_better

    def paired(self, other: Scored) -> Paired:
        return Paired.of(self.final.scores, other.scores, self.lower_is_better)

    def verdict(self, other: Scored) -> str:
        """The final model against ``other``: ``better``, ``worse`` or ``within noise`` (``VERDICT_RULE``)."""
        return self.paired(other).verdict

    def to_dict(self) -> dict[str, Any]:
        b = self.equal_compute
        return {"run": self.run, "metric": self.metric, "target_resolution": self.target_resolution,
                "eval_seeds": self.eval_seeds, "eval_seeds_held_out": True, "search_iterations": self.search_iterations,
                "final": self.final.to_dict(), "equal_training": self.equal_training.to_dict(),
                "equal_compute": None if b is None else b.to_dict(),
                "paired_equal_training": self.paired(self.equal_training).to_dict(),
                "paired_equal_compute": None if b is None else self.paired(b).to_dict(),
                "final_vs_equal_training": self.verdict(self.equal_training),
                "final_vs_equal_compute": None if b is None else self.verdict(b), "verdict_rule": VERDICT_RULE,
                "floor": self.floor, "search_draw": self.search_draw, "notes": self.notes,
                "equal_compute_skipped": self.equal_compute_skipped}

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
                 row("(a) ProgGAN, equal training", self.equal_training)]
        if self.equal_compute is not None:
            lines.append(row("(b) ProgGAN, the search's whole compute", self.equal_compute))
        else:
            lines.append(f"| (b) ProgGAN, the search's whole compute | {self.search_iterations:,} | left out, see"
                         " below | | | | |")
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
    from ..execution.worker import open_data_cached
    from ..metrics import default_cache_dir, evaluate_generator
    from ..training.checkpoint import load_generator

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


# (b) trains one ProgGAN as long as the whole search: at the cifar10 preset about 2e8 iterations, 3.2e9 images, as
# much as the search itself (tens of GPU-days). Above this many route iterations it is left out unless asked.
EQUAL_COMPUTE_LIMIT = 1_000_000


def train_proggan(layout: RunLayout, config: SearchConfig, needs: list[dict[int, int]], *,
                  executor: Executor | None = None, progress: bool = True,
                  stride: int | None = None) -> tuple[RunLayout, list[CandidateRow], list[str]]:
    """The run's ProgGAN route, trained (further) until it covers each of ``needs`` ({res: route iterations})
    in turn: ``RUN/baseline`` for the auto baseline, else ``RUN/compare-baseline``. Returns its folder, its
    candidates and notes for the reader. ``stride``: the most iterations one continuation trains (see
    ``proggan.extend_route``)."""
    sub = layout.baseline if config.baseline == "auto" else layout.compare_baseline
    notes = [] if config.baseline == "auto" else [
        f"the run's baseline is {config.baseline!r}; ProgGAN was trained in {sub.root} for this comparison"]
    own = executor is None
    executor = executor or executor_for(config, layout.root)
    try:
        with run_lock(layout.root), train_route(  # the search itself must not extend the same baseline meanwhile
                sub.root, config, needs, executor, progress, tb_root=layout.tb / sub.root.name,
                desc="ProgGAN for comparison", stride=stride) as proggan:
            return sub, proggan.ledger.candidates(), notes
    finally:
        if own:
            executor.close()


def final_model(layout: RunLayout, config: SearchConfig) -> tuple[FinalRow, list[CandidateRow], int]:
    """(the final row, every candidate, the final model's route iterations); SearchError without one."""
    view = RunView.read(layout.root)
    final, rows = view.final, view.rows
    if final is None or final.status != Status.DONE or not final.checkpoint:
        raise SearchError(f"{layout.root}: the search has no final model yet (status:"
                          f" {None if final is None else final.status}); let it finish (--resume) first")
    final_checkpoint(layout, final, view)  # RUN/best holds the model the ledger says it does
    best = next(r for r in rows if r.id == final.candidate)
    route = int(final.extra.get("route_iterations") or (best.route_iterations or 0) + config.final_iterations)
    return final, rows, route


def same_file(a: Path, b: Path) -> bool:
    """Whether two checkpoints hold the same bytes (the final model copied from the ProgGAN route is (a) itself)."""
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        return hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    except OSError:
        return False


def proggan_iterations(base_rows: list[CandidateRow], resolution: int, want: int) -> int:
    """ProgGAN iterations still to train before the route reaches ``want`` route iterations at ``resolution``."""
    have = max((r.route_iterations or 0 for r in base_rows if r.resolution == resolution
                and r.status == Status.DONE), default=0)
    return max(0, want - have)


@dataclass
class ComparePlan:
    """What ``dggan compare`` will do, said before it starts: the ProgGAN training it needs and the scorings."""

    route: int  # the final model's route iterations: (a)
    compute: int  # the search's whole compute: (b)
    equal_compute: bool  # whether (b) is trained and scored (not above the limit)
    to_train: int  # ProgGAN iterations this comparison trains
    scorings: int  # models x seeds, the real-vs-real floor included
    skipped: str | None = None  # why (b) is left out

    def text(self) -> str:
        train = (f"trains ProgGAN {self.to_train:,} more iterations" if self.to_train
                 else "trains nothing (the search's ProgGAN covers it)")
        return f"compare: {train} and runs {self.scorings} scorings"


def compare(run_dir: str | Path, *, eval_seeds: int = 3, executor: Executor | None = None,
            progress: bool = True, equal_compute_limit: int | None = EQUAL_COMPUTE_LIMIT,
            threads: int | None = None, log: Callable[[str], None] | None = None) -> Comparison:
    """Score the final model against ProgGAN at equal training (a) and with the search's whole compute (b), see the
    module's docstring. (b) is left out, with a note, when the search's compute exceeds ``equal_compute_limit``
    route iterations (None: no limit). ``threads``: torch and BLAS threads here (default the run's ``threads``,
    else chosen from the free cores, as the search chooses)."""
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    layout = RunLayout(run_dir)
    config = load_run_config(layout.root)
    # The search picks its threads from the free cores; without the same choice here torch and BLAS start one
    # thread per core, which spin against each other on a busy machine (a 3x slower search made compare 19x).
    chosen = set_threads(threads or config.threads)
    say(f"compare: torch threads {chosen} ({'set' if threads or config.threads else 'chosen from the free cores'})")
    final, rows, route = final_model(layout, config)
    total = search_iterations(rows, config.final_iterations)
    target = config.target_resolution
    notes: list[str] = []
    skipped = None
    if equal_compute_limit is not None and total > equal_compute_limit:
        skipped = (f"(b) left out: ProgGAN with the search's whole compute would train {total:,} route iterations,"
                   f" above the limit of {equal_compute_limit:,} (at the cifar10 preset about 2e8, as much compute as"
                   f" the search itself); pass --equal-compute-limit {total} to train and score it")
        notes.append(skipped)
    needs = [{target: route}] + ([] if skipped else [{target: max(route, total)}])
    # Only the end points are scored: no rungs, and each need is reached in one task (compare's own copy of the
    # baseline's settings; the baseline's ledger keeps its own).
    runner_config = dataclasses.replace(config, halving_eta=1)
    base_before = _route_rows(layout, config)
    want = max(n[target] for n in needs)
    final_path = layout.resolve(final.checkpoint or "")
    sub_layout = layout.baseline if config.baseline == "auto" else layout.compare_baseline
    a_before = next((r for r in base_before if r.resolution == target and r.route_iterations == route
                     and r.status == Status.DONE and r.checkpoint), None)
    reuse_a = a_before is not None and same_file(final_path, sub_layout.resolve(a_before.checkpoint or ""))
    models = 1 + (not reuse_a) + (skipped is None)
    plan = ComparePlan(route, total, skipped is None, proggan_iterations(base_before, target, want),
                       eval_seeds * (models + 1), skipped)
    say(plan.text() + (f"; {skipped}" if skipped else ""))
    sub, base_rows, more_notes = train_proggan(layout, runner_config, needs, executor=executor, progress=progress,
                                               stride=max(1, want))
    notes[:0] = more_notes
    a = baseline_point(base_rows, target, route)
    b = None if skipped else baseline_point(base_rows, target, total)
    for row, want_its in ((a, route), (b, total)):
        if row is not None and (row.route_iterations or 0) != want_its:
            notes.append(f"ProgGAN has no model at exactly {want_its:,} iterations; the nearest after it"
                         f" ({row.route_iterations:,}) stands in")
    best = next(r for r in rows if r.id == final.candidate)
    if best.genome.key() == a.genome.key():
        notes.append("the final model has ProgGAN's own architecture: no grown layer beat the ProgGAN route, so"
                     " (a) is the same architecture, and a result within noise against it says nothing for or against"
                     " growing")
    seeds = heldout_seeds(config.seed, eval_seeds)
    device = config.resolved_device()
    a_path = sub.resolve(a.checkpoint or sub.checkpoint(a.id))
    reuse_a = same_file(final_path, a_path)
    count = eval_seeds * (1 + (not reuse_a) + (b is not None))
    bar = progress_bar(total=count, desc="compare: scoring on held-out seeds", unit="score",
                       disable=None if progress else True)

    def scored(name: str, path: Path, its: int) -> Scored:
        values = []
        for s in seeds:
            values.append(float(score_checkpoint(path, config, s, device)["value"]))
            bar.update(1)
        return Scored(name, layout.relative(path), its, values)

    try:
        final_scores = scored("final", final_path, route)
        if reuse_a:  # one network, one number: the final model is (a)'s very checkpoint
            equal_training = Scored("proggan_equal_training", layout.relative(a_path), a.route_iterations or 0,
                                    list(final_scores.scores))
            notes.append("the final model is (a)'s very checkpoint (the ProgGAN route's snapshot): its scores are"
                         " (a)'s, not scored twice")
        else:
            equal_training = scored("proggan_equal_training", a_path, a.route_iterations or 0)
        equal_compute = None if b is None else scored(
            "proggan_equal_compute", sub.resolve(b.checkpoint or sub.checkpoint(b.id)), b.route_iterations or 0)
    finally:
        bar.close()
    result = Comparison(
        run=str(layout.root), metric=config.metric, target_resolution=target, eval_seeds=seeds,
        final=final_scores, equal_training=equal_training, equal_compute=equal_compute,
        search_iterations=total, notes=notes, floor=data_floor(config, seeds, device, notes),
        search_draw=final.metric, equal_compute_skipped=skipped)
    atomic_write_json(layout.compare_json, result.to_dict())
    atomic_write_text(layout.compare_md, result.markdown())
    return result


def _route_rows(layout: RunLayout, config: SearchConfig) -> list[CandidateRow]:
    """The ProgGAN route's candidates as they are before ``dggan compare`` trains any (none when it has no folder)."""
    sub = layout.baseline if config.baseline == "auto" else layout.compare_baseline
    if not sub.ledger.is_file():
        return []
    return RunView.read(sub.root).rows


# ---------------------------------------------------------------------- one search's final model against another's
SAME_FOR_FINALS = ("data", "metric", "target_resolution")  # two final models are comparable only when these agree


@dataclass
class FinalsComparison:
    """Two searches' final models on the same held-out evaluation seeds (the first run's), pair by pair: e.g.
    the paper's top-K search against random growth with the same budget and seeds."""

    run: str
    other: str
    metric: str
    target_resolution: int
    eval_seeds: list[int]
    final: Scored
    other_final: Scored
    differs: dict[str, list[Any]]  # the settings the two runs differ in (this run's value, the other's)
    notes: list[str] = field(default_factory=list)

    @property
    def paired(self) -> Paired:
        return Paired.of(self.final.scores, self.other_final.scores, parse_metric(self.metric).lower_is_better)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "other": self.other, "metric": self.metric,
                "target_resolution": self.target_resolution, "eval_seeds": self.eval_seeds,
                "eval_seeds_held_out": True, "final": self.final.to_dict(), "other_final": self.other_final.to_dict(),
                "paired": self.paired.to_dict(), "verdict": self.paired.verdict, "verdict_rule": VERDICT_RULE,
                "differs": self.differs, "notes": self.notes}

    def markdown(self) -> str:
        p = self.paired
        sem = "–" if p.n < 2 else f"{p.sem:.2g}"
        differs = ", ".join(f"{k} ({a!r} here, {b!r} there)" for k, (a, b) in self.differs.items()) or "nothing"
        lines = [f"{self.metric} at {self.target_resolution}px (lower is better) over held-out evaluation seeds"
                 f" {self.eval_seeds}; the runs' settings differ in: {differs}.", "",
                 "| run | final model | training iterations | score (mean ± std) | per seed |", "|---|---|---|---|---|"]
        for label, s in ((self.run, self.final), (self.other, self.other_final)):
            lines.append(f"| {label} | {s.name} | {s.route_iterations:,} | {s.mean:.4g} ± {s.std:.2g} |"
                         f" {', '.join(f'{v:.4g}' for v in s.scores)} |")
        lines += ["", f"{self.run}'s final model is **{p.verdict}** against {self.other}'s: paired difference (other"
                  f" - this) {p.mean:+.4g} ± {sem} (s.e.), better on {p.wins} of {p.n} seeds.", "",
                  f"Verdict rule: {VERDICT_RULE}."]
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"


def describe_final(layout: RunLayout, final: FinalRow, rows: list[CandidateRow]) -> str:
    """A final model in words: 'ProgGAN route' or its grown actions ('G k3 f64 at 8px, res, D k7 f64 at 16px')."""
    from ..search.algorithm import route as route_of

    best = next(r for r in rows if r.id == final.candidate)
    if best.extra.get("proggan_route"):
        return f"candidate {best.id}: the ProgGAN route"
    steps = [r for r in route_of(rows, best.id) if r.action is not None]
    words = [f"{a.label()} at {r.resolution}px" for r in steps if (a := r.action) is not None]
    return f"candidate {best.id}: " + (", ".join(words) or "its initial genome")


def compare_finals(run_dir: str | Path, other_dir: str | Path, *, eval_seeds: int = 3) -> FinalsComparison:
    """``dggan compare RUN --against OTHER``: both final models scored with RUN's metric over RUN's held-out
    evaluation seeds, pair by pair. The runs must share data, metric and target resolution."""
    layouts = RunLayout(run_dir), RunLayout(other_dir)
    configs = [load_run_config(layout.root) for layout in layouts]
    mine, theirs = (c.to_dict() for c in configs)
    clash = [k for k in SAME_FOR_FINALS if mine[k] != theirs[k]]
    if clash:
        raise SearchError(f"{layouts[1].root} cannot be compared with {layouts[0].root}: they differ in"
                          f" {', '.join(f'{k} ({mine[k]!r} against {theirs[k]!r})' for k in clash)}; compare"
                          " searches run on the same data with the same metric and target resolution")
    from ..search.config import RUNTIME_SETTINGS

    differs = {k: [mine[k], theirs.get(k)] for k in sorted(mine)
               if k not in RUNTIME_SETTINGS and mine[k] != theirs.get(k)}
    config = configs[0]
    seeds = heldout_seeds(config.seed, eval_seeds)
    device = config.resolved_device()
    scored = []
    for layout, own in zip(layouts, configs, strict=True):
        final, rows, route = final_model(layout, own)
        path = layout.resolve(final.checkpoint or "")
        scored.append(Scored(describe_final(layout, final, rows), str(path), route,
                             [float(score_checkpoint(path, config, s, device)["value"]) for s in seeds]))
    notes = []
    if configs[1].seed != config.seed:
        notes.append(f"the runs have different seeds ({config.seed} and {configs[1].seed}); both are scored with"
                     f" the held-out seeds of the first")
    result = FinalsComparison(run=str(layouts[0].root), other=str(layouts[1].root), metric=config.metric,
                              target_resolution=config.target_resolution, eval_seeds=seeds, final=scored[0],
                              other_final=scored[1], differs=differs, notes=notes)
    json_path, md_path = layouts[0].compare_against(layouts[1].root)
    atomic_write_json(json_path, result.to_dict())
    atomic_write_text(md_path, result.markdown())
    return result
