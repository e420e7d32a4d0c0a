"""The real-vs-real floor of a dataset: what a generator that drew fresh real images would score.

A metric between two sets of real images is never 0 at a finite sample count (SWD and FID both carry
sampling noise), so a model's score only means something next to it. Two disjoint sets of real images:

- for data with a held-out split (``digits``, ``cifar10``): the held-out images scored as if generated,
  against the training images, the same real side the search scores its models against. A model near this
  floor is as close to the data as new real images are; one well below it is closer to its training images
  than new real images are (it reproduces them);
- otherwise two disjoint halves of the data (a seeded permutation, so every call gets the same halves), one
  scored as if generated against the other.

When the generated side has fewer images than the metric generates, the floor uses the metric at that many
samples (say ``swd359`` for ``swd512``) and says so: SWD and FID shrink with more samples, so such a floor is
a little high.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.base import ImageSource
from .registry import parse_metric
from .seeds import OverSeeds

HELD_OUT_KINDS = ("digits", "cifar10")  # dataset kinds whose constructor takes split="test"
HALVES_SEED = 0


class Subset(ImageSource):
    """Some of another source's images, by index (no copy)."""

    def __init__(self, parent: ImageSource, indices: np.ndarray, name: str):
        self.parent = parent
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name = name

    @property
    def resolution(self) -> int:
        return self.parent.resolution

    @property
    def channels(self) -> int:
        return self.parent.channels

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self.parent.get(self.indices[np.asarray(indices, dtype=np.int64)])

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.parent.fingerprint().encode())
        digest.update(self.indices.tobytes())
        return digest.hexdigest()[:16]


def halves(source: ImageSource, seed: int = HALVES_SEED) -> tuple[Subset, Subset]:
    """Two disjoint halves of ``source`` (an odd image out is left out), the same for the same seed."""
    order = np.random.default_rng(seed).permutation(len(source))
    half = len(source) // 2
    return (Subset(source, np.sort(order[:half]), f"{source.name} (half A)"),
            Subset(source, np.sort(order[half:2 * half]), f"{source.name} (half B)"))


def held_out(spec: str) -> ImageSource | None:
    """The held-out split of the training data ``spec`` names, or None when it has none (or ``spec`` is not
    a training split)."""
    from ..data.registry import open_dataset, parse_spec

    kind, _, options = parse_spec(spec)
    if kind not in HELD_OUT_KINDS or options.get("split", "train") != "train":
        return None
    return open_dataset(spec, split="test")


@dataclass
class Floor(OverSeeds):
    metric: str  # the metric the floor was scored with (fewer samples than asked when the data is short)
    method: str  # "held-out split" | "two disjoint halves"
    sample: str  # the images scored as if generated
    real: str  # the images they are compared with
    seeds: list[int]
    scores: list[float]
    notes: list[str] = field(default_factory=list)


def data_floor(metric: str, data: str | ImageSource, resolution: int, seeds: list[int], **options: Any) -> Floor:
    """The real-vs-real ``metric`` of the dataset ``data`` (a spec or a source) at ``resolution``, once per
    seed (module docstring). ``options`` go to ``evaluate`` (cache_dir, inception_weights, device...)."""
    from ..data.registry import open_dataset
    from .api import MetricWarning, real_vs_real

    source = open_dataset(data) if isinstance(data, str) else data
    test = held_out(data) if isinstance(data, str) else None
    if test is not None:
        sample, real, method = test, source, "held-out split"
    else:
        sample, real = halves(source)
        method = "two disjoint halves"
    notes = []
    spec = parse_metric(metric)
    used = spec.name
    if len(sample) < spec.num_fake:
        used = f"{spec.kind}{len(sample)}"
        notes.append(f"{sample.name} has {len(sample)} images, fewer than the {spec.num_fake} {spec.name} generates:"
                     f" the floor is {used} (a little higher than {spec.name}'s would be)")
    if spec.real != "none" and len(real) < parse_metric(used).num_real:
        notes.append(f"{real.name} has {len(real)} images; the metric's {parse_metric(used).num_real} real ones"
                     " were drawn from them" + (" with replacement" if spec.real == "resample" else ""))
    options = {"progress": False, **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)  # the short side is said once, in the notes
        scores = [float(real_vs_real(used, sample, real, resolution, seed=s, **options)["value"]) for s in seeds]
    return Floor(used, method, sample.name, real.name, list(seeds), scores, notes)
