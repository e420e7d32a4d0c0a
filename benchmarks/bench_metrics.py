"""Metric throughput on CPU: SWD (ProgGAN's definition) and Inception feature extraction for FID/IS.

Inception uses random weights built from torch-fidelity's architecture (no download needed); the
speed is the same as with the real weights. Also times the Frechet distance on 2048-d statistics.

Usage: python benchmarks/bench_metrics.py [--fid-images 128] [--swd-images 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from dggan.data import SyntheticShapes, to_float
from dggan.metrics import evaluate, frechet_distance, get_inception, to_uint8


def random_inception(path: Path) -> Path:
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None):
        model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(model.state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fid-images", type=int, default=128)
    parser.add_argument("--swd-images", type=int, default=1000)
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| what | images | seconds | images/s |")
    print("|---|---|---|---|")

    for res in (16, 32, 64):
        n = args.swd_images
        real = SyntheticShapes(n, res, seed=0)
        fake = to_float(SyntheticShapes(n, res, seed=1).array, res)
        start = time.perf_counter()
        out = evaluate(f"swd{n}", lambda k, fake=fake: fake[:k], real, res, progress=False)
        s = time.perf_counter() - start
        print(f"| SWD @{res}px ({len(out['swd_levels'])} levels), real + generated | {2 * n} | {s:.2f} |"
              f" {2 * n / s:,.0f} |")

    with tempfile.TemporaryDirectory() as tmp:
        extractor = get_inception(random_inception(Path(tmp) / "random.pth"))
        images = to_uint8(to_float(SyntheticShapes(args.fid_images, 32, seed=0).array, 32))
        for batch in (16, 64):
            extractor(images[:batch])  # warm-up
            start = time.perf_counter()
            with torch.no_grad():
                for i in range(0, len(images), batch):
                    extractor(images[i:i + batch])
            s = time.perf_counter() - start
            print(f"| Inception-v3 features (32px -> 299px), batch {batch} | {len(images)} | {s:.2f} |"
                  f" {len(images) / s:,.1f} |")

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4096, 2048)), rng.normal(size=(4096, 2048)) + 0.1
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    start = time.perf_counter()
    frechet_distance(mu1, s1, mu2, s2)
    print(f"| Frechet distance, 2048-d (eigvals of S1 S2) | - | {time.perf_counter() - start:.2f} | - |")


if __name__ == "__main__":
    main()
