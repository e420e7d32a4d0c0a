from __future__ import annotations

import pytest
import torch

from dggan.data import SyntheticShapes
from dggan.genome import Genome, constant_channels


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)  # tests are tiny; one thread is fastest and deterministic


@pytest.fixture(scope="session")
def tiny_data() -> SyntheticShapes:
    return SyntheticShapes(num_images=64, resolution=32, seed=3)


@pytest.fixture
def tiny_genome() -> Genome:
    return Genome.base(latent_size=16, channels=constant_channels(32, 16))
