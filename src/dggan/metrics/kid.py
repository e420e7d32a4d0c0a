"""KID, the Kernel Inception Distance (Binkowski et al. 2018), through torch-fidelity.

The unbiased MMD^2 between Inception pool features of generated and real images under the cubic polynomial
kernel (x.y / 2048 + 1)^3, averaged over ``KID_SUBSETS`` random subsets of ``subset_size`` images on each side:
torch-fidelity's ``kid_features_to_metric`` with its defaults, so our numbers are the library's. Unlike FID it
is unbiased in the sample count, so small budgets (kid1k) rank like large ones. The subset size is
torch-fidelity's 1000, or all the images a smaller budget or dataset has.
"""

from __future__ import annotations

import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from ..errors import MetricError

KID_SUBSETS = 100  # torch-fidelity's defaults, kept so results match its calculate_metrics
KID_SUBSET_SIZE = 1000
KID_SEED = 2020


def kid_subset_size(num_fake: int, num_real: int) -> int:
    """torch-fidelity's subset size, or the smaller side's count when that is below it."""
    return min(KID_SUBSET_SIZE, num_fake, num_real)


def kernel_inception_distance(fake: torch.Tensor, real: torch.Tensor, subsets: int = KID_SUBSETS,
                              subset_size: int | None = None) -> tuple[float, float]:
    """(mean, std) of KID over ``subsets`` subsets, from [N, D] features (generated first, as torch-fidelity's
    input1, so its random subsets are drawn alike)."""
    size = kid_subset_size(len(fake), len(real)) if subset_size is None else subset_size
    if size < 2:
        raise MetricError(f"KID needs at least 2 images on each side, got {len(fake)} generated and {len(real)} real")
    out = kid_features_to_metric(fake.float().cpu(), real.float().cpu(), kid_subsets=subsets,
                                 kid_subset_size=size, rng_seed=KID_SEED, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])
