"""FID and Inception Score through torch-fidelity's Inception-v3 (the TF-ported "inception-v3-compat").

We reuse torch-fidelity's feature extractor (which resizes uint8 images to 299x299 with its
TF1-compatible bilinear resize) and its statistics functions, so our numbers are the library's numbers;
what we add is feeding it our generators and datasets, offline weight lookup and on-disk reference stats.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch_fidelity
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from tqdm import tqdm

from ..errors import MetricError

EXTRACTOR_NAME = "inception-v3-compat"
FID_LAYER = "2048"
IS_LAYER = "logits_unbiased"
INCEPTION_WEIGHTS_FILE = URL_INCEPTION_V3.rsplit("/", 1)[-1]  # weights-inception-2015-12-05-6726825d.pth
INCEPTION_WEIGHTS_URL = URL_INCEPTION_V3
WEIGHTS_ENV = "DGGAN_INCEPTION_WEIGHTS"
# torch-fidelity's defaults for IS, kept so results match its calculate_metrics.
IS_SPLITS = 10
IS_SHUFFLE_SEED = 2020


def hub_weights_path() -> Path:
    """Where torch-fidelity's own download would have put the weights (torch hub's checkpoint cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def resolve_inception_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The weights file: ``path``, else $DGGAN_INCEPTION_WEIGHTS, else torch hub's cache; never downloads."""
    sources = ((path, "the inception_weights argument"), (os.environ.get(WEIGHTS_ENV), f"${WEIGHTS_ENV}"))
    for candidate, origin in sources:
        if candidate:
            p = Path(candidate).expanduser()
            if not p.is_file():
                raise MetricError(f"Inception weights file {p} (from {origin}) does not exist;"
                                  f" {weights_hint()}")
            return p
    hub = hub_weights_path()
    if hub.is_file():
        return hub
    raise MetricError(f"no Inception weights found; {weights_hint()}")


def weights_hint() -> str:
    return (f"FID, IS and KID need torch-fidelity's Inception-v3 weights file {INCEPTION_WEIGHTS_FILE}"
            f" (from {INCEPTION_WEIGHTS_URL}). dggan never downloads it: fetch it on a machine with internet"
            f" access, then pass --inception-weights PATH, or set {WEIGHTS_ENV}=PATH, or put it at"
            f" {hub_weights_path()}")


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so a 90 MB file is hashed once per process."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[memo_key] = digest.hexdigest()
    return _HASHES[memo_key]


class InceptionFeatures:
    """torch-fidelity's Inception-v3: uint8 NCHW images -> {"2048": pool features, "logits_unbiased": ...}."""

    layers = (FID_LAYER, IS_LAYER)

    def __init__(self, weights: Path, device: str | torch.device = "cpu"):
        # torch-fidelity loads with weights_only=False (arbitrary unpickling). Loading first with
        # weights_only=True rejects any file holding more than tensors, so the second load is safe.
        try:
            torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e:
            # torch's own message advises loading with weights_only=False (unpickling arbitrary code): not ours.
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            reason = first if "weights_only" not in first else "it holds more than tensors"
            raise MetricError(f"{weights} is not a torch file of Inception-v3 weights ({type(e).__name__}: {reason});"
                              f" {weights_hint()}") from None
        try:
            self.model = FeatureExtractorInceptionV3(EXTRACTOR_NAME, list(self.layers),
                                                     feature_extractor_weights_path=str(weights))
        except RuntimeError as e:  # wrong or missing keys/shapes
            raise MetricError(f"{weights} does not hold Inception-v3 weights ({e}); {weights_hint()}") from e
        self.device = torch.device(device)
        self.model.to(self.device)
        self.weights = weights
        self.key = f"torch-fidelity-{torch_fidelity.__version__}/{EXTRACTOR_NAME}/{file_sha256(weights)[:16]}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise MetricError(f"Inception expects uint8 [N, C, H, W] images, got {images.dtype}"
                              f" {tuple(images.shape)}")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)  # greyscale: the same plane in R, G and B
        features = self.model(images.to(self.device))
        return {name: f.cpu() for name, f in zip(self.layers, features, strict=True)}


_EXTRACTORS: dict[tuple[str, str], InceptionFeatures] = {}


def get_inception(weights: str | os.PathLike[str] | None = None,
                  device: str | torch.device = "cpu") -> InceptionFeatures:
    """The extractor for these weights and device, built once per process (a search evaluates often)."""
    path = resolve_inception_weights(weights)
    memo_key = (str(path.resolve()), str(torch.device(device)))
    if memo_key not in _EXTRACTORS:
        _EXTRACTORS.clear()  # keep at most one 90 MB network alive
        _EXTRACTORS[memo_key] = InceptionFeatures(path, device)
    return _EXTRACTORS[memo_key]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 [0, 255], rounded and clipped as ProgGAN saves its samples.

    Exactly inverts ``data.to_float`` on uint8 input, so real and generated images are quantised alike.
    """
    if not torch.isfinite(images).all():
        raise MetricError("the generator produced non-finite values (NaN/inf); the candidate has diverged")
    return (images.float() * 127.5 + 127.5).round_().clamp_(0, 255).to(torch.uint8)


Extractor = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def extract_features(batches: Iterator[torch.Tensor], extractor: Extractor, total: int, desc: str,
                     progress: bool = True) -> dict[str, torch.Tensor]:
    """Concatenated features of all uint8 batches, with an optional tqdm bar."""
    parts: dict[str, list[torch.Tensor]] = {}
    with tqdm(total=total, desc=desc, unit="img", disable=None if progress else True, leave=False) as bar:
        for batch in batches:
            for name, f in extractor(batch).items():
                parts.setdefault(name, []).append(f)
            bar.update(len(batch))
    return {name: torch.cat(fs) for name, fs in parts.items()}


def fid_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of pool features, computed by torch-fidelity (float32 mean, float64 covariance)."""
    stats = fid_features_to_statistics(features.float().cpu())
    return stats["mu"], stats["sigma"]


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), via torch-fidelity (eigenvalues of S1 S2)."""
    mu1, mu2, sigma1, sigma2 = (np.asarray(a) for a in (mu1, mu2, sigma1, sigma2))
    if mu1.dtype != mu2.dtype or sigma1.dtype != sigma2.dtype:
        mu1, mu2, sigma1, sigma2 = (a.astype(np.float64) for a in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise MetricError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs"
                          f" {sigma2.shape}")
    return float(fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2},
                                          verbose=False)["frechet_inception_distance"])


def inception_score(logits: torch.Tensor, splits: int = IS_SPLITS) -> tuple[float, float]:
    """(mean, std) over ``splits`` chunks, shuffled with torch-fidelity's default seed."""
    out = isc_features_to_metric(logits.cpu(), splits=splits, shuffle=True, rng_seed=IS_SHUFFLE_SEED)
    return out["inception_score_mean"], out["inception_score_std"]
