"""The paper's ProgGAN FIDs per resolution, a metric normalised by a per-resolution baseline, and the paper's
published Tables 1-3 (one home for every number transcribed from the paper).

FIDs at different resolutions are not comparable, so the paper's search ranks candidates by FID over
the per-scale ProgGAN baseline (< 1 means better than ProgGAN at that scale).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

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


# ---------------------------------------------------------------------- the paper's published tables
# Transcribed from the paper (Liu et al., AAAI 2021), Tables 1-3, for the tables of a run (``dggan tables``) to
# show beside its own rows. They are published numbers: other data, other budgets, other code (each row's
# ``source`` says whose), and comparable to a run's rows only under the same protocol.


@dataclass(frozen=True)
class PublishedRow:
    model: str
    source: str  # whose number it is
    group: str = ""  # Table 1: "manual" (top rows) | "automatic" (bottom rows) | "DGGAN"
    fid: float | None = None
    is_mean: float | None = None
    is_std: float | None = None  # "-" in the paper where only the mean is given
    resolution: int | None = None  # Table 3
    swd: Mapping[int, float] | None = None  # Table 3: SWD x 1e3 per Laplacian level (256 ... 16)
    swd_avg: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.swd is not None:
            out["swd"] = {str(k): v for k, v in self.swd.items()}
        return out


@dataclass(frozen=True)
class PublishedTable:
    name: str
    dataset: str
    protocol: str
    rows: tuple[PublishedRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.dataset, "protocol": self.protocol, "published": True,
                "rows": [r.to_dict() for r in self.rows]}


PAPER_TABLE1 = PublishedTable(
    "Table 1", "CIFAR-10, 32x32 (50k training images)",
    "published numbers, not this run's: FID of 50k samples against the training set (ProgGAN's from the PyTorch"
    " implementation, the rest from their papers); Inception Score of 50k samples, mean ± std over its splits",
    (PublishedRow("CR-GAN", "Zhang et al. 2020", "manual", fid=14.56),
     PublishedRow("Improving MMD-GAN", "Wang, Sun, and Halgamuge 2019", "manual", fid=16.21, is_mean=8.29),
     PublishedRow("DistGAN", "Tran, Bui, and Cheung 2018", "manual", fid=17.61),
     PublishedRow("ProgGAN", "Karras et al. 2018", "manual", fid=18.33, is_mean=8.80, is_std=0.05,
                  note="FID from the PyTorch implementation (pytorch_GAN_zoo)"),
     PublishedRow("WGAN-GP", "Gulrajani et al. 2017", "manual", fid=29.3, is_mean=7.86, is_std=0.07),
     PublishedRow("DCGAN", "Radford, Metz, and Chintala 2016", "manual", fid=37.7, is_mean=6.64, is_std=0.14),
     PublishedRow("AutoGAN", "Gong et al. 2019", "automatic", fid=12.42, is_mean=8.55, is_std=0.10),
     PublishedRow("AGAN", "Wang and Huan 2019", "automatic", fid=23.80, is_mean=8.82, is_std=0.09),
     PublishedRow("DGGAN", "Liu et al. 2021 (the paper)", "DGGAN", fid=12.10, is_mean=8.64, is_std=0.06)))

_SWD_LEVELS = (256, 128, 64, 32, 16)
PAPER_TABLE3 = PublishedTable(
    "Table 3", "LSUN bedroom",
    "published numbers, not this run's: FID (50k samples against the training set); SWD x 1e3 per Laplacian level"
    " at 256x256 (ProgGAN's protocol: 16k images, descriptors from 256 down to 16 px) and their average",
    (PublishedRow("DCGAN", "Radford, Metz, and Chintala 2016", fid=70.4, resolution=64),
     PublishedRow("WGAN-GP", "Gulrajani et al. 2017", fid=20.5, resolution=64),
     PublishedRow("Improving MMD-GAN", "Wang, Sun, and Halgamuge 2019", fid=12.52, resolution=64),
     PublishedRow("TTUR", "Heusel et al. 2017", fid=9.5, resolution=64),
     PublishedRow("DGGAN", "Liu et al. 2021 (the paper)", fid=8.25, resolution=64),
     PublishedRow("ProgGAN (reported)", "Karras et al. 2018", fid=8.34, resolution=256,
                  swd=dict(zip(_SWD_LEVELS, (2.72, 2.45, 2.34, 2.90, 9.08), strict=True)), swd_avg=3.90),
     PublishedRow("ProgGAN (PyTorch)", "pytorch_GAN_zoo (Git 2019)", fid=10.76, resolution=256,
                  swd=dict(zip(_SWD_LEVELS, (3.74, 3.78, 3.53, 4.04, 1.58), strict=True)), swd_avg=3.33),
     PublishedRow("DGGAN", "Liu et al. 2021 (the paper)", fid=8.22, resolution=256,
                  swd=dict(zip(_SWD_LEVELS, (3.01, 2.15, 3.03, 4.56, 1.40), strict=True)), swd_avg=2.83),
     PublishedRow("COCO-GAN", "Lin et al. 2019", fid=5.99, resolution=256, note="part-based")))

# Paper, Table 2 (LSUN bedroom) and the CIFAR-10 text: DGGAN's FID per resolution, beside ProgGAN's above.
DGGAN_FID_CIFAR10: Mapping[int, float] = MappingProxyType({8: 1.96, 16: 6.40, 32: 12.10})
DGGAN_FID_LSUN_BEDROOM: Mapping[int, float] = MappingProxyType(
    {8: 24.29, 16: 21.49, 32: 19.01, 64: 8.25, 128: 13.29, 256: 8.22})
PAPER_TABLE2 = {
    "name": "Table 2", "dataset": "LSUN bedroom", "published": True,
    "protocol": "published numbers, not this run's: FID per resolution, DGGAN against ProgGAN at each scale"
                " (not at equal training)",
    "proggan": {str(k): v for k, v in PROGGAN_FID_LSUN_BEDROOM.items()},
    "dggan": {str(k): v for k, v in DGGAN_FID_LSUN_BEDROOM.items()},
    "printed_improvement_pct": {"8": 16, "16": 10, "32": 32, "64": 58, "128": 46, "256": 24},
    "note": "the paper prints a 46% improvement at 128x128, but its FIDs there (29.35 -> 13.29) give 55%",
}


def published_tables() -> dict[str, Any]:
    """The paper's Tables 1-3 as JSON, for a run's tables.json."""
    return {"table1": PAPER_TABLE1.to_dict(), "table2": dict(PAPER_TABLE2), "table3": PAPER_TABLE3.to_dict()}
