"""How the report looks: HTML for each section, from values computed in ``compute``. Plots go beside the
page as PNG (and inline, so index.html needs no other file), tables as CSV."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..._util.files import atomic_write_bytes
from ...runs import CHECKPOINT_NAME, SAMPLES_NAME, RunLayout
from ...search.cost import work_seconds
from ...search.ledger import CandidateRow, FinalRow
from ...search.view import RunView
from ...search.watch import final_training_curve
from .. import analyses, plots
from ..headline import duration, headline
from .compute import Analyses, RunData, read_json

PAGE_SIZE = 50
Section = tuple[str, str, str]  # (id, title, html)


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


@dataclass
class Page:
    """Where the report is written; sections add their images through it."""

    out: Path
    notes: list[str] = field(default_factory=list)

    def image(self, name: str, png: bytes) -> str:
        """Save ``name``.png beside the page and return an <img> with the same PNG inlined."""
        atomic_write_bytes(self.out / f"{name}.png", png)
        data = base64.b64encode(png).decode("ascii")
        return f'<img class="plot" id="img-{name}" alt="{name}" src="data:image/png;base64,{data}">'


def asset(name: str) -> str:
    """A static file of the page (report.css, report.js), shipped as package data."""
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------- small helpers
_INLINE_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def inline_json(text: str) -> str:
    """JSON text made safe inside ``<script>``: ``<``, ``>`` and ``&`` as \\u escapes (still the same JSON), so no
    ``</script>``, ``<!--`` or ``<script`` in any ledger text (an error message, a path) can end or reopen the
    element; U+2028/9 too, which old JavaScript parsers read as line breaks."""
    return re.sub("[<>&\u2028\u2029]", lambda m: _INLINE_ESCAPES[m.group()], text)


def _e(x: Any) -> str:
    return html.escape(str(x))


def _text(x: Any) -> str:
    """Plain text as HTML, with `code` in backticks (how the CLI's lines quote commands) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(x))


def _num(x: float | int | None, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else ""
    if isinstance(x, int):
        return f"{x:,}"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def _ratio(x: float | None) -> str:
    """A normalised score as the headline and the log give it: 1.000, not 1."""
    return "–" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _params(n: int) -> str:
    return plots.params_text(n)


def _fmt_counts(c: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""  # key-value tables need no header
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _e(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _write_csv(path: Path, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(headers)
    w.writerows(["" if v is None else v for v in row] for row in rows)
    write_text(path, buf.getvalue())


def jsonable(obj: Any) -> Any:
    """Dataclasses to dicts and non-finite floats to None (strict JSON)."""
    if hasattr(obj, "__dataclass_fields__"):
        return jsonable(obj.to_dict() if hasattr(obj, "to_dict") else asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _links(*names: str) -> str:
    return '<p class="files">Tables: ' + ", ".join(f'<a href="{_e(n)}">{_e(n)}</a>' for n in names) + "</p>"


# ---------------------------------------------------------------------- sections
def _overview(data: RunData) -> str:
    run, rows, statuses, settings = data.run, data.rows, data.statuses, data.settings
    k, p, key, final = data.k, data.p, data.key, data.final
    steps = max((r.step for r in rows), default=-1) + 1
    res = Counter(r.resolution for r in rows)
    items = [
        ("Run folder", str(run.resolve())),
        ("Candidates", f"{len(rows):,} ({_fmt_counts(statuses)})"),
        ("Steps", steps),
        ("Candidates per resolution", ", ".join(f"{r}px: {n}" for r, n in sorted(res.items())) or "–"),
        ("K (top-K kept) / p (sampling probability)", f"{k} / {p:g}"),
        ("Metric", f"{settings.get('metric', '?')} (lower is better); analyses use {key}"),
        ("ProgGAN baseline", _baseline_text(data)),
        ("Candidates' training and scoring", duration(sum(work_seconds(rows)))),
        ("ProgGAN baseline's training and scoring", duration(data.baseline_seconds)),
        ("Wall time of the search (every session)", duration(data.wall_seconds)),
        *_cost_items(data),
        ("Final training", _final_text(final)),
    ]
    return _table(["", ""], items, "kv")


def _final_text(final: FinalRow | None) -> str:
    """The final training's status and its cost as the cost split counts it: training plus scoring (the pick,
    the points, the reported score). The ProgGAN route trains nothing here: the baseline already had."""
    if final is None:
        return "not recorded"
    train, scoring = work_seconds([], final)
    text = (f"candidate {final.candidate}: {final.status.value}; {duration(train + scoring)}: training"
            f" {duration(train)}, scoring {duration(scoring)}")
    if final.extra.get("proggan_route"):
        text += " (the ProgGAN route: the baseline had trained it that far, so only its points were scored)"
    return text


def _cost_items(data: RunData) -> list[tuple[str, str]]:
    """Device-hours and where the training went (``search.cost``); nothing when the ledger cannot say."""
    from ...search.view import run_cost

    cost = run_cost(data.view or data.run)
    if cost is None:
        return []
    items = [("Device-hours (training and scoring, baseline included)", cost.device_hours.text())]
    if cost.split.baseline:
        items.append(("Where the training went", f"{cost.split.text()} (the baseline is about 1/K of a step only at"
                                                 " paper scale: K = 20, ~200 children per step)"))
    return items


def _baseline_text(data: RunData) -> str:
    curve, setting = data.curve, data.settings.get("baseline")
    if curve is None:
        return "–" if setting is None else str(setting)
    if curve.varies:
        spans = ", ".join(f"{r}px: {pts[0][1]:.4g} after {pts[0][0]:,} … {pts[-1][1]:.4g} after {pts[-1][0]:,}"
                          f" iterations ({len(pts)} points)" for r, pts in sorted(curve.points.items()))
        return (f"{setting} — ProgGAN trained through the same code, scored along its route; each candidate is"
                f" divided by it at its own route iterations. {spans}")
    label = setting if isinstance(setting, str) else curve.kind
    return f"{label}: " + ", ".join(f"{r}px: {pts[0][1]:.4g}" for r, pts in sorted(curve.points.items()))


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict) and d:
        out = []
        for k in sorted(d, key=str):
            out += _flatten(d[k], f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, json.dumps(d) if not isinstance(d, str) else d)]


def _settings_html(settings: dict[str, Any], run: Path) -> str:
    if not settings:
        return '<p class="muted">The ledger records no settings and there is no options.json.</p>'
    rows = _flatten(settings)
    note = (
        f" (from the ledger; {RunLayout(run).options} holds the same as written)"
        if RunLayout(run).options.is_file()
        else " (from the ledger)"
    )
    return (
        f"<details><summary>{len(rows)} settings{_e(note)}</summary>"
        + _table(["setting", "value"], rows, "kv")
        + "</details>"
    )


def _best_html(page: Page, run: Path, best: CandidateRow | None, final: FinalRow | None, metric: str,
               seed_of: int | None = None, view: RunView | None = None) -> str:
    if best is None:
        return '<p class="muted">No best candidate.</p>'
    g = best.genome
    how = (
        "picked by the search for final training"
        if final is not None and final.candidate == best.id
        else "lowest score at the target resolution (or the highest reached so far)"
    )
    items = [
        ("Candidate", f"{best.id} (step {best.step}, {how})"),
        ("Genome", g.summary()),
        ("Genome key", g.key()),
        ("Resolution", f"{best.resolution}px"),
        (
            "G / D parameters",
            f"{_params(best.g_params)} / {_params(best.d_params)}"
            f" (G-to-D ratio {best.g_params / max(1, best.d_params):.3g})",
        ),
        ("Grown layers", f"G {len(g.g_layers)}, D {len(g.d_layers)}"),
        ("Metric / normalized at its step", f"{_num(best.metric)} / {_num(best.normalized_metric)}"
                                            f" (after {_num(best.route_iterations)} iterations along its route)"),
    ]
    html_parts = [_table(["", ""], items, "kv")]
    if final is not None:
        route = final.extra.get("route_iterations")
        of_final = (final.extra.get("snapshot") or {}).get("final_iterations")
        seed = seed_of  # the reported number is scored with the search's seed
        html_parts.append(
            "<h3>Final training</h3>"
            + _table(
                ["candidate", "status", "metric", "normalized (ProgGAN trained as long, same seed)", "seed",
                 "route iterations", "of them final training", "train time", "files", "error"],
                [[final.candidate, final.status.value, _num(final.metric), _ratio(final.normalized_metric),
                  "–" if seed is None else seed, _num(route), _num(of_final), duration(final.train_seconds),
                  _Raw('<a href="../best/">RUN/best</a>'), final.error or ""]],
            )
            + _final_curve_html(page, view or run, metric, bool(final.extra.get("proggan_route")))
        )
    html_parts.append(
        "<h3>G and D layers, by resolution</h3>"
        '<p class="muted">Grown layers in orange; G runs 4px → top, D runs top → 4px.</p>'
        + page.image("architecture", plots.plot_architecture(g, f"candidate {best.id}"))
    )
    write_text(page.out / "best_genome.json", g.to_json() + "\n")
    return "".join(html_parts)


def _final_curve_html(page: Page, run: Path | RunView, metric: str, proggan_route: bool = False) -> str:
    """The metric over the final training beside ProgGAN's at the same route iterations, and which snapshot
    became RUN/best; nothing when the final training kept no snapshots (``final_snapshots`` = 1)."""
    points = final_training_curve(run)
    if len(points) < 2:
        return ""
    same_seed = all(p["proggan_same_seed"] for p in points)
    headers = ["point", "route iterations", "of them final training", "seed", "metric",
               "ProgGAN (same route iterations" + (", same seed)" if same_seed else ", the search's seed)"),
               "normalized", "kept"]
    rows = [[p["point"], p["route_iterations"], p["final_iterations"], p["seed"], p["metric"], p["proggan"],
             p["normalized"], "RUN/best" if p["chosen"] else ("RUN/best/last" if p["last"] else "")] for p in points]
    _write_csv(page.out / "final_training.csv", headers, rows)
    shown = [[r[0], _num(r[1]), _num(r[2]), r[3], _num(r[4]), _num(r[5]), _ratio(r[6]), r[7]] for r in rows]
    if same_seed:
        how = ("Each point and ProgGAN at its route iterations are scored with the same selection seed (shown),"
               " which the headline's and <code>dggan compare</code>'s scores never use, so the reported number"
               " is not the minimum of the noise the snapshot was chosen on.")
        if proggan_route:
            how += (" The final model is the ProgGAN route: each point <i>is</i> ProgGAN's model, so it is 1.000 of"
                    " ProgGAN at every point and the plot draws one curve.")
    else:  # a run from before same-seed scoring
        how = ("The points are scored with a selection seed; ProgGAN's values are its baseline curve, scored with"
               " the search's seed: compare the shapes of the two curves, not their values point by point.")
    return ("<h4>The final training, scored at its snapshots</h4>"
            f'<p class="muted">The best snapshot is kept as RUN/best and the last one beside it (RUN/best/last).'
            f" {how} The headline's number is the kept snapshot scored with the search's seed.</p>"
            + page.image("final_training", plots.plot_final_training(points, metric, proggan_route and same_seed))
            + _table(headers, shown) + _links("final_training.csv"))


def _route_html(page: Page, route: list[CandidateRow]) -> str:
    headers = ["step", "id", "action", "resolution", "route its", "G params", "D params", "G/D", "metric",
               "normalized", "status", "kept", "genome"]
    rows = [[r.step, r.id, analyses.action_label(r.action, r.parent), r.resolution, r.route_iterations, r.g_params,
             r.d_params,
             round(r.g_params / max(1, r.d_params), 4), r.metric, r.normalized_metric, r.status.value, r.kept,
             r.genome.summary()] for r in route]
    _write_csv(page.out / "route.csv", headers, rows)
    shown = [[*r[:4], _num(r[4]), _params(r[5]), _params(r[6]), _num(r[7]), _num(r[8]), _num(r[9]), r[10],
              "✓" if r[11] else "", r[12]] for r in rows]
    return _table(headers, shown, "route") + _links("route.csv")


def _capacity_html(page: Page, cap: analyses.Capacity, key: str) -> str:
    threshold = cap.zoom_threshold
    small = _small(len(cap.points), "candidates have a score")
    _write_csv(
        page.out / "capacity.csv",
        ["id", "step", "status", "resolution", "g_params", "d_params", "g2d_ratio", "score", "on_route"],
        [
            [p.id, p.step, p.status, p.resolution, p.g_params, p.d_params, p.g2d_ratio, p.score, p.on_route]
            for p in cap.points
        ],
    )
    span = cap.ratio_range_better_than_baseline
    text = (
        "<p>G-to-D capacity is the number of parameters of G over that of D (log scale); the score is "
        f"{_e(key)} (lower is better, &lt; 1 beats ProgGAN). Top: every candidate with a score; "
        "bottom: those "
        f"below {threshold:g}. Red arrows: the best candidate's growing route.</p>"
    )
    if span is not None:
        text += (
            f"<p>Candidates better than the baseline (score &lt; 1) span G-to-D ratios "
            f"<b>{span[0]:.3g} … {span[1]:.3g}</b> (the paper found 1/64 … 64).</p>"
        )
    zoomed = sum(1 for p in cap.points if p.score < threshold)
    text += f"<p>{len(cap.points)} candidates plotted, {zoomed} in the zoomed view.</p>"
    return small + text + page.image("capacity", plots.plot_capacity(cap, key)) + _links("capacity.csv")


def _actions_html(page: Page, effects: list[analyses.ActionEffect]) -> str:
    headers = [
        "action",
        "children",
        "improved",
        "improved share",
        "diverged",
        "mean child/parent",
        "std child/parent",
    ]
    table = [
        [e.label, e.n_children, e.n_improved, e.improved_share, e.n_diverged, e.mean_ratio, e.std_ratio]
        for e in effects
    ]
    _write_csv(page.out / "action_effects.csv", headers, table)
    if not effects:
        return '<p class="muted">No child has both an outcome and a finished parent yet.</p>'
    text = _small(sum(e.n_children for e in effects), "children have an outcome") + (
        "<p>For each action, its children whose parent finished: the share that <i>improved</i> (child "
        "score &lt; parent score) and the mean ± std (population) of child score / parent score over "
        "finished "
        "children. Diverged children count as not improved and are left out of the ratio statistics; failed "
        "(crashed) children are left out.</p>"
    )
    shown = [
        [r[0], r[1], r[2], "–" if r[3] is None else f"{100 * r[3]:.1f}%", r[4], _num(r[5]), _num(r[6])] for r in table
    ]
    return (
        text
        + page.image("action_effects", plots.plot_action_effects(effects))
        + _table(headers, shown)
        + _links("action_effects.csv")
    )


def _pruning_html(page: Page, risks: list[analyses.PruningRisk], paper: bool) -> str:
    headers = [
        "threshold",
        "good parents",
        "their children",
        "good ones",
        "P(good | good parent)",
        "sub-optimal parents",
        "their children",
        "good ones",
        "P(good | sub-optimal parent)",
    ]
    table = [
        [
            r.threshold,
            r.good_parents,
            r.good_parent_children,
            r.good_parent_good_children,
            r.p_good_given_good_parent,
            r.suboptimal_parents,
            r.suboptimal_parent_children,
            r.suboptimal_parent_good_children,
            r.p_good_given_suboptimal_parent,
        ]
        for r in risks
    ]
    _write_csv(page.out / "pruning_risk.csv", headers, table)
    children = max((r.good_parent_children + r.suboptimal_parent_children for r in risks), default=0)
    text = _small(children, "children with a scored parent") + (
        "<p>A candidate is <b>good</b> for a threshold t when its score is <b>below</b> t (lower is better; "
        'the paper\'s text says "above" but means better than t). The same t classifies parents and '
        "children. Shares are pooled over all children of each group; diverged children are not good, "
        "failed ones are left out. If good parents are much more likely to have good children, pruning "
        "the sub-optimal ones costs little.</p>"
    )
    if not paper:
        text += (
            "<p><b>No parent scores below 1.0</b>, so the paper's thresholds 0.5 … 1.0 would classify every "
            "parent as sub-optimal; the thresholds here span the parents' 10th to 90th score percentile.</p>"
        )
    shown = [[f"{r[0]:.4g}", r[1], r[2], r[3], _pct(r[4]), r[5], r[6], r[7], _pct(r[8])] for r in table]
    return (
        text
        + page.image("pruning_risk", plots.plot_pruning_risk(risks))
        + _table(headers, shown)
        + _links("pruning_risk.csv")
    )


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _replay_html(page: Page, replay: dict[str, Any], k_real: int, p_real: float) -> str:
    cells, actual, seeds = replay["cells"], replay["actual"], replay["seeds"]
    target, etas = replay["target_resolution"], replay.get("etas", [1])
    headers = ["K", "p", "halving eta", "seeds", "reached target", "best mean", "best std", "best min",
               "candidates mean", "candidates std", "candidate-iterations mean"]
    table = [[c.k, c.p, c.eta, c.seeds, c.reached, c.best_mean, c.best_std, c.best_min, c.cost_mean, c.cost_std,
              c.iterations_mean] for c in cells]
    _write_csv(page.out / "replay.csv", headers, table)
    text = _small(actual.cost, "candidates were trained") + (
        f"<p>Algorithm 1 replayed over the recorded candidates with the search's own rules: draw each "
        f"(parent, action) pair with probability p, keep the top K children by score, repeat. A pair the "
        f"real search never trained is skipped (as in the paper), so a replay explores no more than the real "
        f"run did and its cost is a lower bound; with the run's own K, p and seed it retraces the search. "
        f"Best = lowest score at {target}px; cost = "
        f"candidates trained (diverged and failed included) and their iterations. Averages over {seeds} seeds. The"
        f" real search (K={k_real}, p={p_real:g}) reached <b>{_num(actual.best_score)}</b> (candidate"
        f" {actual.best_id}) for {actual.cost:,} candidates, {actual.iterations:,} candidate-iterations.</p>"
    )
    route = replay.get("proggan_route")
    if route is not None:
        text += (f"<p>Its final pick then added the ProgGAN route (candidate {route['id']},"
                 f" {_num(route['score'])}), trained by the baseline, not by the search: no replay draws it, so the"
                 " replay compares what the search itself grew, and the plot shows the route as a line of its"
                 " own.</p>")
    if len(etas) > 1:
        text += (f"<p>With successive halving (eta {etas[-1]}) the replay prunes each step's children by their"
                 " recorded rung scores; a child the real search pruned earlier drops out at that rung.</p>")
    good = [
        c
        for c in cells
        if c.best_mean is not None
        and actual.best_score is not None
        and c.reached == c.seeds
        and c.best_mean <= actual.best_score * 1.0001
    ]
    if good:
        cheapest = min(good, key=lambda c: (c.iterations_mean or c.cost_mean, c.cost_mean))
        text += (
            f"<p>The cheapest setting that matched the real best on every seed: K={cheapest.k}, "
            f"p={cheapest.p:g}, halving eta {cheapest.eta}: {cheapest.cost_mean:.0f} candidates and"
            f" {cheapest.iterations_mean:,.0f} candidate-iterations on average.</p>"
        )
    shown = [[r[0], f"{r[1]:g}", r[2], r[3], r[4], _num(r[5]), _num(r[6]), _num(r[7]), f"{r[8]:.1f}",
              f"{r[9]:.1f}", f"{r[10]:,.0f}"] for r in table]
    plain = [c for c in cells if c.eta == 1]
    return (
        text
        + page.image("replay", plots.plot_replay(plain, actual, k_real, p_real,
                                                 None if route is None else route["score"]))
        + f"<details><summary>Replay table ({len(cells)} settings)</summary>"
        + f"{_table(headers, shown)}</details>"
        + _links("replay.csv")
    )


def _rungs_html(page: Page, stats: list[analyses.RungPredictiveness]) -> str:
    headers = ["rung", "share of the budget", "candidates", "Spearman rho", "p-value"]
    rows = [[s.rung + 1, s.fraction, s.n, s.spearman, s.p_value] for s in stats]
    _write_csv(page.out / "rung_predictiveness.csv", headers, rows)
    n = max((s.n for s in stats), default=0)
    text = _small(n, "candidates have both an early and a final score") + (
        "<p>Successive halving prunes children on early scores. Is an early score predictive of the score at the"
        " whole budget? Spearman's rank correlation between each early rung's normalised score and the final"
        " one, over the candidates that reached their whole budget (the pruned have no final score, so the"
        " correlation is measured on the survivors: a lower bound of what pruning needs).</p>")
    shown = [[r[0], f"{r[1]:.0%}", r[2], _num(r[3], 3), _num(r[4], 2)] for r in rows]
    return text + _table(headers, shown) + _links("rung_predictiveness.csv")


def _tree_html(page: Page, rows: list[CandidateRow], key: str, route: list[CandidateRow]) -> str:
    if not rows:
        return '<p class="muted">No candidates.</p>'
    text = (
        "<p>Every candidate is a point at its step (x) and its rank by score within that step (y, best on "
        "top); grey lines join parents to children, black rings mark the kept (top-K) candidates, the red "
        "points and line are the best candidate's route. A route that leaves the tree (the ProgGAN route, which the "
        "final pick adds and the baseline trained) is drawn dashed, round the steps it skips. Unfinished, diverged "
        "and failed candidates sit below the finished ones.</p>"
    )
    return text + page.image("search_tree", plots.plot_search_tree(rows, key, [r.id for r in route]))


# ---------------------------------------------------------------------- samples
def _checkpoint_path(layout: RunLayout, row: CandidateRow) -> Path:
    return layout.resolve(row.checkpoint) if row.checkpoint else layout.checkpoint(row.id)


def _sample_png(path: Path, n: int, seed: int, device: str) -> bytes:
    # torch loads only when there is a checkpoint to sample: it is slow to import
    from ..._util.images import grid_image
    from ...model.sampling import sample_images
    from ...training.checkpoint import load_generator

    _, G = load_generator(path, device)
    images = sample_images(G, n, seed)
    buf = io.BytesIO()
    grid_image(images).save(buf, format="PNG")
    return buf.getvalue()


def _samples_html(
    page: Page, layout: RunLayout, route: list[CandidateRow], final: FinalRow | None, n: int, seed: int, device: str
) -> str:
    # The last candidate of the route at each resolution: the model the search had at that scale.
    last_at: dict[int, CandidateRow] = {}
    for r in route:
        last_at[r.resolution] = r
    jobs = [
        (
            f"{res}px — candidate {r.id}",
            f"samples_{res}px",
            _checkpoint_path(layout, r),
            layout.candidate(r.id) / SAMPLES_NAME,
        )
        for res, r in sorted(last_at.items())
    ]
    final_ckpt = layout.best / CHECKPOINT_NAME
    if final is not None and final.checkpoint and not final_ckpt.is_file():
        final_ckpt = layout.resolve(final.checkpoint)
    jobs.append(("final model (RUN/best)", "samples_final", final_ckpt, layout.best / SAMPLES_NAME))
    cells, missing = [], []
    for label, name, ckpt, saved in jobs:
        try:
            if ckpt.is_file():
                img, how = page.image(name, _sample_png(ckpt, n, seed, device)), f"{n} samples, seed {seed}"
            elif saved.is_file():
                img, how = (
                    page.image(name, saved.read_bytes()),
                    "checkpoint missing; samples.png saved by the search",
                )
            else:
                missing.append(f"{label}: no checkpoint at {ckpt}")
                continue
        except Exception as exc:  # a corrupt checkpoint costs this grid only
            missing.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        cells.append(
            f'<figure class="sample">{img}<figcaption>{_e(label)}<br><span class="muted">{_e(how)}'
            "</span></figcaption></figure>"
        )
    if missing:
        page.notes.append(f"{len(missing)} sample grid(s) skipped (missing or unreadable checkpoints); see Samples.")
    text = (
        f"<p>Samples of the best candidate's ancestors, one per resolution it passed through, and of the "
        f"final model, from the same latent vectors (seed {seed}).</p>"
    )
    if missing:
        text += "<ul class='missing'>" + "".join(f"<li>Skipped {_e(m)}</li>" for m in missing) + "</ul>"
    return text + ('<div class="samples">' + "".join(cells) + "</div>" if cells else "")


# ---------------------------------------------------------------------- candidate table
_CAND_COLS = [
    ("id", "int"),
    ("step", "int"),
    ("parent", "int"),
    ("action", "str"),
    ("res", "int"),
    ("status", "str"),
    ("metric", "float"),
    ("normalized", "float"),
    ("G params", "int"),
    ("D params", "int"),
    ("G/D", "float"),
    ("kept", "bool"),
    ("train s", "float"),
    ("genome", "str"),
    ("error", "str"),
    ("route its", "int"),  # iterations along the route: what equal-training normalisation compares
]


def _cand_row(r: CandidateRow) -> list[Any]:
    def clean(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    return [
        r.id,
        r.step,
        r.parent,
        analyses.action_label(r.action, r.parent),
        r.resolution,
        r.status.value,
        clean(r.metric),
        clean(r.normalized_metric),
        r.g_params,
        r.d_params,
        round(r.g_params / max(1, r.d_params), 4),
        r.kept,
        None if r.train_seconds is None else round(r.train_seconds, 1),
        r.genome.summary(),
        r.error or "",
        r.route_iterations,
    ]


def _fmt_cell(v: Any, kind: str) -> str:
    if v is None:
        return ""
    if kind == "bool":
        return "✓" if v else ""
    if kind == "float":
        return _num(v)
    if kind == "str" and len(v) > 200:
        return v[:200] + "…"
    return str(v)


def _candidates_html(page: Page, rows: list[CandidateRow], key: str, top_n: int) -> str:
    data = [_cand_row(r) for r in rows]
    _write_csv(page.out / "candidates.csv", [c for c, _ in _CAND_COLS], data)
    sort_col = 7 if key == "normalized_metric" else 6
    # Without JavaScript the page shows the best top_n; the script below pages, sorts and filters all of them.
    first = sorted(data, key=lambda d: (d[sort_col] is None, d[sort_col] or 0.0, d[0]))[:top_n]
    head = "".join(f'<th data-col="{i}" title="click to sort">{_e(c)}</th>' for i, (c, _) in enumerate(_CAND_COLS))
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_fmt_cell(v, k))}</td>" for v, (_, k) in zip(d, _CAND_COLS, strict=True)) + "</tr>"
        for d in first
    )
    statuses = sorted({r.status.value for r in rows})
    options = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in statuses)
    payload = json.dumps(
        {
            "columns": [c for c, _ in _CAND_COLS],
            "types": [k for _, k in _CAND_COLS],
            "rows": data,
            "sort_col": sort_col,
            "page_size": top_n,
        },
        separators=(",", ":"),
    )
    payload = inline_json(payload)
    return f"""<p>{len(rows):,} candidates. Click a column header to sort, type to filter (any column), pick a
status. <a href="candidates.csv">candidates.csv</a> holds them all.</p>
<div class="controls"><input id="cand-filter" type="search" placeholder="filter, e.g. D k7 or diverged">
<select id="cand-status"><option value="">all statuses</option>{options}</select>
<button id="cand-prev" type="button">◀ prev</button><span id="cand-info">best {len(first)} of {len(rows)} by
score</span><button id="cand-next" type="button">next ▶</button></div>
<div class="scroll"><table id="cand-table" class="cands"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>
</table></div>
<noscript><p class="muted">JavaScript is off: showing the best {len(first)}; see candidates.csv for all.</p>
</noscript>
<script id="cand-data" type="application/json">{payload}</script>"""




# ---------------------------------------------------------------------- the result, first
SMALL = 30  # fewer finished candidates than this: the analyses are anecdotes, and the page says so


def _small(n: int, what: str) -> str:
    if n >= SMALL:
        return ""
    return (f'<p class="small">Only {n} {what}: too few to generalise from; read this as what happened in this'
            " run, not as a finding about architectures.</p>")


def _real_png(data: RunData, n: int, seed: int) -> bytes | None:
    """A grid of ``n`` training images at the target resolution (None when the data cannot be opened here)."""
    import numpy as np

    from ..._util.images import grid_image
    from ...data import open_dataset, to_float
    from ...errors import DgganError

    spec, target = data.settings.get("data"), data.target_resolution
    if not isinstance(spec, str) or target is None:
        return None
    try:
        source = open_dataset(spec)
    except DgganError:
        return None
    idx = np.sort(np.random.default_rng(seed).choice(len(source), size=min(n, len(source)), replace=False))
    buf = io.BytesIO()
    grid_image(to_float(source.get(idx), target)).save(buf, format="PNG")
    return buf.getvalue()


def _result_html(page: Page, data: RunData, n: int, seed: int, device: str) -> str:
    head = headline(data.run, data.rows, data.final, data.settings, view=data.view)
    parts = ['<div class="headline">' + "".join(f"<p>{_text(line)}</p>" for line in head.lines()
                                               if not line.startswith("Samples:")) + "</div>"]
    figures = []
    final_ckpt = data.layout.best / CHECKPOINT_NAME
    if head.ok and final_ckpt.is_file():
        figures.append((page.image("result_final", _sample_png(final_ckpt, n, seed, device)),
                        f"the final model: {n} samples, seed {seed}"))
    real = _real_png(data, n, seed)
    if real is not None:
        figures.append((page.image("result_real", real), f"{n} training images ({data.settings.get('data')})"))
    if figures:
        parts.append('<div class="samples">' + "".join(
            f'<figure class="sample">{img}<figcaption>{_e(cap)}</figcaption></figure>' for img, cap in figures)
            + "</div>")
    if head.comparison:
        parts.append(_compare_html(head.comparison))
    elif head.ok:
        parts.append(f'<p class="muted">For the same against ProgGAN trained with the search\'s whole compute,'
                     f" and with several evaluation seeds: <code>dggan compare {_e(data.run)}</code>.</p>")
    return "".join(parts)


def _compare_html(c: dict[str, Any]) -> str:
    """``dggan compare`` (RUN/compare.json): the scores per seed, the paired differences, the floor."""
    def paired(key: str) -> list[str]:
        p = c.get(f"paired_{key}")
        if not p:  # a compare.json from before paired verdicts
            return ["", "", c[f"final_vs_{key}"]]
        sem = "" if p.get("sem") is None else f" ± {p['sem']:.2g}"
        return [f"{p['mean']:+.4g}{sem}", f"{p['wins']}/{p['n']}", p["verdict"]]

    rows = []
    for label, key in (("final model", "final"), ("(a) ProgGAN, equal training", "equal_training"),
                       ("(b) ProgGAN, the search's whole compute", "equal_compute")):
        m = c.get(key)
        if m is None:  # (b) left out above dggan compare's --equal-compute-limit
            rows.append([label, f"{c.get('search_iterations', 0):,}", "left out", "", "", "", ""])
            continue
        rows.append([label, f"{m['route_iterations']:,}", f"{m['mean']:.4g} ± {m['std']:.2g}",
                     ", ".join(f"{v:.4g}" for v in m.get("scores", [])),
                     *(["", "", ""] if key == "final" else paired(key))])
    held = "held-out evaluation seeds" if c.get("eval_seeds_held_out") else "evaluation seeds"
    out = [f"<h3>dggan compare ({_e(c['metric'])}, {held} {_e(c['eval_seeds'])})</h3>",
           _table(["model", "training iterations", "score (mean ± std)", "per seed",
                   "ProgGAN - final (mean ± s.e.)", "seeds final is better", "final is"], rows)]
    floor = c.get("floor")
    if floor:
        out.append(f"<p>Real-vs-real floor ({_e(floor['method'])}: {_e(floor['sample'])} scored as if generated,"
                   f" against {_e(floor['real'])}, {_e(floor['metric'])}): {floor['mean']:.4g} ± {floor['std']:.2g}"
                   " over the same seeds, what a generator drawing new real images would score. A model near it is"
                   " as close to the data as new real images are.</p>")
    if c.get("search_draw") is not None:
        out.append(f'<p class="muted">The search picked the final model on its own draw: {c["search_draw"]:.4g}.</p>')
    if c.get("verdict_rule"):
        out.append(f'<p class="muted">Verdict rule: {_e(c["verdict_rule"])}.</p>')
    if c.get("equal_compute_skipped"):
        out.append(f"<p>{_text(c['equal_compute_skipped'])}.</p>")
    out += [f'<p class="muted">{_text(note)}</p>' for note in c.get("notes", [])
            if note != c.get("equal_compute_skipped")]
    return "".join(out)


def _published_html(table: dict[str, Any] | None, data: str | None = None) -> str:
    """The paper's own rows of a table (``metrics.paper``), labelled as published numbers with their protocol;
    collapsed when the run's data (``data``, a dataset spec) is not the table's dataset (a digits run)."""
    from ...evaluation.tables import published_columns

    if not table:
        return ""
    headers, cells = published_columns(table)
    label = f'Published ({_e(table["name"])}, {_e(table["dataset"])}; {_e(table["protocol"])})'
    if _same_dataset(table.get("dataset", ""), data):
        return f'<p class="muted">{label}:</p>' + _table(headers, cells)
    return (f'<details class="published"><summary>{label}: other data than this run\'s, for reference</summary>'
            + _table(headers, cells) + "</details>")


def _same_dataset(published: str, data: str | None) -> bool:
    """Whether a run on ``data`` (a dataset spec) measures what a published table on ``published`` does."""
    kind = (data or "").split(":")[0].lower()
    name = published.lower()
    return (kind == "cifar10" and "cifar" in name) or (kind in ("lsun", "npz") and "lsun" in name)


def _tables_html(tables: dict[str, Any], data: str | None = None) -> str:
    """The paper's Tables 1-3 (``dggan tables``, RUN/best/tables.json), each beside the paper's published rows."""
    from ...evaluation.tables import table1_value

    plan = tables["protocol"]
    stds = tables.get("table1_std", {})
    published = tables.get("published", {})
    parts = [f"<p>Scored with seed {_e(tables['seed'])}"
             + (" under the paper's protocol (FID and IS of 50k samples, SWD of 16k)." if plan.get("paper_protocol")
                else "; the search's metric stands in where the paper used FID.") + "</p>",
             "<h3>Table 1: the final model</h3>",
             _table(["metric", "final model"],
                    [[k, table1_value(v, stds.get(k))] for k, v in tables["table1"].items()]),
             _published_html(published.get("table1"), data)]
    parts.append(f"<h3>Table 2: per resolution, against ProgGAN trained as long ({_e(plan['table2'])})</h3>")
    parts.append(_table(["resolution", "route model", "training iterations", "ours", "ProgGAN", "improvement"],
                        [[f"{r['resolution']}x{r['resolution']}", r["candidate"], f"{r['route_iterations']:,}",
                          _num(r["ours"]), _num(r["proggan"]), f"{r['improvement_pct']:+.0f}%"]
                         for r in tables["table2"]]))
    t2 = published.get("table2")
    if t2:
        res2 = sorted(t2["proggan"], key=int)
        label = f'Published ({_e(t2["name"])}, {_e(t2["dataset"])}; {_e(t2["protocol"])})'
        body = _table(["model", *[f"{r}x{r}" for r in res2]],
                      [[name, *[_num(t2[key][r]) for r in res2]]
                       for name, key in (("ProgGAN", "proggan"), ("DGGAN", "dggan"))])
        if t2.get("note"):
            body += f'<p class="muted">Note: {_e(t2["note"])}.</p>'
        parts.append(f'<p class="muted">{label}:</p>{body}' if _same_dataset(t2.get("dataset", ""), data) else
                     f'<details class="published"><summary>{label}: other data than this run\'s, for reference'
                     f"</summary>{body}</details>")
    t3 = tables["table3"]
    levels = t3["levels"]
    parts.append(f"<h3>Table 3: SWD x 1e3 per Laplacian level at {t3['resolution']}px ({_e(t3['metric'])})</h3>")
    parts.append(_table(["model", *[str(lv) for lv in levels], "avg"],
                        [[label, *[_num(t3[key]["levels"][str(lv)], 3) for lv in levels], _num(t3[key]["avg"], 3)]
                         for label, key in (("final model", "ours"), ("ProgGAN, equal training", "proggan"))]))
    parts.append(_published_html(published.get("table3"), data))
    if tables.get("notes"):
        parts.append("<ul>" + "".join(f"<li>{_text(n)}</li>" for n in tables["notes"]) + "</ul>")
    return "".join(parts) + _links("../best/tables.md")


# ---------------------------------------------------------------------- the page
def sections(page: Page, data: RunData, found: Analyses, *, n_samples: int, sample_seed: int, device: str,
             top_n: int = PAGE_SIZE) -> list[Section]:
    """Every section's HTML, in page order; a section that fails shows its error and costs nothing else."""
    out: list[Section] = []

    def section(sid: str, title: str, build: Callable[[], str], needs_done: bool = True,
                failed: str | None = None) -> None:
        if needs_done and not data.done:
            out.append((sid, title, '<p class="muted">Needs finished candidates.</p>'))
            return
        if failed is not None:
            page.notes.append(f"Section '{title}' failed: {failed}")
            out.append((sid, title, f'<p class="error">Could not compute this section: {_e(failed)}</p>'))
            return
        try:
            out.append((sid, title, build()))
        except Exception as exc:  # one broken section must not cost the whole report
            page.notes.append(f"Section '{title}' failed: {type(exc).__name__}: {exc}")
            out.append((sid, title, f'<p class="error">Could not build this section: {_e(exc)}</p>'))

    errors = found.errors
    section("result", "Result", lambda: _result_html(page, data, n_samples, sample_seed, device), needs_done=False)
    section("overview", "Overview", lambda: _overview(data), needs_done=False)
    tables = read_json(data.layout.tables_json)
    if isinstance(tables, dict):
        section("tables", "The paper's tables", lambda: _tables_html(tables, data.settings.get("data")),
                needs_done=False)
    seed = data.settings.get("seed")
    section("best", "Best architecture", lambda: _best_html(page, data.run, data.best, data.final,
                                                            str(data.settings.get("metric", "metric")),
                                                            seed if isinstance(seed, int) else None, data.view))
    section("route", "Growing route of the best candidate", lambda: _route_html(page, data.route))
    section("capacity", "1. G-to-D capacity", lambda: _capacity_html(page, found.capacity, data.key),
            failed=errors.get("capacity"))
    section("actions", "2. Effect of each action", lambda: _actions_html(page, found.action_effects),
            failed=errors.get("action_effects"))
    section("pruning", "3. Pruning risk",
            lambda: _pruning_html(page, found.pruning_risk, found.pruning_thresholds[1]),
            failed=errors.get("pruning_risk"))
    section("replay", "4. K and p replay", lambda: _replay_html(page, found.replay, data.k, data.p),
            failed=errors.get("replay"))
    if found.rung_predictiveness is not None or "rung_predictiveness" in errors:
        section("rungs", "Is an early score predictive?", lambda: _rungs_html(page, found.rung_predictiveness),
                failed=errors.get("rung_predictiveness"))
    section("tree", "5. Search tree", lambda: _tree_html(page, data.rows, data.key, data.route), needs_done=False)
    section("samples", "6. Samples",
            lambda: _samples_html(page, data.layout, data.route, data.final, n_samples, sample_seed, device))
    section("candidates", "All candidates", lambda: _candidates_html(page, data.rows, data.key, top_n),
            needs_done=False)
    section("settings", "Settings", lambda: _settings_html(data.settings, data.run), needs_done=False)
    return out


def page_html(run: Path, sections: list[Section], notes: list[str], snapshot: str | None = None,
              generated: str | None = None) -> str:
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    generated = generated or time.strftime("%Y-%m-%d %H:%M:%S")
    # A running (or stopped) search: said first, in a banner, with the time of the snapshot.
    banner = f'<div class="snapshot" id="snapshot" role="status">{_e(snapshot)}</div>' if snapshot else ""
    note_html = ""
    if notes:
        note_html = (
            '<div class="notes" id="notes"><b>Notes</b><ul>'
            + "".join(f"<li>{_text(n)}</li>" for n in notes)
            + "</ul></div>"
        )
    body = "".join(f'<section id="{sid}"><h2>{_e(title)}</h2>{content}</section>' for sid, title, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DGGAN search report — {_e(run.name)}</title><style>{asset("report.css")}</style></head>
<body><header><h1>DGGAN search report — {_e(run.name)}</h1>
<p>{_e(run.resolve())} · generated {_e(generated)}{" · snapshot" if snapshot else ""}</p></header>
<nav>{nav}</nav><main>{banner}{note_html}{body}</main><script>{asset("report.js")}</script></body></html>
"""
