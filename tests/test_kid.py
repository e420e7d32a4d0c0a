"""The metric registry's kinds and KID (``kid<N>[k]``): torch-fidelity's own KID on the same images and weights,
its subset size on small budgets, its cached reference features, and KID in a search and in ``dggan eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fixtures.images import UInt8Images
from typer.testing import CliRunner

from dggan.cli import app
from dggan.data import SyntheticShapes, to_float
from dggan.errors import ConfigError, SearchError
from dggan.metrics import MetricWarning, evaluate, metric_kinds, parse_metric, refstats, to_uint8
from dggan.search.config import SearchConfig
from dggan.search.preflight import check_metric


def _serve(images: torch.Tensor):  # type: ignore[no-untyped-def]
    """A ``generate`` that hands out ``images`` (float) in order."""
    pos = {"i": 0}

    def generate(k: int) -> torch.Tensor:
        pos["i"] += k
        return images[pos["i"] - k:pos["i"]]

    return generate


def test_the_kinds_say_what_they_need() -> None:
    kinds = metric_kinds()
    assert {"fid", "is", "swd", "kid"} <= set(kinds)
    needs = {name: (k.lower_is_better, k.needs_inception, k.real) for name, k in kinds.items()}
    assert needs["fid"] == (True, True, "subset") and needs["kid"] == (True, True, "subset")
    assert needs["is"] == (False, True, "none") and needs["swd"] == (True, False, "resample")
    assert parse_metric("KID1k").name == "kid1k" and parse_metric("is50k").num_real == 0


# Inception runs at 299x299 whatever the input size (~0.1-0.3 s per image on 2 cores): as few images as give
# a non-trivial value. Five generated against four real (stored at 32, compared at 16): the subset size adapts
# to the smaller side, 4.
def test_kid_matches_torch_fidelity(random_inception: Path, tmp_path: Path) -> None:
    from torch_fidelity import calculate_metrics

    refstats._FEATURES_MEMO.clear()
    fakes = torch.from_numpy(SyntheticShapes(5, 16, seed=1).array)
    real = SyntheticShapes(4, 32, seed=2)
    with pytest.warns(MetricWarning, match="has 4 images, fewer than the 5 .* using all of them"):
        ours = evaluate("kid5", _serve(to_float(fakes, 16)), real, 16, cache_dir=tmp_path,
                        inception_weights=random_inception, batch_size=5, progress=False)
    theirs = calculate_metrics(input1=UInt8Images(fakes), input2=UInt8Images(to_uint8(to_float(real.array, 16))),
                               cuda=False, kid=True, kid_subset_size=4, batch_size=5, save_cpu_ram=True,
                               feature_extractor_weights_path=str(random_inception), verbose=False, cache=False)
    assert abs(ours["value"]) > 1e-4  # the random network separates the two sets: the comparison means something
    assert ours["value"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["kid_std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3, abs=1e-9)
    assert (ours["kind"], ours["lower_is_better"], ours["num_real"], ours["kid_subset_size"]) == ("kid", True, 4, 4)
    assert ours["reference"] == "computed" and Path(ours["reference_path"]).is_file()


class _CountingExtractor:
    """Stands in for Inception: cheap deterministic features, and a count of images seen."""

    key = "fake-extractor-kid"

    def __init__(self) -> None:
        self.images_seen = 0

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.images_seen += len(images)
        pooled = F.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)  # [N, 48]
        return {"2048": pooled, "logits_unbiased": pooled[:, :10]}


def test_kid_reference_features_are_cached_by_their_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extractor = _CountingExtractor()
    monkeypatch.setattr("dggan.metrics.job.get_inception", lambda weights=None, device="cpu": extractor)
    refstats._FEATURES_MEMO.clear()
    real = SyntheticShapes(40, 16, seed=2)
    fakes = to_float(torch.from_numpy(SyntheticShapes(24, 16, seed=1).array), 16)
    first = evaluate("kid24", _serve(fakes), real, 16, cache_dir=tmp_path, progress=False)
    assert (first["reference"], extractor.images_seen) == ("computed", 48)
    refstats._FEATURES_MEMO.clear()  # a new process: from the disk, only the generated images are extracted
    again = evaluate("kid24", _serve(fakes), real, 16, cache_dir=tmp_path, progress=False)
    assert (again["reference"], extractor.images_seen, again["value"]) == ("disk", 72, first["value"])
    assert evaluate("kid24", _serve(fakes), real, 16, cache_dir=tmp_path, progress=False)["reference"] == "memory"
    other = evaluate("kid24", _serve(F.avg_pool2d(fakes, 2)), real, 8, cache_dir=tmp_path,
                     progress=False)  # another resolution, another reference
    assert other["reference"] == "computed"
    names = sorted(p.name for p in (tmp_path / "refstats").iterdir())
    assert len(names) == 2 and all(n.startswith("features-") for n in names)
    assert first["kid_subset_size"] == 24  # 24 generated, 24 of the 40 real: the smaller count, below 1000
    refstats._FEATURES_MEMO.clear()


def test_kid_is_a_search_metric_that_needs_inception(tmp_path: Path) -> None:
    config = SearchConfig(metric="kid1k", rung_metric="kid256", halving_eta=3, inception_weights=str(tmp_path / "no"))
    assert parse_metric(config.metric).lower_is_better
    with pytest.raises(SearchError, match="metric kid1k: Inception weights file .* does not exist"):
        check_metric(config)  # the preflight: before any candidate trains
    with pytest.raises(ConfigError, match=r"rung_metric 'swd256' must be a cheaper budget of the search metric's"
                                          r" kind \(kid\.\.\.\)"):
        SearchConfig(metric="kid1k", rung_metric="swd256", halving_eta=3)


def test_dggan_eval_takes_kid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dggan.model.genome import Genome, constant_channels
    from dggan.training.trainer import TrainConfig, Trainer

    genome = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    trainer = Trainer(genome, TrainConfig(iterations=2, batch_size=8), SyntheticShapes(32, 16))
    trainer.train(progress=False)
    ckpt = trainer.save(tmp_path / "run" / "checkpoint.safetensors")
    monkeypatch.setattr("dggan.metrics.job.get_inception", lambda weights=None, device="cpu": _CountingExtractor())
    refstats._FEATURES_MEMO.clear()
    result = CliRunner().invoke(app, ["eval", str(ckpt), "--metric", "kid16", "--data", "synthetic:n=32,res=16",
                                      "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "kid16 @8px" in result.output
    (line,) = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["metric"] == "kid16" and record["kind"] == "kid" and record["kid_subset_size"] == 16
    refstats._FEATURES_MEMO.clear()
