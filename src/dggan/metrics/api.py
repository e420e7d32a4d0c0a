"""``evaluate``: the one entry point the search and the CLI use to score a generator (any registered kind)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from ..data.base import DatasetError, ImageSource, to_float
from ..model.genome import is_power_of_two
from .job import Generate, MetricJob, MetricWarning, generated_batches
from .refstats import real_indices
from .registry import MetricError, metric_kind, parse_metric

__all__ = ["Generate", "MetricWarning", "evaluate", "evaluate_generator", "generated_batches", "real_vs_real"]


def evaluate(metric: str, generate: Generate, real: ImageSource | None, resolution: int, *,
             cache_dir: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
             inception_weights: str | os.PathLike[str] | None = None, batch_size: int = 64, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Score ``generate`` with ``metric`` (e.g. "fid10k", "is50k", "swd16k", "kid10k", "swd1k") at ``resolution``.

    ``generate(n)`` returns n images, float in [-1, 1], NCHW at ``resolution`` (the caller decides the
    latents). It is called once per batch, so each call must return *new* images: ``evaluate_generator``
    does that for a generator network (latents from one ``LatentStream``); a function that re-seeds per call
    returns the same batch again and again, and the metric then scores far fewer distinct images.
    Real images are area-downsampled to ``resolution`` and both sides are quantised to uint8 the same way.
    FID's reference statistics and KID's reference features are cached under ``cache_dir`` (``None``: only in
    memory). ``seed`` drives SWD's patches and directions and its real subset.

    The metric's kind (``dggan.metrics.registry``) computes it. Returns at least ``{"metric", "value"}``; also
    kind, lower_is_better, resolution, num_fake, num_real, time_s and per-kind extras (FID: reference source;
    IS: is_std; SWD: swd_levels, swd_avg; KID: kid_std, kid_subset_size). Non-finite generator output raises
    ``MetricError`` (a diverged candidate).
    """
    spec = parse_metric(metric)
    kind = metric_kind(spec.kind)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise MetricError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not is_power_of_two(resolution):
        raise MetricError(f"resolution must be a power of two, got {resolution}")
    if spec.real != "none":
        if real is None:
            raise MetricError(f"{spec.name} compares against real images; pass the dataset")
        if real.resolution < resolution:
            raise DatasetError(f"{real.name}: stored at {real.resolution}px, cannot evaluate at"
                               f" {resolution}px; use data at the target resolution or larger")
        if len(real) < spec.num_real:
            warnings.warn(f"{spec.name}: {real.name} has {len(real)} images, fewer than the"
                          f" {spec.num_real} the metric asks for; "
                          + ("using all of them" if spec.real == "subset" else "drawing with replacement"),
                          MetricWarning, stacklevel=2)
    start = time.perf_counter()
    result: dict[str, Any] = {"metric": spec.name, "kind": spec.kind, "lower_is_better": spec.lower_is_better,
                              "resolution": resolution, "num_fake": spec.num_fake}
    job = MetricJob(metric=spec.name, num_fake=spec.num_fake, num_real=spec.num_real, generate=generate,
                    real=None if spec.real == "none" else real, resolution=resolution, batch_size=batch_size,
                    seed=seed, device=torch.device(device), cache_dir=None if cache_dir is None else Path(cache_dir),
                    inception_weights=inception_weights, progress=progress)
    computed = kind.compute(job)
    value = computed.get("value") if isinstance(computed, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"metric kind {spec.kind!r} must return a dict with a number as 'value', got {computed!r}")
    result.update(computed)
    result["value"] = float(value)
    result.setdefault("num_real", 0 if real is None or spec.real == "none" else min(spec.num_real, len(real)))
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
