"""Data-loading throughput: images/s that ``BatchSampler`` serves.

- 32x32 from a CIFAR-like in-memory uint8 array (what ``cifar10:`` gives);
- 256x256 from an exported uint8 .npy memmap (what ``export_lsun`` writes), served at 256 and at 64;
- for contrast, decoding JPEGs straight from an LMDB (``lsun:``), and the one-off ``export_lsun`` rate.

Usage: python benchmarks/bench_loader.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import io
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dggan.data import ArraySource, BatchSampler, ImageSource, export_lsun, open_dataset, synthetic_images


def rate(source: ImageSource, resolution: int, batch: int, seconds: float) -> float:
    sampler = BatchSampler(source, resolution, batch, seed=0)
    sampler.next()  # warm-up (first permutation, page cache)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += len(sampler.next())
    return n / (time.perf_counter() - start)


def synthetic_npy(path: Path, count: int, resolution: int) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, 3, resolution, resolution))
    for start in range(0, count, 64):  # chunks keep the float intermediates small
        out[start:start + 64] = synthetic_images(min(64, count - start), resolution, seed=start)
    out.flush()


def jpeg_lmdb(path: Path, count: int, resolution: int) -> None:
    import lmdb

    env = lmdb.open(str(path), map_size=1 << 30)
    images = synthetic_images(count, resolution, seed=1)
    with env.begin(write=True) as txn:
        for i, img in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(img.transpose(1, 2, 0)).save(buf, format="JPEG", quality=90)
            txn.put(f"{i:08d}".encode(), buf.getvalue())
    env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--npy-images", type=int, default=2048, help="images in the 256px memmap")
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__},"
          f" {torch.get_num_threads()} threads")
    print("| source | served at | batch | images/s |")
    print("|---|---|---|---|")
    cifar_like = ArraySource(np.random.default_rng(0).integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8),
                             name="cifar-like")
    for batch in (16, 64):
        print(f"| in-memory uint8 50k x 32px | 32 | {batch} | {rate(cifar_like, 32, batch, args.seconds):,.0f} |")
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "synthetic256.npy"
        synthetic_npy(npy, args.npy_images, 256)
        mm = open_dataset(f"npz:{npy}")
        for res in (256, 64):
            for batch in (16, 64):
                print(f"| .npy memmap {args.npy_images} x 256px (page cache warm) | {res} | {batch} |"
                      f" {rate(mm, res, batch, args.seconds):,.0f} |")
        try:
            jpeg_lmdb(Path(tmp) / "lmdb", 512, 256)
        except ImportError:
            print("(lmdb not installed: skipping the LMDB rows)")
            return
        lsun = open_dataset(f"lsun:{Path(tmp) / 'lmdb'}", progress=False)
        print(f"| LMDB of JPEGs, decoded per batch (lsun:) | 256 | 16 | {rate(lsun, 256, 16, args.seconds):,.0f} |")
        start = time.perf_counter()
        export_lsun(Path(tmp) / "lmdb", Path(tmp) / "exported.npy", progress=False)
        print(f"| export_lsun, 512 JPEGs -> .npy (one-off) | 256 | - |"
              f" {512 / (time.perf_counter() - start):,.0f} |")


if __name__ == "__main__":
    main()
