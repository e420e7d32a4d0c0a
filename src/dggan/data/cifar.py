"""CIFAR-10 from the standard "python version" download, as a folder or straight from the .tar.gz.

The batches are pickles. We unpickle them with an allow-list that admits only numpy's array
reconstruction, so a tampered download can never run code.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from .base import ArraySource, DatasetError
from .kinds import register_dataset

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
FOLDER_NAME = "cifar-10-batches-py"
DOWNLOAD_HINT = ("get the 'CIFAR-10 python version' archive (cifar-10-python.tar.gz) from"
                 " https://www.cs.toronto.edu/~kriz/cifar.html and pass the .tar.gz or its extracted"
                 f" '{FOLDER_NAME}' folder")


def _numpy_attr(modules: tuple[str, ...], name: str) -> Any:
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


# (module, name) -> object. Both numpy 1.x ("numpy.core") and 2.x ("numpy._core") spellings appear in
# pickles; we resolve them ourselves rather than importing whatever the pickle names.
_RECONSTRUCT = _numpy_attr(("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct")
_FROMBUFFER = _numpy_attr(("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer")
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes at pickle protocol 2 as _codecs.encode(str, "latin1"): plain data.
    ("_codecs", "encode"): codecs.encode,
}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: CIFAR batches hold only"
                                         " numpy arrays, lists and bytes")
        return obj


def load_pickle_data_only(f: IO[bytes]) -> Any:
    """``pickle.load(f, encoding="bytes")`` restricted to numpy arrays and builtin containers."""
    return _DataOnlyUnpickler(f, encoding="bytes").load()


def _parse_batch(obj: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise DatasetError(f"{where}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels');"
                           f" {DOWNLOAD_HINT}")
    data, labels = obj[b"data"], np.asarray(obj[b"labels"], dtype=np.int64)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise DatasetError(f"{where}: b'data' must be uint8 [N, 3072], got {shape}; {DOWNLOAD_HINT}")
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"{where}: {data.shape[0]} images but {labels.shape[0]} labels; the file is"
                           f" corrupt, {DOWNLOAD_HINT}")
    # Rows are 1024 red, then green, then blue values, each a row-major 32x32 plane.
    return data.reshape(-1, 3, 32, 32), labels


def _read_batch(f: IO[bytes], where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        obj = load_pickle_data_only(f)
    except pickle.UnpicklingError as e:
        raise DatasetError(f"{where}: cannot read the pickle ({e}); {DOWNLOAD_HINT}") from e
    except (EOFError, ValueError, TypeError, OSError, zlib.error, tarfile.TarError) as e:
        raise DatasetError(f"{where}: truncated or corrupt ({type(e).__name__}: {e}); {DOWNLOAD_HINT}") from e
    return _parse_batch(obj, where)


def _batches_for(split: str) -> tuple[str, ...]:
    if split == "train":
        return TRAIN_BATCHES
    if split == "test":
        return TEST_BATCHES
    raise DatasetError(f"cifar10: unknown split {split!r}; use 'train' (data_batch_1..5)"
                       " or 'test' (test_batch)")


def _read_folder(folder: Path, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    if not (folder / names[0]).exists() and (folder / FOLDER_NAME).is_dir():
        folder = folder / FOLDER_NAME  # the user passed the folder that contains the extracted archive
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DatasetError(f"cifar10: {folder} lacks {', '.join(missing)}; point at the extracted"
                           f" '{FOLDER_NAME}' folder or the .tar.gz; {DOWNLOAD_HINT}")
    out = []
    for n in names:
        with open(folder / n, "rb") as f:
            out.append(_read_batch(f, str(folder / n)))
    return out


def _read_tar(path: Path, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in names if n not in members]
            if missing:
                raise DatasetError(f"cifar10: archive {path} lacks {', '.join(missing)}; {DOWNLOAD_HINT}")
            out = []
            for n in names:
                f = tar.extractfile(members[n])
                assert f is not None  # regular files always have a stream
                # Read the member fully first so a truncated archive fails here with a clear message.
                out.append(_read_batch(io.BytesIO(f.read()), f"{path}:{members[n].name}"))
            return out
    except DatasetError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DatasetError(f"cifar10: {path} is not a readable tar archive ({type(e).__name__}: {e});"
                           f" the download may be truncated; {DOWNLOAD_HINT}") from e


def load_cifar10(path: str | os.PathLike[str], split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 3, 32, 32], labels int64 [N]) from the folder or the .tar.gz."""
    p = Path(path).expanduser()
    names = _batches_for(split)
    if not p.exists():
        raise DatasetError(f"cifar10: {p} does not exist; {DOWNLOAD_HINT}")
    parts = _read_folder(p, names) if p.is_dir() else _read_tar(p, names)
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


@register_dataset("cifar10", takes_path=True, example="cifar10:/path/to/data")
class CIFAR10(ArraySource):
    """CIFAR-10 (50k training images by default, ``split="test"`` for the 10k test images), 32x32."""

    def __init__(self, path: str | os.PathLike[str], split: str = "train"):
        images, labels = load_cifar10(path, split)
        self.labels = labels
        self.split = split
        self.path = Path(path)
        # Content hash of all pixels (150 MB, ~0.1 s): the same images give the same key wherever they live.
        key = hashlib.sha256(b"cifar10-v1:" + split.encode() + images.tobytes()).hexdigest()[:16]
        super().__init__(images, name=f"cifar10({split})", fingerprint=key)
