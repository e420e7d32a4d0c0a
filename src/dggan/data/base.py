"""The dataset interface: a source of uint8 images, and a seeded sampler that serves batches at any resolution.

Every source (synthetic, CIFAR-10, LSUN, folders, arrays) stores images once, as uint8 NCHW at its own
resolution, and the sampler area-downsamples to whatever resolution a candidate trains at. Keeping the
pixels as uint8 until the batch is drawn keeps memory at a quarter of float32 and lets one copy of the
data serve every resolution of a search.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError
from ..model.genome import is_power_of_two


class ImageSource:
    """Images as uint8 ``[N, C, H, W]`` at a stored square resolution."""

    name: str = "images"
    spec: str | None = None  # the dataset spec it was opened from (``open_dataset`` sets it)

    @property
    def resolution(self) -> int:
        raise NotImplementedError

    @property
    def channels(self) -> int:
        return 3

    def __len__(self) -> int:
        raise NotImplementedError

    def get(self, indices: np.ndarray) -> np.ndarray:
        """uint8 array ``[len(indices), C, H, W]`` for the given indices."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Identifies the content (for reference-statistics cache keys); override when cheaper to derive."""
        raise NotImplementedError


class ArraySource(ImageSource):
    """An in-memory (or memory-mapped) uint8 NCHW array."""

    def __init__(self, array: np.ndarray, name: str = "array", fingerprint: str | None = None):
        if array.ndim != 4 or array.dtype != np.uint8:
            raise DatasetError(f"{name}: expected a uint8 array [N, C, H, W], got {array.dtype} {array.shape}")
        n, c, h, w = array.shape
        if h != w or not is_power_of_two(h):
            raise DatasetError(f"{name}: images must be square with a power-of-two side, got {h}x{w}")
        if c not in (1, 3):
            raise DatasetError(f"{name}: images must have 1 or 3 channels, got {c}")
        if n == 0:
            raise DatasetError(f"{name}: the dataset is empty")
        self.array = array
        self.name = name
        self._fingerprint = fingerprint

    @property
    def resolution(self) -> int:
        return int(self.array.shape[2])

    @property
    def channels(self) -> int:
        return int(self.array.shape[1])

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def get(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.array[indices])

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update(str(self.array.shape).encode())
            # Hash a strided subset: enough to tell datasets apart without reading terabytes.
            step = max(1, len(self) // 1024)
            digest.update(np.ascontiguousarray(self.array[::step]).tobytes())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint


def to_float(images: torch.Tensor | np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 NCHW -> float32 in [-1, 1], area-downsampled to ``resolution``."""
    x = torch.as_tensor(images)
    stored = x.shape[-1]
    if resolution > stored or stored % resolution != 0 or not is_power_of_two(resolution):
        raise DatasetError(f"cannot serve {resolution}px images from data stored at {stored}px;"
                           f" the data must be at least as large as the target resolution")
    x = x.float().div_(127.5).sub_(1.0)
    if resolution != stored:
        x = F.avg_pool2d(x, stored // resolution)
    return x


class BatchSampler:
    """Draws random batches (with replacement across epochs, without within one) from a source.

    All randomness comes from one ``torch.Generator`` whose state is part of ``state_dict`` so a
    resumed training run sees the very same batches.
    """

    def __init__(self, source: ImageSource, resolution: int, batch_size: int, seed: int = 0,
                 flip: bool = False, device: str | torch.device = "cpu"):
        if resolution > source.resolution:
            raise DatasetError(f"{source.name}: stored at {source.resolution}px, cannot serve {resolution}px;"
                               " use data at the target resolution or larger")
        if batch_size > len(source):
            raise DatasetError(f"{source.name}: has {len(source)} images, fewer than one batch of {batch_size}")
        self.source = source
        self.resolution = resolution
        self.batch_size = batch_size
        self.flip = flip
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next(self) -> torch.Tensor:
        return self.draw().to(self.device, non_blocking=True)

    def draw(self) -> torch.Tensor:
        """The next batch on the CPU (float32 in [-1, 1]); ``next`` moves it to the sampler's device."""
        if self._pos + self.batch_size > len(self._perm):
            self._perm = torch.randperm(len(self.source), generator=self.generator)
            self._pos = 0
        idx = self._perm[self._pos:self._pos + self.batch_size].numpy()
        self._pos += self.batch_size
        x = to_float(self.source.get(idx), self.resolution)
        if self.flip:
            mask = torch.rand(len(x), generator=self.generator) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        return x

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self._perm.clone(),
                "pos": torch.tensor(self._pos)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._perm = state["perm"].clone()
        self._pos = int(state["pos"])
