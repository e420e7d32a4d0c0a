"""``MetricJob``: what a metric kind's computation gets (see ``dggan.metrics.registry.register_metric``).

``evaluate`` checks the request (the metric's name, the resolution, the real data a kind needs) and hands the
kind's function one job: the generated images as uint8 batches, the real data, and the shared, cached pieces
(Inception features, reference statistics and features) that the built-in kinds are made of.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.base import ImageSource
from ..errors import MetricError
from .fid import FID_LAYER, InceptionFeatures, extract_features, get_inception, to_uint8
from .refstats import ReferenceFeatures, ReferenceStats, fid_reference, real_batches, real_indices, reference_features

Generate = Callable[[int], torch.Tensor]


class MetricWarning(UserWarning):
    """A metric ran with fewer real images than its name asks for."""


def generated_batches(generate: Generate, count: int, resolution: int,
                      batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 batches of ``generate(n)`` (float [-1, 1] NCHW at ``resolution``), checked for shape and NaNs."""
    done = 0
    first: torch.Tensor | None = None
    while done < count:
        n = min(batch_size, count - done)
        with torch.no_grad():
            images = generate(n)
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] != n \
                or tuple(images.shape[2:]) != (resolution, resolution) or images.shape[1] not in (1, 3):
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise MetricError(f"generate({n}) must return a float tensor [{n}, 3, {resolution},"
                              f" {resolution}], got {shape}")
        batch = to_uint8(images.detach())
        if done == 0:
            first = batch
        elif first is not None and done == n == first.shape[0] > 1 and torch.equal(batch, first):
            # The easy mistake: a generate() that re-seeds its latents on every call (scored, but barely).
            warnings.warn(f"generate() returned the same {n} images for its first two batches, so the metric"
                          " scores them over and over: either the generator collapsed to a constant output, or"
                          " generate() re-seeds its latents on every call; draw them from one"
                          " dggan.model.sampling.LatentStream instead (lambda n: generate(net, stream.take(n)))",
                          MetricWarning, stacklevel=3)
        yield batch
        done += n


@dataclass
class MetricJob:
    """One evaluation of one metric. ``fakes()`` may be walked once (it generates); keep the batches (uint8) if
    the metric walks them more than once."""

    metric: str  # the name, e.g. "kid10k"
    num_fake: int  # images to generate
    num_real: int  # real images the name asks for (0: none); a "subset" kind uses all of a smaller dataset
    generate: Generate
    real: ImageSource | None  # None only for a kind that uses no real images
    resolution: int
    batch_size: int
    seed: int  # the metric's own randomness (SWD's patches, a real subset drawn with replacement)
    device: torch.device
    cache_dir: Path | None  # reference statistics and features (None: in memory only)
    inception_weights: str | os.PathLike[str] | None
    progress: bool

    def fakes(self) -> Iterator[torch.Tensor]:
        """The ``num_fake`` generated images, uint8 [N, C, H, W] batches of at most ``batch_size``."""
        return generated_batches(self.generate, self.num_fake, self.resolution, self.batch_size)

    def real_source(self) -> ImageSource:
        if self.real is None:
            raise MetricError(f"{self.metric} compares against real images; pass the dataset")
        return self.real

    def real_batches(self, replace_if_short: bool = False) -> Iterator[torch.Tensor]:
        """uint8 batches of ``num_real`` real images (a seeded subset; all of a smaller dataset, or with
        ``replace_if_short`` drawn with replacement up to ``num_real``), at ``resolution``."""
        real = self.real_source()
        indices = real_indices(len(real), self.num_real, seed=self.seed, replace_if_short=replace_if_short)
        return real_batches(real, indices, self.resolution, self.batch_size)

    def inception(self) -> InceptionFeatures:
        """torch-fidelity's Inception-v3 (the weights file from ``inception_weights``), built once per process."""
        return get_inception(self.inception_weights, self.device)

    def fake_features(self, layer: str = FID_LAYER) -> torch.Tensor:
        """Inception features of the generated images (``"2048"``: pool features; ``"logits_unbiased"``)."""
        features = extract_features(self.fakes(), self.inception(), total=self.num_fake,
                                    desc=f"scoring {self.metric} @{self.resolution}px", progress=self.progress)
        return features[layer]

    def reference_stats(self) -> ReferenceStats:
        """FID's reference: mu and sigma of the real images' pool features, cached (``dggan.metrics.refstats``)."""
        extractor = self.inception()
        return fid_reference(self.real_source(), self.resolution, self.num_real, extractor, extractor.key,
                             cache_dir=self.cache_dir, batch_size=self.batch_size, progress=self.progress)

    def reference_features(self) -> ReferenceFeatures:
        """The real images' pool features themselves (what KID compares), cached like the FID statistics."""
        extractor = self.inception()
        return reference_features(self.real_source(), self.resolution, self.num_real, extractor, extractor.key,
                                  cache_dir=self.cache_dir, batch_size=self.batch_size, progress=self.progress)
