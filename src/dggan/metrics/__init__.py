"""Metrics: FID, IS and KID (torch-fidelity's Inception), SWD (ProgGAN's definition), normalised FID.

``evaluate(metric, generate, real, resolution, ...)`` is the entry point; metric names carry their
sample budget (``fid10k``, ``is50k``, ``swd16k``, ``kid10k``, ``swd1k``...). Each kind is registered by name
(``register_metric``, see ``registry``). Names load on first use, so reading a metric name (``parse_metric``)
does not import torch.
"""

from __future__ import annotations

from .._util.lazy import lazy_getattr

_EXPORTS: dict[str, str] = {
    "CACHE_ENV": "refstats",
    "CacheWarning": "refstats",
    "INCEPTION_WEIGHTS_FILE": "fid",
    "INCEPTION_WEIGHTS_URL": "fid",
    "InceptionFeatures": "fid",
    "MetricError": "registry",
    "MetricJob": "job",
    "MetricKind": "registry",
    "MetricSpec": "registry",
    "MetricWarning": "api",
    "PROGGAN_FID_CIFAR10": "paper",
    "PROGGAN_FID_LSUN_BEDROOM": "paper",
    "STANDARD_METRICS": "registry",
    "WEIGHTS_ENV": "fid",
    "compute_swd": "swd",
    "default_cache_dir": "refstats",
    "evaluate": "api",
    "evaluate_generator": "api",
    "fid_reference": "refstats",
    "frechet_distance": "fid",
    "generated_batches": "api",
    "get_inception": "fid",
    "inception_score": "fid",
    "kernel_inception_distance": "kid",
    "laplacian_pyramid": "swd",
    "metric_kinds": "registry",
    "normalize": "paper",
    "parse_metric": "registry",
    "real_vs_real": "api",
    "reference_features": "refstats",
    "register_metric": "registry",
    "resolve_inception_weights": "fid",
    "sample_patches": "swd",
    "sliced_wasserstein": "swd",
    "swd_resolutions": "swd",
    "to_uint8": "fid",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
