"""scikit-learn's handwritten digits: 1,797 real 8x8 greyscale images that ship with the package, so a
search can run on real images with no download (``pip install 'dggan[digits]'``).

Pixels (0..16) are scaled to uint8 and the images upsampled (bilinear) to the stored resolution (16 by
default); the sampler's area downsampling serves them back at 8 px. A seeded split keeps a held-out part
for judging a model on images it never trained on: ``digits`` (train, 80%), ``digits:split=test`` (20%),
``digits:split=all``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from ..model.genome import is_power_of_two
from .base import ArraySource, DatasetError
from .kinds import register_dataset

SPLITS = ("train", "test", "all")
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load_digits_uint8() -> np.ndarray:
    """All 1,797 digits as uint8 [N, 1, 8, 8]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError("the digits dataset comes with scikit-learn, which is not installed:"
                           " pip install 'dggan[digits]' (or pip install scikit-learn)") from None
    images = load_digits().images  # float 0..16, [N, 8, 8]
    return np.clip(np.rint(images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]


@register_dataset("digits", takes_path=False, example="digits:res=16")
class Digits(ArraySource):
    """The handwritten digits at ``resolution`` (8, 16, 32...), one channel, a seeded train/test split."""

    def __init__(self, resolution: int = 16, split: str = "train"):
        if split not in SPLITS:
            raise DatasetError(f"digits: unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if not is_power_of_two(resolution) or resolution < 8:
            raise DatasetError(f"digits: resolution must be a power of two >= 8, got {resolution}")
        images = load_digits_uint8()
        order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
        n_test = int(round(TEST_FRACTION * len(images)))
        keep = {"train": order[n_test:], "test": order[:n_test], "all": order}[split]
        images = images[np.sort(keep)]
        if resolution > 8:
            up = F.interpolate(torch.from_numpy(images).float(), size=(resolution, resolution), mode="bilinear",
                               align_corners=False)
            images = up.round().clamp(0, 255).to(torch.uint8).numpy()
        self.split = split
        key = hashlib.sha256(b"digits-v1:" + split.encode() + images.tobytes()).hexdigest()[:16]
        super().__init__(np.ascontiguousarray(images), name=f"digits({split},res={resolution})", fingerprint=key)
