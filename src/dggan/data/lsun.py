"""LSUN scenes (e.g. ``bedroom_train_lmdb``) read from their LMDB of encoded images.

Images are prepared as ProgGAN's dataset_tool.py does (see ``imaging.crop_resize``): centre-crop the
largest square, Lanczos-resize to 256. Decoding a JPEG per image per step is slow, so ``export_lsun``
converts (part of) the LMDB once into a uint8 .npy that the ``npz`` source memory-maps.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..model.genome import is_power_of_two
from .base import DatasetError, ImageSource
from .imaging import DECODE_ERRORS, crop_resize, decode, warn
from .kinds import register_dataset

INSTALL_HINT = "reading LSUN needs the 'lmdb' package: pip install 'dggan[lsun]'"


def _lmdb() -> Any:
    try:
        import lmdb
    except ImportError as e:
        raise DatasetError(f"lsun: {INSTALL_HINT}") from e
    return lmdb


_ENVS: dict[str, Any] = {}


def open_lmdb(path: str | os.PathLike[str]) -> Any:
    """A read-only LMDB environment (a folder holding data.mdb, or the data.mdb file itself).

    LMDB refuses to open one environment twice in a process, so environments are shared per path.
    """
    lmdb = _lmdb()
    p = Path(path).expanduser()
    if str(p.resolve()) in _ENVS:
        return _ENVS[str(p.resolve())]
    if not p.exists():
        raise DatasetError(f"lsun: {p} does not exist; download e.g. bedroom_train_lmdb.zip from the LSUN"
                           " site and unzip it, then pass the unzipped folder")
    try:
        env = lmdb.open(str(p), readonly=True, lock=False, readahead=False, subdir=p.is_dir(),
                        max_readers=64)
    except lmdb.Error as e:
        raise DatasetError(f"lsun: {p} is not a readable LMDB ({e}); pass the folder that holds"
                           " data.mdb") from e
    _ENVS[str(p.resolve())] = env
    return env


def _check_resolution(resolution: int) -> None:
    if not is_power_of_two(resolution) or resolution < 4:
        raise DatasetError(f"lsun: resolution must be a power of two >= 4, got {resolution}")


@register_dataset("lsun", takes_path=True, example="lsun:/path/to/data")
class LSUNSource(ImageSource):
    """Decodes LMDB entries on demand (no preprocessing, slow per step; prefer ``export_lsun``).

    Keys are listed once at open. An entry that does not decode is replaced by the next entry that
    does (so batches keep their size and runs stay deterministic), with one warning per bad key.
    """

    def __init__(self, path: str | os.PathLike[str], resolution: int = 256, max_images: int | None = None,
                 progress: bool = True):
        _check_resolution(resolution)
        self.path = Path(path).expanduser()
        self.env = open_lmdb(self.path)
        self._resolution = resolution
        entries = self.env.stat()["entries"]
        if max_images is not None and max_images > entries:
            raise DatasetError(f"lsun: {self.path} has {entries} entries, fewer than max_images={max_images};"
                               " lower max_images or leave it unset to use all")
        limit = entries if max_images is None else max_images
        keys = []
        with self.env.begin() as txn, tqdm(total=limit, desc="listing LMDB keys", unit="key",
                                           disable=not progress, leave=False) as bar:
            for key in txn.cursor().iternext(keys=True, values=False):
                keys.append(bytes(key))
                bar.update()
                if len(keys) == limit:
                    break
        if not keys:
            raise DatasetError(f"lsun: {self.path} is an empty LMDB")
        self.keys = np.array(keys, dtype=object)
        self._bad: set[bytes] = set()
        self.name = f"lsun({self.path.name},res={resolution})"
        self._fingerprint: str | None = None

    @property
    def resolution(self) -> int:
        return self._resolution

    def __len__(self) -> int:
        return len(self.keys)

    def _decode_at(self, txn: Any, index: int) -> np.ndarray:
        for offset in range(len(self.keys)):
            key = self.keys[(index + offset) % len(self.keys)]
            if key in self._bad:
                continue
            value = txn.get(key)
            try:
                return crop_resize(decode(bytes(value)), self._resolution)
            except (*DECODE_ERRORS, TypeError):
                self._bad.add(key)
                warn(f"lsun {self.path}: entry {key!r} is not a decodable image, using the next entry instead"
                     f" ({len(self._bad)} bad entries so far); export_lsun skips such entries")
        raise DatasetError(f"lsun: no entry of {self.path} decodes as an image")

    def get(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), 3, self._resolution, self._resolution), dtype=np.uint8)
        with self.env.begin() as txn:
            for i, index in enumerate(np.asarray(indices).tolist()):
                out[i] = self._decode_at(txn, int(index))
        return out

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.sha256(f"lsun-v1:{len(self)}:{self._resolution}".encode())
            with self.env.begin() as txn:
                for i in np.linspace(0, len(self) - 1, num=min(16, len(self))).astype(int):
                    digest.update(self.keys[i])
                    digest.update(bytes(txn.get(self.keys[i]) or b""))
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint


def export_lsun(lmdb_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                max_images: int | None = None, resolution: int = 256, progress: bool = True) -> Path:
    """Decode up to ``max_images`` LMDB entries into a uint8 ``[N, 3, R, R]`` .npy, written atomically.

    Undecodable entries are skipped and counted (one warning with the count). Open the result with
    ``open_dataset("npz:OUT.npy")``.
    """
    _check_resolution(resolution)
    out = Path(out_path).expanduser()
    if out.suffix != ".npy":
        raise DatasetError(f"export_lsun: the output must be a .npy file, got {out}")
    env = open_lmdb(lmdb_path)
    entries = env.stat()["entries"]
    if max_images is not None and max_images > entries:
        raise DatasetError(f"export_lsun: {lmdb_path} has {entries} entries, fewer than"
                           f" max_images={max_images}; lower max_images or leave it unset to export all")
    target = entries if max_images is None else max_images
    if target < 1:
        raise DatasetError(f"export_lsun: nothing to export from {lmdb_path} (max_images={max_images})")
    out.parent.mkdir(parents=True, exist_ok=True)
    shape = (target, 3, resolution, resolution)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.npy")
    tmp2 = out.with_name(f".{out.name}.{os.getpid()}.trim.npy")
    count, bad, first_bad = 0, 0, None
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        with env.begin() as txn, tqdm(total=target, desc=f"exporting {Path(lmdb_path).name}", unit="img",
                                      disable=not progress) as bar:
            for key, value in txn.cursor():
                try:
                    array[count] = crop_resize(decode(bytes(value)), resolution)
                except DECODE_ERRORS:
                    bad += 1
                    first_bad = first_bad or bytes(key)
                    continue
                count += 1
                bar.update()
                if count == target:
                    break
        if count == 0:
            raise DatasetError(f"export_lsun: none of the entries of {lmdb_path} decodes as an image")
        if count < target:
            # Bad entries left the tail empty: copy the filled part into a right-sized file.
            trimmed = np.lib.format.open_memmap(tmp2, mode="w+", dtype=np.uint8, shape=(count, *shape[1:]))
            for start in range(0, count, 1024):
                stop = min(start + 1024, count)
                trimmed[start:stop] = array[start:stop]
            trimmed.flush()
            del array, trimmed
            os.replace(tmp2, tmp)
        else:
            array.flush()
            del array
        os.replace(tmp, out)
    finally:
        for leftover in (tmp, tmp2):
            leftover.unlink(missing_ok=True)
    if bad:
        warn(f"export_lsun: skipped {bad} undecodable entr{'y' if bad == 1 else 'ies'} of {lmdb_path}"
             f" (first key {first_bad!r}); wrote {count} images" + (f", fewer than the {target} asked"
                                                                      if count < target else ""))
    return out
