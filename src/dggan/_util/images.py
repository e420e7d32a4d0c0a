"""Sample grids as PNG."""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from .files import atomic_write_bytes


def grid_image(images: torch.Tensor, nrow: int | None = None, upscale_to: int = 64) -> Image.Image:
    """Images in [-1, 1] (NCHW) -> one PIL grid; small images are enlarged (nearest) so they can be seen."""
    x = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5)
    if x.shape[-1] < upscale_to:
        x = torch.nn.functional.interpolate(x, scale_factor=upscale_to // x.shape[-1], mode="nearest")
    grid = make_grid(x, nrow=nrow or max(1, int(math.ceil(math.sqrt(len(x))))), padding=2, pad_value=255)
    array = grid.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    buf = io.BytesIO()
    grid_image(images, nrow).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
