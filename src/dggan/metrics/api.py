"""``evaluate``: the one entry point the search and the CLI use to score a generator."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..data.base import DatasetError, ImageSource, to_float
from ..model.genome import is_power_of_two
from .fid import (
    FID_LAYER,
    IS_LAYER,
    extract_features,
    fid_statistics,
    frechet_distance,
    get_inception,
    inception_score,
    to_uint8,
)
from .refstats import fid_reference, real_batches, real_indices
from .registry import MetricError, parse_metric
from .swd import compute_swd

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


def evaluate(metric: str, generate: Generate, real: ImageSource | None, resolution: int, *,
             cache_dir: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
             inception_weights: str | os.PathLike[str] | None = None, batch_size: int = 64, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Score ``generate`` with ``metric`` (e.g. "fid10k", "is50k", "swd16k", "swd1k") at ``resolution``.

    ``generate(n)`` returns n images, float in [-1, 1], NCHW at ``resolution`` (the caller decides the
    latents). It is called once per batch, so each call must return *new* images: ``evaluate_generator``
    does that for a generator network (latents from one ``LatentStream``); a function that re-seeds per call
    returns the same batch again and again, and the metric then scores far fewer distinct images.
    Real images are area-downsampled to ``resolution`` and both sides are quantised to uint8 the same way.
    FID reference statistics are cached under ``cache_dir`` (``None``: only in memory).
    ``seed`` drives SWD's patches and directions and its real subset.

    Returns at least ``{"metric", "value"}``; also kind, lower_is_better, resolution, num_fake, num_real,
    time_s and per-metric extras (FID: reference source; IS: is_std; SWD: swd_levels, swd_avg).
    Non-finite generator output raises ``MetricError`` (a diverged candidate).
    """
    spec = parse_metric(metric)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise MetricError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not is_power_of_two(resolution):
        raise MetricError(f"resolution must be a power of two, got {resolution}")
    if spec.kind != "is":
        if real is None:
            raise MetricError(f"{spec.name} compares against real images; pass the dataset")
        if real.resolution < resolution:
            raise DatasetError(f"{real.name}: stored at {real.resolution}px, cannot evaluate at"
                               f" {resolution}px; use data at the target resolution or larger")
        if len(real) < spec.num_real:
            warnings.warn(f"{spec.name}: {real.name} has {len(real)} images, fewer than the"
                          f" {spec.num_real} the metric asks for; "
                          + ("using all of them" if spec.kind == "fid" else "drawing with replacement"),
                          MetricWarning, stacklevel=2)
    start = time.perf_counter()
    result: dict[str, Any] = {"metric": spec.name, "kind": spec.kind, "lower_is_better": spec.lower_is_better,
                              "resolution": resolution, "num_fake": spec.num_fake}

    if spec.kind in ("fid", "is"):
        extractor = get_inception(inception_weights, device)
        reference = None
        if spec.kind == "fid":
            assert real is not None
            reference = fid_reference(real, resolution, spec.num_real, extractor, extractor.key,
                                      cache_dir=None if cache_dir is None else Path(cache_dir),
                                      batch_size=batch_size, progress=progress)
        fakes = generated_batches(generate, spec.num_fake, resolution, batch_size)
        features = extract_features(fakes, extractor, total=spec.num_fake, desc=f"scoring {spec.name} @{resolution}px",
                                    progress=progress)
        if reference is not None:
            mu, sigma = fid_statistics(features[FID_LAYER])
            result.update(value=frechet_distance(mu, sigma, reference.mu, reference.sigma),
                          num_real=reference.num_real, reference=reference.source,
                          reference_path=None if reference.path is None else str(reference.path))
        else:
            mean, std = inception_score(features[IS_LAYER])
            result.update(value=mean, is_std=std, num_real=0)
    else:
        assert real is not None
        indices = real_indices(len(real), spec.num_real, seed=seed, replace_if_short=True)
        # Generate once and keep uint8 (a quarter of float32): SWD walks the images once per level.
        fakes = list(generated_batches(generate, spec.num_fake, resolution, batch_size))
        swd = compute_swd(lambda: real_batches(real, indices, resolution, batch_size), lambda: iter(fakes),
                          spec.num_fake, resolution, seed=seed, device=device, progress=progress)
        result.update(value=swd["swd_avg"], num_real=min(len(real), spec.num_real), **swd)
    result["time_s"] = round(time.perf_counter() - start, 3)
    return result


def evaluate_generator(metric: str, net: torch.nn.Module, real: ImageSource | None, *, seed: int = 0,
                       latent_seed: int | None = None, batch_size: int = 64, **options: Any) -> dict[str, Any]:
    """``evaluate`` a generator network (one with a ``genome``) at its own resolution, its latents drawn from
    one ``LatentStream`` (seed ``latent_seed``, default ``seed``) across the batches the metric asks for, so
    every batch is new images. ``seed`` drives the metric itself; ``options`` go to ``evaluate``."""
    from ..model.sampling import LatentStream, generate

    genome = net.genome
    stream = LatentStream(genome.latent_size, seed if latent_seed is None else latent_seed)
    return evaluate(metric, lambda n: generate(net, stream.take(n), batch_size), real, genome.resolution,
                    seed=seed, batch_size=batch_size, **options)


def real_vs_real(metric: str, sample: ImageSource, real: ImageSource, resolution: int, *, seed: int = 0,
                 **options: Any) -> dict[str, Any]:
    """``metric`` of real images from ``sample``, scored as if generated, against ``real``: the floor, what a
    generator that reproduced ``sample``'s images exactly would score (e.g. training images against held-out
    ones). The generated side is a subset of ``sample`` as large as the metric asks, drawn with ``seed``;
    ``options`` go to ``evaluate``."""
    spec = parse_metric(metric)
    if len(sample) < spec.num_fake:
        raise MetricError(f"{spec.name} scores {spec.num_fake} generated images, but {sample.name} has"
                          f" {len(sample)}; use a metric of at most {len(sample)} images (e.g. swd{len(sample)})")
    images = to_float(sample.get(real_indices(len(sample), spec.num_fake, seed)), resolution)
    served = [0]

    def serve(n: int) -> torch.Tensor:
        served[0] += n
        return images[served[0] - n:served[0]]

    return evaluate(metric, serve, real, resolution, seed=seed, **options)
