"""Metrics: FID and IS (torch-fidelity's Inception), SWD (ProgGAN's definition), normalised FID.

``evaluate(metric, generate, real, resolution, ...)`` is the entry point; metric names carry their
sample budget (``fid10k``, ``is50k``, ``swd16k``, ``swd1k``...).
"""

from .api import MetricWarning, evaluate, generated_batches
from .fid import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    WEIGHTS_ENV,
    InceptionFeatures,
    frechet_distance,
    get_inception,
    inception_score,
    resolve_inception_weights,
    to_uint8,
)
from .normalize import PROGGAN_FID_CIFAR10, PROGGAN_FID_LSUN_BEDROOM, normalize
from .refstats import CACHE_ENV, CacheWarning, default_cache_dir, fid_reference
from .registry import METRIC_KINDS, STANDARD_METRICS, MetricError, MetricSpec, parse_metric
from .swd import compute_swd, laplacian_pyramid, sample_patches, sliced_wasserstein, swd_resolutions

__all__ = ["CACHE_ENV", "INCEPTION_WEIGHTS_FILE", "INCEPTION_WEIGHTS_URL", "METRIC_KINDS",
           "PROGGAN_FID_CIFAR10", "PROGGAN_FID_LSUN_BEDROOM", "STANDARD_METRICS", "WEIGHTS_ENV",
           "CacheWarning", "InceptionFeatures", "MetricError", "MetricSpec", "MetricWarning", "compute_swd",
           "default_cache_dir", "evaluate", "fid_reference", "frechet_distance", "generated_batches",
           "get_inception",
           "inception_score", "laplacian_pyramid", "normalize", "parse_metric", "resolve_inception_weights",
           "sample_patches", "sliced_wasserstein", "swd_resolutions", "to_uint8"]
