"""Metric names carry their sample budget: ``fid10k``, ``fid50k``, ``is50k``, ``swd16k``, and generally
``fid<N>``, ``fid<N>k``, ``is<N>``, ``is<N>k``, ``swd<N>``, ``swd<N>k`` (small budgets for demos and tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError, MetricError

MetricKind = Literal["fid", "is", "swd"]
METRIC_KINDS: tuple[MetricKind, ...] = ("fid", "is", "swd")
STANDARD_METRICS = ("fid10k", "fid50k", "is50k", "swd16k")

# Fewest samples each statistic is defined for: a covariance needs 2, IS splits into 10 chunks.
_MIN_SAMPLES = {"fid": 2, "is": 10, "swd": 1}
MAX_METRIC_SAMPLES = 5_000_000
_PATTERN = re.compile(r"^(fid|is|swd)(\d+)(k?)$")




@dataclass(frozen=True)
class MetricSpec:
    """What a metric name means.

    ``num_real`` is the number of real images the metric compares against: as many as generated
    (ProgGAN and StyleGAN use equal counts), or all of a smaller dataset; 0 for IS, which sees no real data.
    """

    name: str
    kind: MetricKind
    num_fake: int
    num_real: int
    lower_is_better: bool


def parse_metric(name: str) -> MetricSpec:
    """``"fid10k"`` -> MetricSpec(kind="fid", num_fake=10000, num_real=10000, lower_is_better=True)."""
    canonical = name.strip().lower()
    match = _PATTERN.match(canonical)
    if match is None:
        raise MetricError(f"unknown metric {name!r}; use one of {', '.join(STANDARD_METRICS)}, or"
                          " fid<N>[k], is<N>[k], swd<N>[k] for another sample count (e.g. swd1k, fid2k)")
    kind, number, k = match.groups()
    count = int(number) * (1000 if k else 1)
    if count < _MIN_SAMPLES[kind]:
        raise MetricError(f"metric {name!r}: {kind} needs at least {_MIN_SAMPLES[kind]} samples")
    if count > MAX_METRIC_SAMPLES:  # a 22-digit count would overflow later, or run for ever
        raise MetricError(f"{name!r} asks for {count:,} samples; at most {MAX_METRIC_SAMPLES:,}"
                          " (fid50k, the paper's, uses 50,000)")
    return MetricSpec(name=canonical, kind=kind, num_fake=count, num_real=0 if kind == "is" else count,
                      lower_is_better=kind != "is")


def metric_spec(name: object, field: str = "metric") -> MetricSpec:
    """``parse_metric`` for a value from a setting or a flag: a non-string or a bad name is a ``ConfigError``
    that names ``field``."""
    if not isinstance(name, str):
        raise ConfigError(f"{field} must be a metric name such as swd1k or fid10k, got {name!r}")
    try:
        return parse_metric(name)
    except MetricError as exc:
        raise ConfigError(f"{field}: {exc}") from None
