"""Reference statistics of real data (Inception mu, sigma; or the features themselves), computed once and cached.

A search evaluates hundreds of candidates against the same real data at a handful of resolutions, so
the real side of FID is computed once per (dataset content, resolution, sample count, extractor and
weights) and stored as an .npz under ``<cache_dir>/refstats``; a process-level memo avoids even
re-reading it. KID compares features, not their moments, so its real side is the pool features themselves
(float32, 8 KiB an image: 80 MB for kid10k), cached the same way under a key of their own
(``reference_features``). SWD's real side is not cached: see ``swd.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._util.files import atomic_write_bytes
from ..data.base import ImageSource, to_float
from .fid import FID_LAYER, extract_features, fid_statistics, to_uint8

CACHE_ENV = "DGGAN_CACHE"
CACHE_FORMAT = 1
# Real subsets are drawn with a fixed seed so every evaluation (whatever its own seed) shares them.
REFERENCE_SEED = 0
_MEMO: OrderedDict[str, tuple[np.ndarray, np.ndarray, int]] = OrderedDict()
_MEMO_SIZE = 4
_FEATURES_MEMO: OrderedDict[str, torch.Tensor] = OrderedDict()
_FEATURES_MEMO_SIZE = 2  # (features are large: 80 MB for 10k images)


class CacheWarning(UserWarning):
    """A cache file was unreadable or stale and has been recomputed."""


def default_cache_dir() -> Path:
    """$DGGAN_CACHE, else ~/.cache/dggan."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dggan"


def real_indices(num_available: int, num_wanted: int, seed: int = REFERENCE_SEED,
                 replace_if_short: bool = False) -> np.ndarray:
    """Sorted indices of a seeded subset (all indices when the dataset is not larger than asked).

    With ``replace_if_short`` a smaller dataset is sampled with replacement up to ``num_wanted`` (SWD
    needs equal descriptor counts on both sides).
    """
    rng = np.random.default_rng(seed)
    if num_wanted < num_available:
        return np.sort(rng.choice(num_available, size=num_wanted, replace=False))
    if replace_if_short and num_wanted > num_available:
        return np.sort(rng.choice(num_available, size=num_wanted, replace=True))
    return np.arange(num_available)


def real_batches(source: ImageSource, indices: np.ndarray, resolution: int,
                 batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 batches of real images, area-downsampled to ``resolution`` then re-quantised like fakes."""
    for start in range(0, len(indices), batch_size):
        yield to_uint8(to_float(source.get(indices[start:start + batch_size]), resolution))


@dataclass
class ReferenceStats:
    mu: np.ndarray
    sigma: np.ndarray
    num_real: int
    key: str
    path: Path | None
    source: str  # "computed", "disk" or "memory"


def reference_key(source: ImageSource, resolution: int, num_wanted: int, num_used: int,
                  extractor_key: str, what: str = "fid") -> str:
    """The hash of everything a reference depends on; ``what``: "fid" (mu, sigma) or "features"."""
    fields = {"format": CACHE_FORMAT, "dataset": source.fingerprint(),
              "split": getattr(source, "split", None), "resolution": resolution, "num_wanted": num_wanted,
              "num_used": num_used,
              "selection_seed": REFERENCE_SEED, "extractor": extractor_key, "layer": FID_LAYER}
    if what != "fid":  # (FID's keys stay those its cache files were written under)
        fields["what"] = what
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def cache_path(cache_dir: Path, source: ImageSource, resolution: int, num_used: int, key: str,
               what: str = "fid") -> Path:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.name).strip("_")[:60]
    return Path(cache_dir) / "refstats" / f"{what}-{readable}-{resolution}px-{num_used}-{key}.npz"


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz atomically (temp file + rename), so readers never see half a file."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_cached(path: Path, key: str) -> tuple[np.ndarray, np.ndarray, int] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            mu, sigma, stored_key, num = f["mu"], f["sigma"], str(f["key"]), int(f["num_real"])
        d = mu.shape[0] if mu.ndim == 1 else -1
        finite = np.isfinite(mu).all() and np.isfinite(sigma).all()
        if stored_key != key or sigma.shape != (d, d) or not finite:
            raise ValueError("content does not match its key or is not finite")
        return mu, sigma, num
    except Exception as e:  # any unreadable file is recomputed, never fatal
        warnings.warn(f"reference statistics {path} are unreadable ({type(e).__name__}: {e}); recomputing",
                      CacheWarning, stacklevel=3)
        return None


def _save(path: Path, mu: np.ndarray, sigma: np.ndarray, key: str, num: int) -> None:
    save_npz_atomic(path, mu=mu, sigma=sigma, key=np.array(key), num_real=np.array(num))


def fid_reference(source: ImageSource, resolution: int, num_wanted: int,
                  extractor: Callable[[torch.Tensor], dict[str, torch.Tensor]], extractor_key: str, *,
                  cache_dir: Path | None, batch_size: int = 64, progress: bool = True) -> ReferenceStats:
    """mu, sigma of Inception pool features of ``num_wanted`` real images (all if fewer) at ``resolution``."""
    indices = real_indices(len(source), num_wanted)
    key = reference_key(source, resolution, num_wanted, len(indices), extractor_key)
    path = None if cache_dir is None else cache_path(Path(cache_dir), source, resolution, len(indices), key)
    if key in _MEMO:
        _MEMO.move_to_end(key)
        mu, sigma, num = _MEMO[key]
        if path is not None and not path.is_file():  # computed earlier without a cache folder
            _save(path, mu, sigma, key, num)
        return ReferenceStats(mu, sigma, num, key, path, "memory")
    cached = _load_cached(path, key) if path is not None else None
    origin = "disk"
    if cached is None:
        batches = real_batches(source, indices, resolution, batch_size)
        features = extract_features(batches, extractor, total=len(indices),
                                    desc=f"real {source.name} @{resolution}px", progress=progress)
        mu, sigma = fid_statistics(features[FID_LAYER])
        cached, origin = (mu, sigma, len(indices)), "computed"
        if path is not None:
            _save(path, mu, sigma, key, len(indices))
    _MEMO[key] = cached
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return ReferenceStats(cached[0], cached[1], cached[2], key, path, origin)


@dataclass
class ReferenceFeatures:
    features: torch.Tensor  # [num_real, 2048] float32 pool features, in the order of ``real_indices``
    key: str
    path: Path | None
    source: str  # "computed", "disk" or "memory"

    @property
    def num_real(self) -> int:
        return len(self.features)


def _load_cached_features(path: Path, key: str, num: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            features, stored_key = f["features"], str(f["key"])
        if stored_key != key or features.shape[0] != num or features.ndim != 2 or not np.isfinite(features).all():
            raise ValueError("content does not match its key or is not finite")
        return torch.from_numpy(features)
    except Exception as e:  # any unreadable file is recomputed, never fatal
        warnings.warn(f"reference features {path} are unreadable ({type(e).__name__}: {e}); recomputing",
                      CacheWarning, stacklevel=3)
        return None


def reference_features(source: ImageSource, resolution: int, num_wanted: int,
                       extractor: Callable[[torch.Tensor], dict[str, torch.Tensor]], extractor_key: str, *,
                       cache_dir: Path | None, batch_size: int = 64, progress: bool = True) -> ReferenceFeatures:
    """Inception pool features of ``num_wanted`` real images (all if fewer; the subset FID uses) at
    ``resolution``, cached by the hash of their inputs as ``fid_reference``'s statistics are."""
    indices = real_indices(len(source), num_wanted)
    key = reference_key(source, resolution, num_wanted, len(indices), extractor_key, what="features")
    path = None if cache_dir is None else cache_path(Path(cache_dir), source, resolution, len(indices), key,
                                                     what="features")
    if key in _FEATURES_MEMO:
        _FEATURES_MEMO.move_to_end(key)
        features = _FEATURES_MEMO[key]
        if path is not None and not path.is_file():  # computed earlier without a cache folder
            save_npz_atomic(path, features=features.numpy(), key=np.array(key))
        return ReferenceFeatures(features, key, path, "memory")
    features = _load_cached_features(path, key, len(indices)) if path is not None else None
    origin = "disk"
    if features is None:
        batches = real_batches(source, indices, resolution, batch_size)
        features = extract_features(batches, extractor, total=len(indices),
                                    desc=f"real {source.name} @{resolution}px", progress=progress)[FID_LAYER]
        features, origin = features.float().cpu().contiguous(), "computed"
        if path is not None:
            save_npz_atomic(path, features=features.numpy(), key=np.array(key))
    _FEATURES_MEMO[key] = features
    while len(_FEATURES_MEMO) > _FEATURES_MEMO_SIZE:
        _FEATURES_MEMO.popitem(last=False)
    return ReferenceFeatures(features, key, path, origin)
