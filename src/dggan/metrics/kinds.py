"""How the built-in metric kinds are computed from a ``MetricJob`` (declared in ``dggan.metrics.registry``)."""

from __future__ import annotations

from typing import Any

from .fid import IS_LAYER, fid_statistics, frechet_distance
from .fid import inception_score as _inception_score
from .job import MetricJob
from .kid import kernel_inception_distance, kid_subset_size
from .swd import compute_swd


def fid(job: MetricJob) -> dict[str, Any]:
    reference = job.reference_stats()
    mu, sigma = fid_statistics(job.fake_features())
    return {"value": frechet_distance(mu, sigma, reference.mu, reference.sigma), "num_real": reference.num_real,
            "reference": reference.source, "reference_path": None if reference.path is None else str(reference.path)}


def inception_score(job: MetricJob) -> dict[str, Any]:
    mean, std = _inception_score(job.fake_features(IS_LAYER))
    return {"value": mean, "is_std": std, "num_real": 0}


def swd(job: MetricJob) -> dict[str, Any]:
    # Generate once and keep uint8 (a quarter of float32): SWD walks the images once per level.
    fakes = list(job.fakes())
    real = job.real_source()
    result = compute_swd(lambda: job.real_batches(replace_if_short=True), lambda: iter(fakes), job.num_fake,
                         job.resolution, seed=job.seed, device=job.device, progress=job.progress)
    return {"value": result["swd_avg"], "num_real": min(len(real), job.num_real), **result}


def kid(job: MetricJob) -> dict[str, Any]:
    reference = job.reference_features()
    fake = job.fake_features()
    mean, std = kernel_inception_distance(fake, reference.features)
    return {"value": mean, "kid_std": std, "kid_subset_size": kid_subset_size(len(fake), reference.num_real),
            "num_real": reference.num_real, "reference": reference.source,
            "reference_path": None if reference.path is None else str(reference.path)}
