"""The ProgGAN baseline every candidate is normalised by, as a curve over training time.

A child continues its parent's training, so a candidate at step s has trained its ancestors' iterations
plus its own (its *route iterations*). Dividing its metric by a ProgGAN trained for less would reward
training time, not architecture. So the ``auto`` baseline is a curve: the ProgGAN route (only
``grow_res``, same budgets and seeds) trained through the same code, then continued at every resolution
and scored along the way, far enough to cover the longest route the search has. A candidate is scored
against the baseline at its resolution **and its route iterations** (linear interpolation between the
baseline's points, which lie on the same grid as the candidates').

Other baselines keep one value per resolution, whatever the training time:

- ``{res: value}`` and the paper's values (``paper-cifar10``, ``paper-lsun-bedroom``): fixed numbers; a
  paper value is accepted only with the metric protocol it was measured with (``PAPER_PROTOCOL``);
- a baseline run folder (``dggan baseline``): its own curve, as far as it was trained (beyond its last
  point the last value holds, and the candidate says so in ``extra["baseline_extrapolated"]``);
- ``none``: 1 everywhere (raw metric).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import LedgerError, SearchError
from ..execution.state import Status
from ..metrics.paper import PROGGAN_FID_CIFAR10, PROGGAN_FID_LSUN_BEDROOM
from ..runs import RunLayout
from .config import SearchConfig
from .ledger import CandidateRow, Ledger, RungRow

# The paper's ProgGAN FIDs per resolution (CIFAR-10 in the text, LSUN bedroom in Table 2), and the
# protocol they were measured with: FID of 50k samples against the training set (pytorch_GAN_zoo's).
PAPER_BASELINES: dict[str, Mapping[int, float]] = {
    "paper-cifar10": PROGGAN_FID_CIFAR10,
    "paper-lsun-bedroom": PROGGAN_FID_LSUN_BEDROOM,
}
PAPER_PROTOCOL = "fid50k"


@dataclass(frozen=True)
class BaselineCurve:
    """The baseline metric at each resolution as a function of route iterations.

    ``points[res]`` holds (route iterations, metric) pairs sorted by iterations; a fixed baseline has one
    point per resolution (iterations 0), which holds for any training time.
    """

    points: dict[int, tuple[tuple[int, float], ...]]
    kind: str  # auto | run | fixed | none

    @classmethod
    def fixed(cls, values: Mapping[int, float], kind: str = "fixed") -> BaselineCurve:
        return cls({int(r): ((0, float(v)),) for r, v in values.items()}, kind)

    @classmethod
    def from_rows(cls, rows: list[CandidateRow], kind: str) -> BaselineCurve:
        """The curve of a baseline run's finished candidates."""
        points: dict[int, dict[int, float]] = {}
        for r in rows:
            if r.status == Status.DONE and r.metric is not None:
                points.setdefault(r.resolution, {})[int(r.route_iterations or 0)] = float(r.metric)
        return cls({res: tuple(sorted(p.items())) for res, p in sorted(points.items())}, kind)

    @classmethod
    def from_rungs(cls, rows: list[CandidateRow], rungs: list[RungRow], metric: str, kind: str) -> BaselineCurve:
        """The curve of a baseline run's scores with ``metric`` at every rung of its candidates' training (for
        the intermediate rungs of successive halving, which are scored with the rung metric)."""
        points: dict[int, dict[int, float]] = {}
        resolution = {r.id: r.resolution for r in rows}
        for g in rungs:
            if g.metric is not None and g.extra.get("metric") == metric and g.candidate in resolution:
                points.setdefault(resolution[g.candidate], {})[int(g.route_iterations or 0)] = float(g.metric)
        return cls({res: tuple(sorted(p.items())) for res, p in sorted(points.items())}, kind)

    @property
    def varies(self) -> bool:
        """Whether the value depends on the training time (an auto or run curve), not a fixed number."""
        return self.kind in ("auto", "run")

    def covers(self, resolution: int, route_iterations: int | None) -> bool:
        pts = self.points.get(resolution)
        if not pts:
            return False
        return not self.varies or route_iterations is None or pts[-1][0] >= route_iterations

    def value(self, resolution: int, route_iterations: int | None) -> tuple[float, dict[str, Any]]:
        """(baseline value, how it was found) at ``resolution`` after ``route_iterations``."""
        pts = self.points.get(resolution)
        if not pts:
            raise SearchError(f"the baseline has no value at {resolution}px (it covers {sorted(self.points)})")
        info: dict[str, Any] = {"baseline_kind": self.kind}
        if len(pts) == 1 or route_iterations is None:
            value = pts[0][1] if route_iterations is None or not self.varies else _interp(pts, route_iterations)
        else:
            value = _interp(pts, route_iterations)
        if self.varies and route_iterations is not None:
            info["baseline_iterations"] = min(route_iterations, pts[-1][0])
            if route_iterations > pts[-1][0]:
                info["baseline_extrapolated"] = True
        info["baseline"] = value
        return value, info

    def normalize(self, metric: float | None, resolution: int,
                  route_iterations: int | None) -> tuple[float | None, dict[str, Any]]:
        if metric is None:
            return None, {}
        value, info = self.value(resolution, route_iterations)
        return metric / value, info

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "points": {str(r): [list(p) for p in pts]
                                                          for r, pts in self.points.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BaselineCurve:
        data = json.loads(text)
        if "points" not in data:  # a version-1 run stored {res: value}
            return cls.fixed({int(k): v for k, v in data.items()}, "fixed")
        return cls({int(r): tuple((int(i), float(v)) for i, v in pts) for r, pts in data["points"].items()},
                   data["kind"])


@dataclass
class Curves:
    """What a runner divides its scores by: the baseline at a candidate's whole budget (``full``) and at halving's
    intermediate rungs (``rungs``: the baseline's own scores at the same fraction of its budget). Written by whoever
    trains the baseline (``SearchBaseline`` for a search, ``train_route`` for a ProgGAN route); a runner reads it."""

    full: BaselineCurve | None = None
    rungs: BaselineCurve | None = None


def _interp(pts: tuple[tuple[int, float], ...], x: int) -> float:
    """Linear interpolation, held constant outside the points."""
    xs = [p[0] for p in pts]
    if x <= xs[0]:
        return pts[0][1]
    if x >= xs[-1]:
        return pts[-1][1]
    i = bisect.bisect_right(xs, x)
    (x0, y0), (x1, y1) = pts[i - 1], pts[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


# ---------------------------------------------------------------------- settings
def baseline_config(config: SearchConfig) -> SearchConfig:
    """ProgGAN through the same code: only grow_res, K = 1, p = 1, same budgets, from the first width."""
    return replace(config, grow_g=False, grow_d=False, top_k=1, p=1.0, baseline="none",
                   initial_channels=config.initial_channels[:1], final_iterations=0, max_steps=None,
                   max_g_layers=None, max_d_layers=None)


def resolutions(config: SearchConfig) -> list[int]:
    out, res = [], config.base_resolution
    while res <= config.target_resolution:
        out.append(res)
        res *= 2
    return out


def longest_route(config: SearchConfig) -> int:
    """Route iterations the search's final model will have at most (when ``max_steps`` bounds the search):
    every step's budget up to ``max_steps``, the forced ``grow_res`` steps after it, and the final training."""
    first = config.initial_iterations or config.iterations
    steps = (config.max_steps or 0) + len(resolutions(config)) - 1
    return first + steps * config.iterations + config.final_iterations


def check_values(values: Mapping[int, float], config: SearchConfig, where: str) -> dict[int, float]:
    missing = [r for r in resolutions(config) if r not in values]
    if missing:
        raise SearchError(f"baseline ({where}) has no value for resolution(s) {missing}; give one per resolution"
                          f" from {config.base_resolution} to {config.target_resolution}")
    bad = [r for r in resolutions(config) if not values[r] > 0]
    if bad:
        raise SearchError(f"baseline ({where}) must be > 0 at every resolution; check {bad}")
    return {r: values[r] for r in resolutions(config)}


def curve_from_run(run_dir: str | Path) -> BaselineCurve:
    """The curve a baseline run folder (``dggan baseline``) measured."""
    try:
        with Ledger.open(RunLayout(run_dir).ledger, readonly=True) as ledger:
            rows = ledger.candidates(status=Status.DONE)
    except LedgerError as exc:
        raise SearchError(f"baseline {run_dir}: {exc}") from None
    return BaselineCurve.from_rows(rows, "run")


def static_curve(config: SearchConfig) -> BaselineCurve | None:
    """The baseline when it is known before any training (None for ``auto``); raises on a bad setting."""
    baseline = config.baseline
    if baseline == "auto":
        return None
    if baseline == "none":
        return BaselineCurve.fixed({r: 1.0 for r in resolutions(config)}, "none")
    if isinstance(baseline, dict):
        return BaselineCurve.fixed(check_values({int(k): float(v) for k, v in baseline.items()}, config, "config"))
    if isinstance(baseline, str) and baseline in PAPER_BASELINES:
        if config.metric != PAPER_PROTOCOL:
            raise SearchError(
                f"baseline {baseline} holds the paper's ProgGAN FIDs, measured as {PAPER_PROTOCOL}; dividing"
                f" {config.metric} scores by them skews the ranking across resolutions (small-sample FID is"
                f" biased upward by an amount that does not scale with the FID). Use --set metric={PAPER_PROTOCOL},"
                " or baseline=auto / a baseline run (`dggan baseline`) measured with your metric")
        return BaselineCurve.fixed(check_values(PAPER_BASELINES[baseline], config, baseline))
    if isinstance(baseline, str) and Path(baseline).is_dir():
        curve = curve_from_run(baseline)
        check_values({r: pts[-1][1] for r, pts in curve.points.items()}, config, baseline)
        settings = _run_settings(Path(baseline))
        if settings.get("metric") not in (None, config.metric):
            raise SearchError(f"baseline run {baseline} was scored with {settings.get('metric')}, this search with"
                              f" {config.metric}; use a baseline run measured with the same metric")
        return curve
    raise SearchError(f"baseline {baseline!r} is neither 'auto', 'none', a paper baseline name"
                      f" ({', '.join(PAPER_BASELINES)}), a {{res: value}} map nor a baseline run folder")


def _run_settings(run_dir: Path) -> dict[str, Any]:
    with Ledger.open(RunLayout(run_dir).ledger, readonly=True) as ledger:
        return ledger.settings()
