"""The paper's ProgGAN FIDs per resolution, and a metric normalised by a per-resolution baseline.

FIDs at different resolutions are not comparable, so the paper's search ranks candidates by FID over
the per-scale ProgGAN baseline (< 1 means better than ProgGAN at that scale).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .registry import MetricError

# Paper, "Comparison with ProgGAN at Multiple Resolutions" (CIFAR-10).
PROGGAN_FID_CIFAR10: Mapping[int, float] = MappingProxyType({8: 4.02, 16: 11.68, 32: 18.33})
# Paper, Table 2 (LSUN bedroom).
PROGGAN_FID_LSUN_BEDROOM: Mapping[int, float] = MappingProxyType(
    {8: 29.07, 16: 23.75, 32: 27.9, 64: 19.67, 128: 29.35, 256: 10.76})


def normalize(value: float, resolution: int, baseline: Mapping[int, float]) -> float:
    """``value / baseline[resolution]``."""
    if resolution not in baseline:
        raise MetricError(f"the baseline has no value at {resolution}px (it covers {sorted(baseline)});"
                          " pass a baseline that includes this resolution")
    reference = float(baseline[resolution])
    if reference <= 0:
        raise MetricError(f"baseline at {resolution}px is {reference}; it must be positive")
    return float(value) / reference
