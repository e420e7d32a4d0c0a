"""PNG plots of the analyses (Fig. 1 bottom, Fig. 3) with matplotlib's object API and the Agg canvas.

No pyplot: figures are plain ``Figure`` objects, so nothing touches global backend state and plotting
works headless and from threads. Every function returns PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from ..model.actions import action_kinds
from ..model.genome import Genome, LayerSpec, d_plan, g_plan
from ..search.ledger import CandidateRow
from .analyses import ActionEffect, Capacity, PruningRisk, ReplayCell, ReplayRun, ScoreKey, score

ROUTE_COLOR = "#d62728"
# Colours of registered actions that name none (the paper's three name theirs: blue G, orange D, green res).
ACTION_PALETTE = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
DPI = 100


def kind_colors() -> dict[str, str]:
    """Every registered action's colour, in registration order: its own, else the next of ``ACTION_PALETTE``."""
    out, spare = {}, 0
    for name, kind in action_kinds().items():
        if kind.color is None:
            out[name], spare = ACTION_PALETTE[spare % len(ACTION_PALETTE)], spare + 1
        else:
            out[name] = kind.color
    return out


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _ratio_label(x: float, _pos: object = None) -> str:
    """Powers of two as 1/64 .. 64, the paper's G2D ratio axis."""
    if x <= 0:
        return ""
    e = round(math.log2(x))
    if abs(math.log2(x) - e) > 1e-6:
        return ""
    return f"{2**e}" if e >= 0 else f"1/{2**-e}"


def _legend_outside(ax: object, **kwargs: object) -> None:
    """The legend to the right of the axes: inside, "best" still covers a point when every corner holds one."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, **kwargs)


def _ratio_axis(ax: object, ratios: Sequence[float]) -> None:
    """A log2 G-to-D ratio axis with at least two labelled powers of two around the data (a narrow spread of ratios
    otherwise gets one tick, or matplotlib's "1.2x10^0" minor labels)."""
    lo = min(ratios, default=1.0)
    hi = max(ratios, default=1.0)
    a, b = math.floor(math.log2(max(lo, 1e-12))), math.ceil(math.log2(max(hi, 1e-12)))
    if b == a:  # every ratio a power of two: one below and one above it too
        a, b = a - 1, b + 1
    ax.set_xscale("log", base=2)
    ax.set_xlim(2.0**a / 1.15, 2.0**b * 1.15)
    ax.xaxis.set_major_locator(FixedLocator([2.0**e for e in range(a, b + 1)]))
    ax.xaxis.set_major_formatter(FuncFormatter(_ratio_label))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _score_axis(ax: object, scores: Sequence[float]) -> None:
    """Log scale only where the scores span more than a decade; plain numbers on the ticks either way."""
    finite = [v for v in scores if v > 0 and math.isfinite(v)]
    if finite and max(finite) / min(finite) > 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def params_text(n: int) -> str:
    """1.23M, 45.6K or 789: parameter counts of small test networks stay readable."""
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def _score_label(key: ScoreKey) -> str:
    return "normalized metric (metric / ProgGAN baseline)" if key == "normalized_metric" else "metric"


# ---------------------------------------------------------------------- 1. G-to-D capacity
def plot_capacity(cap: Capacity, key: ScoreKey = "normalized_metric") -> bytes:
    fig = Figure(figsize=(9, 9), layout="constrained")
    ax_all, ax_zoom = fig.subplots(2, 1)
    pts = cap.points
    by_id = {p.id: p for p in pts}
    resolutions = sorted({p.resolution for p in pts})
    cmap = [f"C{i}" for i in range(10)]
    for ax, zoom in ((ax_all, False), (ax_zoom, True)):
        for i, res in enumerate(resolutions):
            sel = [
                p
                for p in pts
                if p.resolution == res and p.status == "done" and (not zoom or p.score < cap.zoom_threshold)
            ]
            if sel:
                ax.scatter(
                    [p.g2d_ratio for p in sel],
                    [p.score for p in sel],
                    s=10,
                    alpha=0.6,
                    color=cmap[i % 10],
                    label=f"{res}px ({len(sel)})",
                    linewidths=0,
                )
        div = [p for p in pts if p.status == "diverged" and (not zoom or p.score < cap.zoom_threshold)]
        if div:
            ax.scatter(
                [p.g2d_ratio for p in div],
                [p.score for p in div],
                s=18,
                marker="x",
                color="black",
                label=f"diverged ({len(div)})",
                linewidths=0.8,
            )
        route = [by_id[i] for i in cap.route if not zoom or by_id[i].score < cap.zoom_threshold]
        for a, b in zip(route, route[1:], strict=False):
            ax.annotate(
                "",
                xy=(b.g2d_ratio, b.score),
                xytext=(a.g2d_ratio, a.score),
                arrowprops={"arrowstyle": "->", "color": ROUTE_COLOR, "lw": 1.6},
            )
        if route:
            ax.scatter(
                [p.g2d_ratio for p in route],
                [p.score for p in route],
                s=22,
                color=ROUTE_COLOR,
                zorder=3,
                label="best candidate's route",
            )
            ax.scatter([route[-1].g2d_ratio], [route[-1].score], s=120, marker="*", color=ROUTE_COLOR, zorder=4)
        shown = [p for p in pts if not zoom or p.score < cap.zoom_threshold]
        _ratio_axis(ax, [p.g2d_ratio for p in (shown or pts)])
        if key == "normalized_metric":
            ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_xlabel("G-to-D #parameters ratio")
        ax.set_ylabel(_score_label(key))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # the zoomed view may be empty
            _legend_outside(ax)
    if pts:
        _score_axis(ax_all, [p.score for p in pts])
    ax_all.set_title(f"All candidates with a score ({len(pts)})")
    ax_zoom.set_title(f"Zoom: candidates with score < {cap.zoom_threshold:g}")
    return _png(fig)


# ---------------------------------------------------------------------- 2. effect of each action
def plot_action_effects(effects: Sequence[ActionEffect]) -> bytes:
    fig = Figure(figsize=(max(8.0, 0.42 * len(effects) + 3), 7.5), layout="constrained")
    ax_share, ax_ratio = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(effects))
    palette = kind_colors()
    colors = [palette.get(e.kind, "gray") for e in effects]
    shares = [100 * (e.improved_share or 0.0) for e in effects]
    ax_share.bar(x, shares, color=colors)
    for xi, e, s in zip(x, effects, shares, strict=True):
        ax_share.text(xi, s + 1, f"n={e.n_children}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax_share.set_ylabel("% children better than parent")
    ax_share.set_ylim(0, 115)
    ax_share.set_title("Effect of each action: share of children that improved on their parent")
    means = np.array([e.mean_ratio if e.mean_ratio is not None else np.nan for e in effects])
    stds = np.array([e.std_ratio if e.std_ratio is not None else np.nan for e in effects])
    ax_ratio.errorbar(x, means, yerr=stds, fmt="none", ecolor="gray", capsize=3)
    ax_ratio.scatter(x, means, color=colors, zorder=3)
    ax_ratio.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax_ratio.set_ylabel("child / parent score (mean ± std)")
    ax_ratio.set_xticks(x)
    ax_ratio.set_xticklabels([e.label for e in effects], rotation=60, ha="right", fontsize=8)
    shown = {"grow_g", "grow_d", "grow_res", *(e.kind for e in effects)}  # the paper's three, and any other taken
    ax_ratio.legend(handles=[Patch(color=c, label=k) for k, c in palette.items() if k in shown], loc="upper left",
                    bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
    for ax in (ax_share, ax_ratio):
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


# ---------------------------------------------------------------------- 3. pruning risk
def plot_pruning_risk(risks: Sequence[PruningRisk]) -> bytes:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    t = [r.threshold for r in risks]
    good = [np.nan if r.p_good_given_good_parent is None else 100 * r.p_good_given_good_parent for r in risks]
    sub = [
        np.nan if r.p_good_given_suboptimal_parent is None else 100 * r.p_good_given_suboptimal_parent for r in risks
    ]
    ax.plot(t, good, "o-", color="#2ca02c", label="good parents (score < threshold)")
    ax.plot(t, sub, "s--", color="#d62728", label="sub-optimal parents (score ≥ threshold)")
    ax.set_xlabel("threshold on the score (good = below it)")
    ax.set_ylabel("% of children that are good")
    ax.set_ylim(-3, 103)
    ax.set_title("Pruning risk: how likely parents are to have good children")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return _png(fig)


# ---------------------------------------------------------------------- the final training
def plot_final_training(points: Sequence[dict], metric: str, same_network: bool = False) -> bytes:
    """The metric at each scored point of the final training (``search.watch.final_training_curve``) beside
    ProgGAN's at the same route iterations; the point kept as RUN/best starred, the last one ringed. Each point
    says its seed; ProgGAN scored with the same seed draws as one curve with the final model when
    ``same_network`` (the final model is the ProgGAN route: one network, one curve)."""
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.subplots()
    x = [p["route_iterations"] for p in points]
    ours = [np.nan if p["metric"] is None else p["metric"] for p in points]
    seeds = sorted({p["seed"] for p in points if p.get("seed") is not None})
    seed_text = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    same_seed = all(p.get("proggan_same_seed") for p in points)
    if same_network:
        ax.plot(x, ours, "o-", color=ROUTE_COLOR,
                label=f"final model = the ProgGAN route: one network, one curve ({seed_text})")
    else:
        ax.plot(x, ours, "o-", color=ROUTE_COLOR, label=f"final model ({seed_text})")
        proggan = [(xi, p["proggan"]) for xi, p in zip(x, points, strict=True) if p.get("proggan") is not None]
        if proggan:
            which = "the same seed" if same_seed else "the search's seed: compare shapes, not values"
            ax.plot(*zip(*proggan, strict=True), "s--", color="#7f7f7f",
                    label=f"ProgGAN at the same route iterations ({which})")
    for p, xi, yi in zip(points, x, ours, strict=True):
        if p.get("chosen"):
            ax.plot([xi], [yi], marker="*", markersize=16, color="#2ca02c", linestyle="none",
                    label="kept as RUN/best")
        if p.get("last") and not p.get("chosen"):
            ax.plot([xi], [yi], marker="o", markersize=13, markerfacecolor="none", color="#1f77b4",
                    linestyle="none", label="last (RUN/best/last)")
    start = points[0]["route_iterations"] if points else 0
    ax.set_xlabel(f"route iterations (the final training starts at {start:,})")
    ax.set_ylabel(f"{metric} (lower is better)")
    ax.set_title("The final training, scored at its snapshots")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8)  # below: it covered points inside
    return _png(fig)


# ---------------------------------------------------------------------- 4. K and p replay
def plot_replay(cells: Sequence[ReplayCell], actual: ReplayRun, k_real: int, p_real: float,
                proggan_route: float | None = None) -> bytes:
    """Best score and cost of replays with smaller K and p. ``proggan_route``: the ProgGAN route's score, which
    the search's final pick added (no replay draws it), drawn as a line of its own."""
    fig = Figure(figsize=(15, 5.8), layout="constrained")
    ax_p, ax_k, ax_cost = fig.subplots(1, 3)
    ks = sorted({c.k for c in cells if c.k is not None})
    ps = sorted({c.p for c in cells})
    cell = {(c.k, c.p): c for c in cells}

    def val(c: ReplayCell | None) -> float:
        return np.nan if c is None or c.best_mean is None else c.best_mean

    def line(ax: object, xs: list[float], cs: list[ReplayCell | None], color: str, label: str) -> None:
        # Filled markers: every seed reached the target resolution; hollow: only some did (a biased mean).
        ax.plot(xs, [val(c) for c in cs], "-", color=color, label=label)
        full = [(x, val(c)) for x, c in zip(xs, cs, strict=True) if c is not None and c.reached == c.seeds]
        part = [(x, val(c)) for x, c in zip(xs, cs, strict=True) if c is not None and 0 < c.reached < c.seeds]
        if full:
            ax.scatter(*zip(*full, strict=True), color=color, s=22, zorder=3)
        if part:
            ax.scatter(*zip(*part, strict=True), facecolors="white", edgecolors=color, s=22, zorder=3)

    for i, k in enumerate(ks):
        color = f"C{i % 10}"
        line(ax_p, ps, [cell.get((k, p)) for p in ps], color, f"K={k}")
        ax_cost.plot(
            ps,
            [cell[(k, p)].cost_mean if (k, p) in cell else np.nan for p in ps],
            "o-",
            color=color,
            label=f"K={k}",
        )
    for i, p in enumerate(ps):
        line(ax_k, ks, [cell.get((k, p)) for k in ks], f"C{i % 10}", f"p={p:g}")
    for ax in (ax_p, ax_k):
        if actual.best_score is not None:
            ax.axhline(actual.best_score, color="black", ls="--", lw=0.9,
                       label=f"real search's best grown ({actual.best_score:.3f})")
        if proggan_route is not None:
            ax.axhline(proggan_route, color=ROUTE_COLOR, ls=":", lw=1.2,
                       label=f"ProgGAN route ({proggan_route:.3f}): enters only the final pick, no replay draws it")
        ax.set_ylabel("best score reached (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    ax_cost.axhline(actual.cost, color="black", ls="--", lw=0.9, label="real search")
    ax_p.set_xlabel("p (probability of each parent-action pair)")
    ax_k.set_xlabel("K (parents kept per step)")
    ax_k.set_xscale("log", base=2)
    ax_k.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax_cost.set_xlabel("p")
    ax_cost.set_ylabel("candidates trained (mean over seeds)")
    _score_axis(ax_cost, [c.cost_mean for c in cells] + [actual.cost])
    ax_cost.grid(alpha=0.3)
    ax_cost.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    fig.suptitle(
        f"Replay of the top-K search with smaller K or p (the run used K={k_real}, p={p_real:g});"
        " children never trained in the real search are skipped. Hollow markers: only some seeds"
        " reached the target resolution",
        fontsize=10,
    )
    return _png(fig)


# ---------------------------------------------------------------------- 5a. architecture
_LAYER_COLORS = {"grown": "#ffb347", "base": "#e8e8e8", "rgb": "#aed6f1", "dense": "#c8e6c9"}


def _layer_text(spec: LayerSpec) -> tuple[str, str]:
    if spec.name.startswith("grow"):
        return f"{spec.name}: conv k{spec.kernel} f{spec.out_ch}", "grown"
    if spec.kind in ("torgb", "fromrgb"):
        return f"{'toRGB' if spec.kind == 'torgb' else 'fromRGB'} {spec.in_ch}→{spec.out_ch}", "rgb"
    if spec.kind in ("dense_in", "dense", "out"):
        return f"{spec.kind} {spec.in_ch}→{spec.out_ch}", "dense"
    extra = " (mbstd)" if spec.kind == "mbstd_conv" else (" ↑" if spec.up else (" ↓" if spec.down else ""))
    return f"conv k{spec.kernel} f{spec.out_ch}{extra}", "base"


def _draw_net(ax: object, plan: list[LayerSpec], title: str, depth: int) -> None:
    """One network; ``depth`` (boxes in the tallest column of G and D) gives both the same box size."""
    groups: dict[int, list[LayerSpec]] = {}
    for spec in plan:  # dicts keep first-seen order: G runs 4 -> R, D runs R -> 4
        groups.setdefault(spec.resolution, []).append(spec)
    for col, (res, specs) in enumerate(groups.items()):
        ax.text(col + 0.5, 0.35, f"{res}×{res}", ha="center", va="bottom", fontsize=9, weight="bold")
        for row, spec in enumerate(specs):
            text, kind = _layer_text(spec)
            y = -(row + 1)
            ax.add_patch(
                FancyBboxPatch(
                    (col + 0.06, y + 0.12),
                    0.88,
                    0.76,
                    boxstyle="round,pad=0.01",
                    facecolor=_LAYER_COLORS[kind],
                    edgecolor="#444",
                    lw=0.8,
                )
            )
            ax.text(col + 0.5, y + 0.5, text, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(groups))
    ax.set_ylim(-depth - 0.2, 0.9)
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def plot_architecture(genome: Genome, title: str = "") -> bytes:
    """G and D side by side, layers grouped by resolution (columns), forward order top to bottom."""
    gp, dp = g_plan(genome), d_plan(genome)
    depth = max(
        max(sum(1 for s in plan if s.resolution == r) for r in {s.resolution for s in plan}) for plan in (gp, dp)
    )
    n_cols = len(genome.scales())
    fig = Figure(figsize=(max(10.0, 2 * 1.7 * n_cols), 2.0 + 0.42 * depth), layout="constrained")
    ax_g, ax_d = fig.subplots(1, 2)
    _draw_net(ax_g, gp, f"Generator ({params_text(genome.g_params())} params): forward order ↓", depth)
    _draw_net(ax_d, dp, f"Discriminator ({params_text(genome.d_params())} params): forward order ↓", depth)
    handles = [Patch(facecolor=c, edgecolor="#444", label=k) for k, c in _LAYER_COLORS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


# ---------------------------------------------------------------------- 5b. search tree
def tree_layout(rows: Sequence[CandidateRow], key: ScoreKey) -> dict[int, tuple[int, int]]:
    """(step, rank within step): finished candidates by score first, then the rest by status and id."""
    by_step: dict[int, list[CandidateRow]] = defaultdict(list)
    for r in rows:
        by_step[r.step].append(r)
    pos = {}
    for step, members in by_step.items():
        members.sort(key=lambda r: (0, score(r, key), r.id) if score(r, key) is not None else (1, 0.0, r.status, r.id))
        for rank, r in enumerate(members):
            pos[r.id] = (step, rank)
    return pos


def plot_search_tree(rows: Sequence[CandidateRow], key: ScoreKey, route_ids: Sequence[int] = ()) -> bytes:
    """All candidates as points (x = step, y = rank by score in that step), edges parent -> child.

    Collections instead of one artist per node keep this fast and readable for thousands of candidates.
    """
    pos = tree_layout(rows, key)
    steps = max((s for s, _ in pos.values()), default=0) + 1
    width = max((r for _, r in pos.values()), default=0) + 1
    fig = Figure(figsize=(min(20.0, 6.5 + 1.1 * steps), 7), layout="constrained")
    ax = fig.subplots()
    edges = [(pos[r.parent], pos[r.id]) for r in rows if r.parent is not None and r.parent in pos]
    segs = [e for e in edges if e[1][0] - e[0][0] <= 1]
    if segs:
        ax.add_collection(
            LineCollection(segs, colors="#999999", linewidths=0.4, alpha=max(0.08, min(0.5, 60 / len(segs))))
        )
    for a, b in edges:  # an edge over several steps (the ProgGAN route's row) goes round the nodes between
        if b[0] - a[0] > 1:
            ax.plot(*_around(a, b), color="#999999", lw=0.6, ls="--", alpha=0.6)
    done = [r for r in rows if score(r, key) is not None]
    if done:
        vals = np.array([score(r, key) for r in done])
        vmin, vmax = max(vals.min(), 1e-6), max(vals.max(), vals.min() * 1.01, 1e-6)
        # Log colours only over more than a decade (a narrow log colorbar reads "1.175x10^0").
        norm = LogNorm(vmin=vmin, vmax=vmax) if vmax / vmin > 10 else Normalize(vmin=vmin, vmax=vmax)
        sc = ax.scatter(
            [pos[r.id][0] for r in done],
            [pos[r.id][1] for r in done],
            c=vals,
            cmap="viridis_r",
            norm=norm,
            s=12,
            linewidths=0,
            zorder=2,
        )
        bar = fig.colorbar(sc, ax=ax, label=_score_label(key) + " (lower is better)")
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    markers = {
        "diverged": ("x", "black"),
        "failed": ("X", "#d62728"),
        "pruned": ("s", "#9e9e9e"),  # stopped at an early rung of successive halving
        "pending": (".", "#bbbbbb"),
        "running": (".", "#1f77b4"),
        "done": (".", "#bbbbbb"),
    }
    for status, (marker, color) in markers.items():
        sel = [r for r in rows if r.status == status and score(r, key) is None]
        if sel:
            ax.scatter(
                [pos[r.id][0] for r in sel],
                [pos[r.id][1] for r in sel],
                marker=marker,
                color=color,
                s=16,
                linewidths=0.8,
                label=f"{status} ({len(sel)})",
                zorder=2,
            )
    kept = [r for r in rows if r.kept]
    if kept:
        ax.scatter(
            [pos[r.id][0] for r in kept],
            [pos[r.id][1] for r in kept],
            s=40,
            facecolors="none",
            edgecolors="black",
            linewidths=0.8,
            label=f"kept (top-K, {len(kept)})",
            zorder=3,
        )
    route = [pos[i] for i in route_ids if i in pos]
    if route:
        # Only the route's own nodes: a route that skips steps (the ProgGAN route, continued by the baseline
        # outside the tree) goes round the step's other nodes instead of through them.
        ax.scatter([p[0] for p in route], [p[1] for p in route], color=ROUTE_COLOR, s=30, zorder=5,
                   label="best candidate's route")
        labelled = False
        for a, b in zip(route, route[1:], strict=False):
            if b[0] - a[0] <= 1:
                ax.plot([a[0], b[0]], [a[1], b[1]], "-", color=ROUTE_COLOR, lw=2, zorder=4)
            else:
                ax.plot(*_around(a, b), "--", color=ROUTE_COLOR, lw=1.6, zorder=4,
                        label=None if labelled else "route trained outside the tree (the ProgGAN baseline)")
                labelled = True
        ax.scatter([route[-1][0]], [route[-1][1]], marker="*", s=200, color=ROUTE_COLOR, zorder=6)
    ax.set_xlim(-0.5, steps - 0.5)
    ax.set_ylim(width + 0.5, -1.5)  # rank 0 (best) on top
    ax.set_xticks(range(steps))
    ax.set_xlabel("step")
    ax.set_ylabel("rank within step by score (0 = best)")
    ax.set_title(f"Search tree: {len(rows)} candidates, edges parent → child")
    ax.grid(alpha=0.2)
    if ax.get_legend_handles_labels()[0]:  # below the axes: inside it covers nodes, beside it the colorbar
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=8)
    return _png(fig)


def _around(a: tuple[int, int], b: tuple[int, int]) -> tuple[list[float], list[float]]:
    """A path from node ``a`` to node ``b`` several steps on, through the empty band above rank 0, so it crosses
    no node of the steps in between."""
    return [a[0], a[0] + 0.25, b[0] - 0.25, b[0]], [a[1], -0.9, -0.9, b[1]]
