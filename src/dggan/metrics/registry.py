"""Metric kinds, registered by name with their properties, and metric names, which carry the sample budget.

A name is a kind and a count: ``fid10k``, ``fid50k``, ``is50k``, ``swd16k``, ``kid10k``, and generally
``<kind><N>`` or ``<kind><N>k`` (small budgets for demos and tests). A kind is registered once, with
``@register_metric`` on the function that computes it from a ``MetricJob`` (``dggan.metrics.job``), and says
whether lower is better, whether it needs the Inception weights, how it uses real images and how few samples
it is defined for; everything else (the search, ``dggan eval``, the preflight checks) reads those properties.
docs/extending.md adds one.

This module is free of torch, so a name can be checked without it: the built-in kinds below are declared here
and computed in ``dggan.metrics.kinds``, imported when a metric first runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError, MetricError

if TYPE_CHECKING:
    from .job import MetricJob

# How a kind uses real images: "none" (IS), "subset" (up to the count it asks for: all of a smaller dataset;
# FID, KID), "resample" (exactly that count, drawn with replacement from a smaller dataset; SWD).
RealUse = Literal["none", "subset", "resample"]
Compute = Callable[["MetricJob"], dict[str, Any]]

STANDARD_METRICS = ("fid10k", "fid50k", "is50k", "swd16k", "kid10k")
MAX_METRIC_SAMPLES = 5_000_000
_KIND_NAME = re.compile(r"^[a-z][a-z_]*$")  # no digits: a name's kind is all before its count
_NAME = re.compile(r"^([a-z][a-z_]*)(\d+)(k?)$")


@dataclass(frozen=True)
class MetricKind:
    """A registered kind: ``compute(job)`` returns at least ``{"value": float}``, and may add ``num_real`` (the
    real images it compared against) and extras of its own, all JSON-ready."""

    name: str
    compute: Compute
    lower_is_better: bool
    needs_inception: bool
    real: RealUse
    min_samples: int = 1  # fewest samples the statistic is defined for
    # Smallest image side it measures, and why (checked against a search's base resolution).
    min_resolution: int = 1
    min_resolution_why: str = ""


_KINDS: dict[str, MetricKind] = {}


def register_metric(name: str, *, lower_is_better: bool, needs_inception: bool = False, real: RealUse = "subset",
                    min_samples: int = 1, min_resolution: int = 1,
                    min_resolution_why: str = "") -> Callable[[Compute], Compute]:
    """Decorator: ``compute(job)`` is the metric kind ``name``, used as ``<name><N>[k]`` (e.g. ``kid10k``)."""
    if not _KIND_NAME.match(name):
        raise ValueError(f"metric kind {name!r}: use lower-case letters and _ only (the sample count follows it)")
    if real not in ("none", "subset", "resample"):
        raise ValueError(f"metric kind {name!r}: real must be none, subset or resample, got {real!r}")
    if min_samples < 1:
        raise ValueError(f"metric kind {name!r}: min_samples must be >= 1, got {min_samples}")

    def add(compute: Compute) -> Compute:
        known = _KINDS.get(name)
        if known is not None and _qualified(known.compute) != _qualified(compute):
            raise ValueError(f"metric kind {name!r} is already registered ({_qualified(known.compute)}); pick"
                             " another name")
        _KINDS[name] = MetricKind(name, compute, lower_is_better, needs_inception, real, min_samples,
                                  min_resolution, min_resolution_why)
        return compute

    return add


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def metric_kinds() -> dict[str, MetricKind]:
    """Every registered kind by name."""
    return dict(_KINDS)


def metric_kind(name: str) -> MetricKind:
    if name not in _KINDS:
        raise MetricError(f"unknown metric kind {name!r}; registered: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric name means.

    ``num_real`` is the number of real images the metric compares against: as many as generated
    (ProgGAN and StyleGAN use equal counts), or all of a smaller dataset; 0 for IS, which sees no real data.
    """

    name: str
    kind: str
    num_fake: int
    num_real: int
    lower_is_better: bool
    needs_inception: bool = False
    real: RealUse = "subset"


def parse_metric(name: str) -> MetricSpec:
    """``"fid10k"`` -> MetricSpec(kind="fid", num_fake=10000, num_real=10000, lower_is_better=True...)."""
    canonical = name.strip().lower()
    match = _NAME.match(canonical)
    if match is None or match.group(1) not in _KINDS:
        patterns = ", ".join(f"{k}<N>[k]" for k in sorted(_KINDS))
        raise MetricError(f"unknown metric {name!r}; use one of {', '.join(STANDARD_METRICS)}, or {patterns} for"
                          " another sample count (e.g. swd1k, fid2k)")
    kind_name, number, k = match.groups()
    kind = _KINDS[kind_name]
    count = int(number) * (1000 if k else 1)
    if count < kind.min_samples:
        raise MetricError(f"metric {name!r}: {kind_name} needs at least {kind.min_samples} samples")
    if count > MAX_METRIC_SAMPLES:  # a 22-digit count would overflow later, or run for ever
        raise MetricError(f"{name!r} asks for {count:,} samples; at most {MAX_METRIC_SAMPLES:,}"
                          " (fid50k, the paper's, uses 50,000)")
    return MetricSpec(name=canonical, kind=kind_name, num_fake=count, num_real=0 if kind.real == "none" else count,
                      lower_is_better=kind.lower_is_better, needs_inception=kind.needs_inception, real=kind.real)


def metric_spec(name: object, field: str = "metric") -> MetricSpec:
    """``parse_metric`` for a value from a setting or a flag: a non-string or a bad name is a ``ConfigError``
    that names ``field``."""
    if not isinstance(name, str):
        raise ConfigError(f"{field} must be a metric name such as swd1k or fid10k, got {name!r}")
    try:
        return parse_metric(name)
    except MetricError as exc:
        raise ConfigError(f"{field}: {exc}") from None


# ---------------------------------------------------------------------------------------------- the built-in kinds
# Declared here (torch-free), computed in dggan.metrics.kinds.
@register_metric("fid", lower_is_better=True, needs_inception=True, real="subset", min_samples=2)  # a covariance
def _fid(job: MetricJob) -> dict[str, Any]:
    from .kinds import fid

    return fid(job)


@register_metric("is", lower_is_better=False, needs_inception=True, real="none", min_samples=10)  # 10 splits
def _is(job: MetricJob) -> dict[str, Any]:
    from .kinds import inception_score

    return inception_score(job)


@register_metric("swd", lower_is_better=True, real="resample", min_resolution=8,
                 min_resolution_why="SWD uses 7x7 neighbourhoods")
def _swd(job: MetricJob) -> dict[str, Any]:
    from .kinds import swd

    return swd(job)


@register_metric("kid", lower_is_better=True, needs_inception=True, real="subset", min_samples=2)  # unbiased MMD
def _kid(job: MetricJob) -> dict[str, Any]:
    from .kinds import kid

    return kid(job)
