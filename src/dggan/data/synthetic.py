"""Built-in synthetic images: coloured shapes on gradient backgrounds, deterministic by seed.

They have structure at several scales (a smooth background, large and small shapes, hard edges), so a
GAN visibly improves as it grows, and they need no download. The generator is vectorised over images,
so thousands of 32x32 images take well under a second.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..model.genome import is_power_of_two
from .base import ArraySource, DatasetError
from .kinds import register_dataset

MAX_BYTES = 4 * 2**30  # the uint8 images; drawing them needs float32 copies of that size


def synthetic_images(num_images: int, resolution: int, seed: int = 0, max_shapes: int = 3) -> np.ndarray:
    """uint8 ``[N, 3, R, R]`` images of circles, squares and triangles on gradient backgrounds."""
    if not is_power_of_two(resolution) or resolution < 4:
        raise DatasetError(f"synthetic: resolution must be a power of two >= 4, got {resolution}")
    if num_images < 1:
        raise DatasetError(f"synthetic: num_images must be >= 1, got {num_images}")
    size = num_images * 3 * resolution**2
    if size > MAX_BYTES:
        raise DatasetError(f"synthetic: {num_images:,} images of {resolution}px take {size / 2**30:.1f} GiB (made in"
                           f" memory, 4x that while drawn); at most {MAX_BYTES // 2**30} GiB: use fewer or smaller"
                           " images")
    rng = np.random.default_rng(seed)
    n, r = num_images, resolution
    coords = (np.arange(r, dtype=np.float32) + 0.5) / r
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # [R, R] in (0, 1)

    # Background: a linear gradient between two colours along a random direction.
    angle = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    t = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5  # [N, R, R]
    c0 = rng.uniform(0, 1, size=(n, 3, 1, 1)).astype(np.float32)
    c1 = rng.uniform(0, 1, size=(n, 3, 1, 1)).astype(np.float32)
    img = c0 + (c1 - c0) * np.clip(t, 0, 1)[:, None]

    for _ in range(max_shapes):
        present = rng.uniform(size=(n, 1, 1)) < 0.8
        kind = rng.integers(0, 3, size=(n, 1, 1))
        cx = rng.uniform(0.15, 0.85, size=(n, 1, 1))
        cy = rng.uniform(0.15, 0.85, size=(n, 1, 1))
        size = rng.uniform(0.08, 0.35, size=(n, 1, 1))
        colour = rng.uniform(0, 1, size=(n, 3, 1, 1)).astype(np.float32)
        dx, dy = xx - cx, yy - cy
        circle = dx**2 + dy**2 <= size**2
        square = (np.abs(dx) <= size * 0.85) & (np.abs(dy) <= size * 0.85)
        triangle = (dy <= size * 0.7) & (dy >= -size * 0.9 + 2 * np.abs(dx))
        mask = np.where(kind == 0, circle, np.where(kind == 1, square, triangle)) & present
        img = np.where(mask[:, None], colour, img)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


@register_dataset("synthetic", takes_path=False, example="synthetic:n=2048,res=32,seed=1")
class SyntheticShapes(ArraySource):
    """The built-in default dataset (``synthetic``)."""

    def __init__(self, num_images: int = 4096, resolution: int = 32, seed: int = 0):
        array = synthetic_images(num_images, resolution, seed)
        key = hashlib.sha256(f"synthetic-v1:{num_images}:{resolution}:{seed}".encode()).hexdigest()[:16]
        super().__init__(array, name=f"synthetic(n={num_images},res={resolution},seed={seed})", fingerprint=key)
