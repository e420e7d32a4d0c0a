"""The checks every command runs on its own flags, shared so that ``eval``, ``sample``, ``train``, ``ref`` and
``search`` accept and refuse the same values with the same one-line error. Torch-free (each check runs before
the 10-30 s torch start-up) and raising ``ConfigError`` (exit status 2) naming the flag and the fix.
"""

from __future__ import annotations

from pathlib import Path

from .._util.settings import check_device_name
from ..errors import ConfigError
from ..metrics.registry import metric_spec

SEED_MAX = 2**32 - 1  # seeds are 32-bit everywhere (the search's seed setting too)
# Sample grids: a grid beyond 16,384 images (128 x 128) is no picture; the memory check below bounds the rest.
MAX_SAMPLES = 16_384
MAX_GRID_BYTES = 2 * 2**30  # the float grid before it becomes a PNG/JPEG
# What `sample --out` can write, by suffix (Pillow's format names).
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                 ".tiff": "TIFF"}


def device(value: str, flag: str = "--device", allow_auto: bool = False) -> str:
    """cpu, cuda or cuda:N (and auto where the command picks one): anything else is refused here, never passed to
    torch (whose error is a traceback)."""
    return check_device_name(value, flag, allow_auto)


def seed(value: int, flag: str = "--seed") -> int:
    return bounded(value, flag, 0, SEED_MAX)


def bounded(value: int | float, flag: str, low: float, high: float) -> int | float:
    if value < low:
        raise ConfigError(f"{flag} must be >= {low:,}, got {value:,}")
    if value > high:
        raise ConfigError(f"{flag} must be <= {high:,}, got {value:,}")
    return value


def resolution(value: int, flag: str = "--resolution", low: int = 4) -> int:
    """A power of two in [low, 65,536] (what a genome's scales and the datasets hold)."""
    bounded(value, flag, low, 2**16)
    if value & (value - 1):
        raise ConfigError(f"{flag} must be a power of two, got {value}")
    return value


def choice(value: str, flag: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{flag} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def metric(value: str, flag: str = "--metric") -> object:
    """The metric's spec (``parse_metric``), its sample count bounded."""
    return metric_spec(value, flag)


def sample_count(n: int, flag: str = "--n") -> int:
    return int(bounded(n, flag, 1, MAX_SAMPLES))


def grid_fits(n: int, resolution: int, channels: int, flag: str = "--n") -> None:
    """A grid of ``n`` images (small ones enlarged to 64 px to be seen) fits in memory, checked before sampling."""
    side = max(resolution, 64) + 2
    size = n * channels * side * side * 4
    if size > MAX_GRID_BYTES:
        most = max(1, MAX_GRID_BYTES // (channels * side * side * 4))
        raise ConfigError(f"{flag} {n:,} images of {resolution}px make a {size / 2**30:.1f} GiB grid; at most"
                          f" {most:,} at this resolution")


def image_out(path: Path, flag: str = "--out") -> str:
    """The Pillow format ``path``'s suffix names; a folder, an unknown suffix or a folder that cannot be made or
    written is refused, naming ``path``."""
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; name the image file, e.g. {flag} {path / 'grid.png'}")
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{flag} {path}: unknown image type {path.suffix or '(no suffix)'!r}; end the name with"
                          f" one of {', '.join(IMAGE_FORMATS)}")
    writable_folder(path.parent, flag, path)
    return fmt


def writable_folder(folder: Path, flag: str, named: Path | None = None) -> None:
    """``folder`` exists or can be made (its nearest existing parent is a folder), and can be written."""
    from ..runs import unwritable

    problem = unwritable(folder)
    if problem:
        raise ConfigError(f"{flag} {named if named is not None else folder}: {problem}; choose a writable path")
