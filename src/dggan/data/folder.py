"""A directory tree of PNG/JPEG (also BMP/WebP) images, decoded once into memory.

Resolution: the caller's power of two, or by default the smallest image side found, rounded down to a
power of two, so that no image is ever upsampled unless the caller asks for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..model.genome import is_power_of_two
from .base import ArraySource, DatasetError
from .imaging import DECODE_ERRORS, IMAGE_EXTENSIONS, crop_resize, floor_power_of_two, warn
from .kinds import register_dataset


def _list_files(root: Path) -> tuple[list[Path], int]:
    images, others = [], 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith("."):
                continue  # .DS_Store and friends
            if name.lower().endswith(IMAGE_EXTENSIONS):
                images.append(Path(dirpath) / name)
            else:
                others += 1
    return images, others


@register_dataset("folder", takes_path=True, example="folder:/path/to/data")
class FolderSource(ArraySource):
    """All images under ``path`` (recursive, sorted by path), RGB, square, at ``resolution``."""

    def __init__(self, path: str | os.PathLike[str], resolution: int | None = None, progress: bool = True):
        root = Path(path).expanduser()
        if not root.is_dir():
            raise DatasetError(f"folder: {root} is not a directory; pass a folder of PNG/JPEG images")
        if resolution is not None and (not is_power_of_two(resolution) or resolution < 4):
            raise DatasetError(f"folder: resolution must be a power of two >= 4, got {resolution}")
        files, others = _list_files(root)
        if others:
            warn(f"folder {root}: ignored {others} file(s) without an image extension {IMAGE_EXTENSIONS}")
        if not files:
            raise DatasetError(f"folder: no images with extensions {IMAGE_EXTENSIONS} under {root}")

        bad: list[Path] = []
        if resolution is None:
            # Read only the headers to find the smallest side.
            sides = []
            for f in files:
                try:
                    with Image.open(f) as img:
                        sides.append(min(img.size))
                except DECODE_ERRORS:
                    sides.append(None)
            good_sides = [s for s in sides if s is not None]
            if not good_sides:
                raise DatasetError(f"folder: none of the {len(files)} image files under {root}"
                                   " can be decoded")
            resolution = floor_power_of_two(min(good_sides))
            if resolution < 4:
                raise DatasetError(f"folder: the smallest image under {root} has a {min(good_sides)}px side;"
                                   " pass resolution=... to resize everything to a larger power of two")

        array = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)
        count, upscaled = 0, 0
        for f in tqdm(files, desc=f"decoding {root.name}", unit="img", disable=not progress, leave=False):
            try:
                with Image.open(f) as img:
                    img.load()
                    upscaled += min(img.size) < resolution
                    array[count] = crop_resize(img, resolution)
            except DECODE_ERRORS:
                bad.append(f)
                continue
            count += 1
        if count == 0:
            raise DatasetError(f"folder: none of the {len(files)} image files under {root} can be decoded")
        if bad:
            warn(f"folder {root}: skipped {len(bad)} of {len(files)} image files that cannot be decoded"
                 f" (first: {bad[0]})")
        if upscaled:
            warn(f"folder {root}: {upscaled} image(s) are smaller than {resolution}px and were upscaled")
        self.path = root
        skipped = set(bad)
        self.files = [f for f in files if f not in skipped]
        array = array if count == len(files) else array[:count].copy()
        super().__init__(array, name=f"folder({root.name},res={resolution})")
