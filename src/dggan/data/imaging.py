"""Decoding and square-cropping of encoded images, shared by the folder and LSUN sources.

We follow ProgGAN's dataset_tool.py (create_lsun / create_from_images): centre-crop the largest square,
then resize that square to the target side with a Lanczos filter (PIL's ANTIALIAS). For images whose
shorter side is already the target (LSUN is stored with a 256-pixel shorter side) this is exactly a
centre crop, and for others it equals "resize the shorter side, then centre-crop" up to rounding.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class DatasetWarning(UserWarning):
    """Some entries of a dataset were skipped or altered; the message states how many and why."""


def warn(message: str) -> None:
    warnings.warn(message, DatasetWarning, stacklevel=3)


def decode(data: bytes) -> Image.Image:
    """Fully decode encoded bytes (raises one of ``DECODE_ERRORS`` on garbage or truncation)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def crop_resize(img: Image.Image, resolution: int) -> np.ndarray:
    """uint8 ``[3, R, R]``: RGB, centre-cropped to a square, Lanczos-resized to ``resolution``."""
    img = img.convert("RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def floor_power_of_two(n: int) -> int:
    return 1 << (int(n).bit_length() - 1) if n >= 1 else 0
