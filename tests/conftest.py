from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import torch

from dggan.data import SyntheticShapes
from dggan.model.genome import Genome, constant_channels
from dggan.training.cuda_graphs import reset_graphs_in_process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the shared Ray instance run last, side by side: Ray's daemons then idle beside no other test."""
    items.sort(key=lambda item: "ray_instance" in getattr(item, "fixturenames", ()))  # stable: order kept


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[object | None]:
    """One local Ray instance for every test that runs the Ray executor (it reuses an instance it finds), so
    the suite starts Ray once; None when Ray is not installed."""
    try:
        import ray
    except ImportError:
        yield None
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    from dggan._util.threads import set_threads

    set_threads(1)  # tests are tiny; one torch and one BLAS thread is fastest and deterministic


@pytest.fixture(scope="session")
def tiny_data() -> SyntheticShapes:
    return SyntheticShapes(num_images=64, resolution=32, seed=3)


@pytest.fixture
def tiny_genome() -> Genome:
    return Genome.base(latent_size=16, channels=constant_channels(32, 16))


@pytest.fixture(scope="session")
def random_inception(tmp_path_factory) -> Path:
    """torch-fidelity's Inception with random weights, BN statistics calibrated so features are O(1)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    torch.manual_seed(0)
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None):
        model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"])
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # running stats := this batch's statistics
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(SyntheticShapes(4, 16, seed=5).array))
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def fake_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The search reads tests/fixtures/fake_executor.py's JSON checkpoints."""
    from fixtures.fake_executor import patch_checkpoints

    patch_checkpoints(monkeypatch)


@pytest.fixture
def graphs_allowed_again() -> Iterator[None]:
    """A capture failure turns CUDA graphs off for the process: a test of graph failures starts, and leaves the
    next test, as a fresh process would (``pytestmark = pytest.mark.usefixtures("graphs_allowed_again")``)."""
    reset_graphs_in_process()
    yield
    reset_graphs_in_process()
