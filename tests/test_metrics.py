"""Metrics: registry, Frechet distance, FID/IS vs torch-fidelity, reference caching, SWD, normalisation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch
import torch.nn.functional as F
from fixtures.images import UInt8Images

from dggan.data import ArraySource, SyntheticShapes, to_float
from dggan.metrics import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    PROGGAN_FID_CIFAR10,
    PROGGAN_FID_LSUN_BEDROOM,
    CacheWarning,
    MetricError,
    MetricWarning,
    evaluate,
    frechet_distance,
    laplacian_pyramid,
    normalize,
    parse_metric,
    refstats,
    resolve_inception_weights,
    sample_patches,
    swd_resolutions,
    to_uint8,
)
from dggan.metrics.swd import compute_swd, finalize_descriptors, pyr_down, pyr_up

# ---------------------------------------------------------------------------------------------- registry


def test_metric_names_carry_budgets():
    fid = parse_metric("fid10k")
    assert (fid.kind, fid.num_fake, fid.num_real, fid.lower_is_better) == ("fid", 10_000, 10_000, True)
    assert parse_metric("fid50k").num_fake == 50_000
    is50k = parse_metric("IS50k")
    assert (is50k.name, is50k.kind, is50k.num_real, is50k.lower_is_better) == ("is50k", "is", 0, False)
    assert (parse_metric("swd16k").kind, parse_metric("swd16k").num_fake) == ("swd", 16_000)
    assert parse_metric("swd1k").num_fake == 1000 and parse_metric("swd512").num_fake == 512
    assert parse_metric("fid2k").num_real == 2000
    kid = parse_metric("kid10k")
    assert (kid.kind, kid.num_fake, kid.num_real, kid.lower_is_better, kid.needs_inception) == ("kid", 10_000, 10_000,
                                                                                                True, True)
    assert not parse_metric("swd1k").needs_inception and parse_metric("is50k").needs_inception
    for bad in ("xyz10k", "fid", "fid10m", "swd-1k", "fid1", "is5", "kid1"):
        with pytest.raises(MetricError):
            parse_metric(bad)


# ---------------------------------------------------------------------------------------------- FID maths


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_matches_scipy_formula():
    rng = np.random.default_rng(0)
    for d in (1, 4, 16):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    # Diagonal Gaussians have a closed form: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu = np.array([1.0, 0.0, 2.0])
    assert frechet_distance(mu, np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(5 + 1 + 0 + 4)
    assert frechet_distance(mu, np.diag(a), mu, np.diag(a)) == pytest.approx(0, abs=1e-9)
    with pytest.raises(MetricError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_to_uint8_inverts_to_float_and_rejects_nan():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.equal(to_uint8(to_float(x, 16)), x)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
    with pytest.raises(MetricError, match="non-finite"):
        to_uint8(torch.tensor([0.0, float("nan")]))


# ------------------------------------------------------------------------------------- Inception weights


def test_weights_lookup_never_downloads(tmp_path, monkeypatch):
    monkeypatch.delenv("DGGAN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MetricError) as info:
        resolve_inception_weights()
    message = str(info.value)
    assert INCEPTION_WEIGHTS_FILE in message and INCEPTION_WEIGHTS_URL in message
    assert "DGGAN_INCEPTION_WEIGHTS" in message and str(tmp_path / "hub" / "checkpoints") in message
    hub_file = tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(b"x")
    assert resolve_inception_weights() == hub_file
    env_file = tmp_path / "w.pth"
    env_file.write_bytes(b"x")
    monkeypatch.setenv("DGGAN_INCEPTION_WEIGHTS", str(env_file))
    assert resolve_inception_weights() == env_file
    assert resolve_inception_weights(hub_file) == hub_file  # the argument wins
    with pytest.raises(MetricError, match="does not exist"):
        resolve_inception_weights(tmp_path / "missing.pth")


class _NotATensor:
    pass


def test_weights_holding_objects_are_refused(tmp_path):
    from dggan.metrics.fid import InceptionFeatures

    path = tmp_path / "evil.pth"
    torch.save({"x": _NotATensor()}, path)
    with pytest.raises(MetricError, match="is not a torch file of Inception-v3 weights"):
        InceptionFeatures(path)


def _serve(images: torch.Tensor):
    """A ``generate`` that hands out ``images`` (float) in order."""
    pos = {"i": 0}

    def generate(k: int) -> torch.Tensor:
        pos["i"] += k
        return images[pos["i"] - k:pos["i"]]

    return generate


_EIGVALS = np.linalg.eigvals


def _low_rank_eigvals(m: np.ndarray) -> np.ndarray:
    """Eigenvalues of a matrix of rank < 16, via its range: the nonzero ones of Q^T M Q equal M's."""
    q, _ = np.linalg.qr(m @ np.random.default_rng(0).normal(size=(m.shape[0], 16)))
    return _EIGVALS(q.T @ m @ q)


def test_low_rank_eigvals_helper_is_exact():
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(3, 200)), rng.normal(size=(3, 200))
    product = np.cov(x1, rowvar=False) @ np.cov(x2, rowvar=False)

    def tr_sqrt(e):
        return np.sum(np.sqrt(e.astype("complex128")).real)

    # The full solver returns ~1e-11 noise for the 197 zero eigenvalues, whose square roots add ~1e-5.
    assert tr_sqrt(_low_rank_eigvals(product)) == pytest.approx(tr_sqrt(_EIGVALS(product)), rel=5e-6)


# Inception runs at 299x299 whatever the input size (~0.1-0.3 s per image on 2 cores), so these two
# tests use as few images as give non-trivial values: FID on 3 vs 3, IS on 11 (one split of two).
def test_fid_matches_torch_fidelity(random_inception, tmp_path, monkeypatch):
    from torch_fidelity import calculate_metrics

    # Both sides end in torch-fidelity's fid_statistics_to_metric, whose np.linalg.eigvals takes ~15 s on
    # the rank-2 2048x2048 product that 3 samples give; swap in an exact low-rank solver for both.
    monkeypatch.setattr(np.linalg, "eigvals", _low_rank_eigvals)
    refstats._MEMO.clear()
    fakes = torch.from_numpy(SyntheticShapes(3, 16, seed=1).array)
    real = SyntheticShapes(3, 32, seed=2)  # stored at 32, compared at 16
    ours = evaluate("fid3", _serve(to_float(fakes, 16)), real, 16, cache_dir=tmp_path,
                    inception_weights=random_inception, batch_size=3, progress=False)
    real_at_16 = to_uint8(to_float(real.array, 16))
    theirs = calculate_metrics(input1=UInt8Images(fakes), input2=UInt8Images(real_at_16), cuda=False, fid=True,
                               feature_extractor_weights_path=str(random_inception), batch_size=3,
                               save_cpu_ram=True, verbose=False, cache=False)
    assert ours["value"] > 1e-3  # the random network separates the two sets: the comparison means something
    assert ours["value"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-5)
    assert ours["num_real"] == 3 and ours["reference"] == "computed"


def test_is_matches_torch_fidelity(random_inception):
    from torch_fidelity import calculate_metrics

    fakes = torch.from_numpy(SyntheticShapes(11, 16, seed=1).array)
    ours = evaluate("is11", _serve(to_float(fakes, 16)), None, 16, inception_weights=random_inception,
                    batch_size=11, progress=False)
    theirs = calculate_metrics(input1=UInt8Images(fakes), cuda=False, isc=True, batch_size=11,
                               feature_extractor_weights_path=str(random_inception), save_cpu_ram=True,
                               verbose=False, cache=False)
    assert ours["value"] > 1.0 + 1e-6  # 1.0 would mean identical class distributions
    assert ours["value"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours["is_std"] == pytest.approx(theirs["inception_score_std"], rel=1e-5, abs=1e-9)


# ---------------------------------------------------------------------------------------------- caching


class _CountingExtractor:
    """Stands in for Inception: cheap deterministic features, and a count of images seen."""

    key = "fake-extractor-v1"

    def __init__(self):
        self.images_seen = 0
        self.proj = torch.randn(48, 10, generator=torch.Generator().manual_seed(0))

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.images_seen += len(images)
        pooled = F.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)  # [N, 48]
        return {"2048": pooled, "logits_unbiased": pooled @ self.proj}


@pytest.fixture
def counting_extractor(monkeypatch) -> _CountingExtractor:
    extractor = _CountingExtractor()
    monkeypatch.setattr("dggan.metrics.job.get_inception", lambda weights=None, device="cpu": extractor)
    refstats._MEMO.clear()
    yield extractor
    refstats._MEMO.clear()


def _generator_from(source: ArraySource, resolution: int):
    images = to_float(source.array, resolution)
    pos = {"i": 0}

    def generate(n: int) -> torch.Tensor:
        idx = torch.arange(pos["i"], pos["i"] + n) % len(images)
        pos["i"] += n
        return images[idx]

    return generate


def test_reference_statistics_are_cached_on_disk(counting_extractor, tmp_path):
    real = SyntheticShapes(64, 16, seed=0)
    fake = SyntheticShapes(64, 16, seed=1)
    first = evaluate("fid40", _generator_from(fake, 16), real, 16, cache_dir=tmp_path, progress=False)
    assert counting_extractor.images_seen == 80 and first["reference"] == "computed"
    files = list((tmp_path / "refstats").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and "16px-40" in files[0].name  # no temp files

    refstats._MEMO.clear()  # a new process: only the disk cache remains
    second = evaluate("fid40", _generator_from(fake, 16), real, 16, cache_dir=tmp_path, progress=False)
    assert counting_extractor.images_seen == 120  # only the 40 generated images were extracted
    assert second["reference"] == "disk" and second["value"] == pytest.approx(first["value"], rel=1e-9)

    third = evaluate("fid40", _generator_from(fake, 16), real, 16, cache_dir=None, progress=False)
    assert counting_extractor.images_seen == 160 and third["reference"] == "memory"
    # Statistics first computed without a cache folder still reach the disk when one is given later.
    evaluate("fid40", _generator_from(fake, 16), real, 16, cache_dir=tmp_path / "other", progress=False)
    assert counting_extractor.images_seen == 200 and len(list((tmp_path / "other" / "refstats").iterdir())) == 1

    # Another resolution or dataset is another key.
    evaluate("fid40", _generator_from(fake, 8), real, 8, cache_dir=tmp_path, progress=False)
    assert counting_extractor.images_seen == 280
    assert len(list((tmp_path / "refstats").iterdir())) == 2


def test_corrupt_cache_is_recomputed_with_a_warning(counting_extractor, tmp_path):
    real = SyntheticShapes(32, 16, seed=0)
    fake = SyntheticShapes(32, 16, seed=1)
    first = evaluate("fid20", _generator_from(fake, 16), real, 16, cache_dir=tmp_path, progress=False)
    (path,) = (tmp_path / "refstats").iterdir()
    path.write_bytes(path.read_bytes()[:100])
    refstats._MEMO.clear()
    with pytest.warns(CacheWarning, match="recomputing"):
        again = evaluate("fid20", _generator_from(fake, 16), real, 16, cache_dir=tmp_path, progress=False)
    assert again["reference"] == "computed" and again["value"] == pytest.approx(first["value"], rel=1e-9)
    refstats._MEMO.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten file is valid again
        assert evaluate("fid20", _generator_from(fake, 16), real, 16, cache_dir=tmp_path,
                        progress=False)["reference"] == "disk"


def test_fid_with_a_small_dataset_uses_all_of_it(counting_extractor, tmp_path):
    real = SyntheticShapes(16, 16, seed=0)
    with pytest.warns(MetricWarning, match="has 16 images, fewer than the 40"):
        out = evaluate("fid40", _generator_from(SyntheticShapes(40, 16, seed=1), 16), real, 16,
                       cache_dir=None, progress=False)
    assert out["num_real"] == 16 and out["num_fake"] == 40


def test_evaluate_checks_inputs(counting_extractor):
    real = SyntheticShapes(16, 16, seed=0)
    with pytest.raises(MetricError, match="must return a float tensor"):
        evaluate("fid8", lambda n: torch.zeros(n, 3, 8, 8), real, 16, progress=False)
    with pytest.raises(MetricError, match="non-finite"):
        evaluate("fid8", lambda n: torch.full((n, 3, 16, 16), float("nan")), real, 16, progress=False)
    with pytest.raises(ValueError, match="cannot evaluate at 32px"):
        evaluate("fid8", lambda n: torch.zeros(n, 3, 32, 32), real, 32, progress=False)
    with pytest.raises(MetricError, match="pass the dataset"):
        evaluate("swd8", lambda n: torch.zeros(n, 3, 16, 16), None, 16, progress=False)


# ---------------------------------------------------------------------------------------------- SWD


def _progan_pyramid(images: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """ProgGAN's metrics/sliced_wasserstein.py pyramid, transcribed with scipy."""
    g = np.float32([[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6], [4, 16, 24, 16, 4],
                    [1, 4, 6, 4, 1]]) / 256.0

    def down(x):
        return scipy.ndimage.convolve(x, g[None, None], mode="mirror")[:, :, ::2, ::2]

    def up(x):
        res = np.zeros((x.shape[0], x.shape[1], x.shape[2] * 2, x.shape[3] * 2), x.dtype)
        res[:, :, ::2, ::2] = x
        return scipy.ndimage.convolve(res, g[None, None] * 4.0, mode="mirror")

    pyramid = [np.float32(images)]
    for _ in range(1, num_levels):
        pyramid.append(down(pyramid[-1]))
        pyramid[-2] -= up(pyramid[-1])
    return pyramid


def test_pyramid_matches_proggan_scipy_code():
    images = SyntheticShapes(3, 32, seed=4).array
    ours = laplacian_pyramid(torch.from_numpy(images), 2)
    theirs = _progan_pyramid(images, 2)
    assert [tuple(x.shape) for x in ours] == [(3, 3, 32, 32), (3, 3, 16, 16)]
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-3)
    # The Laplacian pyramid reconstructs the image exactly.
    recon = ours[0] + pyr_up(ours[1])
    np.testing.assert_allclose(recon.numpy(), images.astype(np.float32), atol=1e-3)
    assert pyr_down(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 8, 8)


def test_swd_levels_per_resolution():
    assert swd_resolutions(8) == [8] and swd_resolutions(16) == [16]
    assert swd_resolutions(32) == [32, 16] and swd_resolutions(64) == [64, 32, 16]
    with pytest.raises(MetricError, match="at least 7x7"):
        swd_resolutions(4)
    for res in (8, 16, 32, 64):
        imgs = to_uint8(to_float(SyntheticShapes(4, res, seed=0).array, res))
        out = compute_swd(lambda imgs=imgs: iter([imgs]), lambda imgs=imgs: iter([imgs.flip(-1)]), 4, res,
                          progress=False)
        assert list(out["swd_levels"]) == [str(r) for r in swd_resolutions(res)]
        assert out["swd_avg"] == pytest.approx(np.mean(list(out["swd_levels"].values())))


def test_every_image_and_every_offset_contributes_patches():
    b, h = 8, 16
    # Each pixel encodes (image, row, column), so a patch's top-left value tells where it came from.
    img = torch.arange(b).view(b, 1, 1, 1) * 10_000
    level = (img + torch.arange(h).view(1, 1, h, 1) * 100 + torch.arange(h).view(1, 1, 1, h)).float()
    level = level.expand(b, 3, h, h)
    patches = sample_patches(level, 128, torch.Generator().manual_seed(0))
    assert patches.shape == (b * 128, 3, 7, 7)
    corner = patches[:, 0, 0, 0].long()
    images, ys, xs = corner // 10_000, corner % 10_000 // 100, corner % 100
    assert torch.equal(torch.bincount(images, minlength=b), torch.full((b,), 128))
    assert set(ys.tolist()) == set(range(h - 6)) and set(xs.tolist()) == set(range(h - 6))  # 0..H-7
    for i in (0, 100, 1023):  # patches are the true 7x7 windows
        assert torch.equal(patches[i], level[images[i], :, ys[i]:ys[i] + 7, xs[i]:xs[i] + 7])
    d = finalize_descriptors(patches)
    assert d.shape == (b * 128, 147)
    per_channel = d.view(-1, 3, 49)
    assert torch.allclose(per_channel.mean(dim=(0, 2)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(per_channel.std(dim=(0, 2), unbiased=False), torch.ones(3), atol=1e-4)


def test_swd_separates_distributions_and_is_seeded():
    res, n = 32, 128
    a = SyntheticShapes(n, res, seed=1)
    b = SyntheticShapes(n, res, seed=2)  # same distribution, different draw
    noise = ArraySource(np.random.default_rng(0).integers(0, 256, (n, 3, res, res), dtype=np.uint8))
    same = evaluate(f"swd{n}", _generator_from(b, res), a, res, progress=False)
    other = evaluate(f"swd{n}", _generator_from(noise, res), a, res, progress=False)
    assert same["num_real"] == n and list(same["swd_levels"]) == ["32", "16"]
    # The coarse (low-pass) level varies most between small samples, hence the looser per-level bound.
    assert other["swd_avg"] > 4 * same["swd_avg"]
    for level in ("32", "16"):
        assert other["swd_levels"][level] > 2 * same["swd_levels"][level]
    small_a, small_b = SyntheticShapes(32, 16, seed=1), SyntheticShapes(32, 16, seed=2)
    first = evaluate("swd32", _generator_from(small_b, 16), small_a, 16, progress=False)
    again = evaluate("swd32", _generator_from(small_b, 16), small_a, 16, progress=False)
    assert again["value"] == first["value"]
    reseeded = evaluate("swd32", _generator_from(small_b, 16), small_a, 16, seed=1, progress=False)
    assert reseeded["value"] != first["value"]


def test_swd_with_a_small_dataset_draws_with_replacement():
    real = SyntheticShapes(10, 16, seed=0)
    with pytest.warns(MetricWarning, match="drawing with replacement"):
        out = evaluate("swd30", _generator_from(SyntheticShapes(30, 16, seed=1), 16), real, 16,
                       progress=False)
    assert out["num_real"] == 10 and out["value"] > 0



def test_a_generate_that_repeats_its_batches_is_warned_about():
    """Re-seeding latents on every call (the easy mistake) scores the same batch over and over."""
    real = SyntheticShapes(64, 16, seed=0)
    pool = to_float(SyntheticShapes(64, 16, seed=1).array, 16)

    def reseeded(n: int) -> torch.Tensor:
        return pool[torch.randperm(64, generator=torch.Generator().manual_seed(7))[:n]]

    with pytest.warns(MetricWarning, match="same 16 images for its first two batches"):
        repeated = evaluate("swd64", reseeded, real, 16, batch_size=16, progress=False)
    order = iter(torch.randperm(64, generator=torch.Generator().manual_seed(7)).split(16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetricWarning)
        fresh = evaluate("swd64", lambda n: pool[next(order)[:n]], real, 16, batch_size=16, progress=False)
    assert repeated["value"] > fresh["value"]  # 16 distinct images, not 64: a worse (and wrong) score



def test_evaluate_generator_draws_new_latents_for_every_batch():
    from dggan import Generator, Genome, constant_channels
    from dggan.metrics import evaluate_generator
    from dggan.model.sampling import LatentStream, generate

    torch.manual_seed(0)
    net = Generator(Genome.base(latent_size=8, channels=constant_channels(16, 8), max_resolution=16)).eval()
    real = SyntheticShapes(64, 8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetricWarning)  # no repeated batch
        ours = evaluate_generator("swd64", net, real, seed=2, latent_seed=5, batch_size=16, progress=False)
    stream = LatentStream(8, 5)
    by_hand = evaluate("swd64", lambda n: generate(net, stream.take(n), 16), real, 8, seed=2, batch_size=16,
                       progress=False)
    assert ours["value"] == by_hand["value"] and ours["resolution"] == 8  # the net's own resolution
    same_seeds = evaluate_generator("swd64", net, real, seed=5, batch_size=16, progress=False)
    assert same_seeds["value"] != ours["value"]  # latent_seed defaults to seed


def test_real_vs_real_is_the_floor_a_perfect_generator_would_score():
    from dggan.metrics import real_vs_real

    train, held = SyntheticShapes(96, 16, seed=1), SyntheticShapes(64, 16, seed=2)  # one distribution, two draws
    noise = ArraySource(np.random.default_rng(0).integers(0, 256, (96, 3, 16, 16), dtype=np.uint8))
    floor = real_vs_real("swd64", train, held, 16, seed=3, progress=False)
    assert floor["num_fake"] == 64 and floor["value"] > 0
    assert real_vs_real("swd64", noise, held, 16, seed=3, progress=False)["value"] > 2 * floor["value"]
    # The same subset and directions as a generator serving those training images (seeded alike).
    again = real_vs_real("swd64", train, held, 16, seed=3, progress=False)
    assert again["value"] == floor["value"]
    with pytest.raises(MetricError, match=r"swd128 scores 128 generated images, but .* has 96.*swd96"):
        real_vs_real("swd128", train, held, 16)


# ---------------------------------------------------------------------------------------------- normalisation


def test_normalize_and_paper_baselines():
    assert dict(PROGGAN_FID_CIFAR10) == {8: 4.02, 16: 11.68, 32: 18.33}
    assert dict(PROGGAN_FID_LSUN_BEDROOM) == {8: 29.07, 16: 23.75, 32: 27.9, 64: 19.67, 128: 29.35,
                                              256: 10.76}
    assert normalize(12.10, 32, PROGGAN_FID_CIFAR10) == pytest.approx(12.10 / 18.33)
    assert normalize(10.76, 256, PROGGAN_FID_LSUN_BEDROOM) == pytest.approx(1.0)
    with pytest.raises(MetricError, match=r"no value at 64px.*\[8, 16, 32\]"):
        normalize(1.0, 64, PROGGAN_FID_CIFAR10)
