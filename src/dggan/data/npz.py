"""uint8 image arrays from .npy (memory-mapped) or .npz (loaded) files, NCHW or NHWC.

This is also the fast format that ``export_lsun`` writes: a .npy memmap costs no decoding per step.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from .base import ArraySource, DatasetError
from .kinds import register_dataset

CONVERT_HINT = "save images as uint8 (e.g. np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)), NCHW or NHWC"


def to_nchw(array: np.ndarray, where: str) -> np.ndarray:
    """A view of ``array`` as [N, C, H, W]; accepts NCHW, NHWC and greyscale NHW."""
    if array.dtype != np.uint8:
        raise DatasetError(f"{where}: images must be uint8, got {array.dtype}; {CONVERT_HINT}")
    if array.ndim == 3:
        return array[:, None]
    if array.ndim != 4:
        raise DatasetError(f"{where}: expected a 4-d image array, got shape {array.shape}; {CONVERT_HINT}")
    _, a, b, c = array.shape
    if a in (1, 3) and b == c:
        return array
    if c in (1, 3) and a == b:
        return array.transpose(0, 3, 1, 2)
    raise DatasetError(f"{where}: cannot tell the layout of shape {array.shape}: expected square images as"
                       " [N, C, H, W] or [N, H, W, C] with C = 1 or 3")


def load_image_array(path: str | os.PathLike[str]) -> np.ndarray:
    """The images in a .npy (memory-mapped, read-only) or .npz (key ``images`` or its only array)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DatasetError(f"npz: {p} is a folder; pass a .npy or .npz file of uint8 images (a folder of image files"
                           " is folder:PATH)")
    if not p.is_file():
        raise DatasetError(f"npz: {p} does not exist; pass a .npy or .npz file of uint8 images")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if "images" in keys:
                    key = "images"
                elif len(keys) == 1:
                    key = keys[0]
                else:
                    raise DatasetError(f"npz: {p} holds arrays {keys}; name the image array 'images'")
                array = npz[key]
        else:
            array = np.load(p, mmap_mode="r", allow_pickle=False)
    except DatasetError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "Python objects" in str(e):  # an object array, not pixels
            raise DatasetError(f"npz: {p} holds Python objects (an object-dtype array), not uint8 pixels;"
                               f" {CONVERT_HINT}") from None
        raise DatasetError(f"npz: {p} is truncated or not a numpy file (ValueError: {e}); re-create it"
                           " (export_lsun writes .npy files atomically)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"npz: {p} is truncated or not a numpy file ({type(e).__name__}: {e});"
                           " re-create it (export_lsun writes .npy files atomically)") from e
    if not isinstance(array, np.ndarray):
        raise DatasetError(f"npz: {p} does not hold an array")
    return to_nchw(array, str(p))


def _fingerprint(array: np.ndarray) -> str:
    # A memmap may be many GB: hash the shape and 64 evenly spaced images, not the whole file.
    digest = hashlib.sha256(b"npz-v1:" + str(array.shape).encode())
    step = max(1, len(array) // 64)
    digest.update(np.ascontiguousarray(array[::step]).tobytes())
    return digest.hexdigest()[:16]


@register_dataset("npz", takes_path=True, example="npz:/path/to/data", aliases=("npy",))
class NpySource(ArraySource):
    """Images from a .npy or .npz file (see ``load_image_array``)."""

    def __init__(self, path: str | os.PathLike[str]):
        array = load_image_array(path)
        self.path = Path(path)
        try:
            super().__init__(array, name=f"npz({self.path.name})", fingerprint=_fingerprint(array))
        except DatasetError as e:
            raise DatasetError(f"{self.path}: {e}") from e
