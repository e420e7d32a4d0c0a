"""dggan's growable networks against the independent, hand-written ProgGAN in benchmarks/reference_proggan.py.

The reference imports nothing from dggan, so agreement here means the layer plan builds ProgGAN layer
for layer: the same parameter counts (and the documented absolute numbers), the same outputs with the
same weights, and the same numbers after full WGAN-GP training steps.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from dggan.data import SyntheticShapes
from dggan.model.actions import Action, apply_action
from dggan.model.genome import Genome, constant_channels
from dggan.model.networks import Discriminator, Generator
from dggan.training.trainer import TrainConfig, Trainer

RESOLUTIONS = (8, 16, 32)


def _load_reference() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_proggan.py"
    spec = importlib.util.spec_from_file_location("reference_proggan", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reference_proggan", module)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()


def proggan_route(channels: int, latent_size: int) -> dict[int, Genome]:
    """ProgGAN's CIFAR-10 route: the base genome at 8px, then grow_res to 16 and 32 (no grown convs)."""
    genome = Genome.base(latent_size=latent_size, base_resolution=8, channels=constant_channels(32, channels))
    route = {8: genome}
    for res in (16, 32):
        genome = apply_action(genome, Action("grow_res"))
        route[res] = genome
    assert [g.resolution for g in route.values()] == list(RESOLUTIONS)
    assert all(not g.g_layers and not g.d_layers for g in route.values())
    return route


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def shapes(module: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in module.parameters()]


def copy_by_order(dst: nn.Module, src: nn.Module) -> None:
    with torch.no_grad():
        for d, s in zip(dst.parameters(), src.parameters(), strict=True):
            assert d.shape == s.shape
            d.copy_(s)


# ------------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_param_counts_match_reference_512(resolution: int) -> None:
    genome = proggan_route(512, 128)[resolution]
    with torch.device("meta"):  # 38M parameters at 32px: no memory, no init time
        G, D = Generator(genome), Discriminator(genome)
        ref_G, ref_D = ref.build_reference(resolution, 512, latent_size=128)
    assert shapes(G) == shapes(ref_G)  # layer for layer, in forward order
    assert shapes(D) == shapes(ref_D)
    assert n_params(G) == n_params(ref_G) == genome.g_params()
    assert n_params(D) == n_params(ref_D) == genome.d_params()


def test_documented_absolute_counts_at_32px() -> None:
    genome = proggan_route(512, 128)[32]
    # G: dense 128*512*16 + 512*16 = 1,056,768; 7 3x3 convs 512->512 at 2,359,808 each; toRGB 512*3 + 3
    g_expected = (128 * 512 * 16 + 512 * 16) + 7 * (512 * 512 * 9 + 512) + (512 * 3 + 3)
    # D: fromRGB 3*512 + 512; 6 3x3 convs; mbstd conv 513->512; dense 512*16 -> 512; out 512 -> 1
    d_expected = ((3 * 512 + 512) + 6 * (512 * 512 * 9 + 512) + (513 * 512 * 9 + 512)
                  + (512 * 16 * 512 + 512) + (512 + 1))
    assert g_expected == 17_576_963
    assert d_expected == 20_720_641
    assert genome.g_params() == 17_576_963
    assert genome.d_params() == 20_720_641
    with torch.device("meta"):
        ref_G, ref_D = ref.build_reference(32, 512, latent_size=128)
    assert n_params(ref_G) == 17_576_963
    assert n_params(ref_D) == 20_720_641


# ------------------------------------------------------------------------------------ outputs
@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_same_outputs_with_copied_weights(resolution: int) -> None:
    genome = proggan_route(16, 16)[resolution]
    torch.manual_seed(0)
    G, D = Generator(genome), Discriminator(genome)
    ref_G, ref_D = ref.build_reference(resolution, 16, latent_size=16)
    copy_by_order(ref_G, G)
    copy_by_order(ref_D, D)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(8, 16, generator=gen)
    x = torch.randn(8, 3, resolution, resolution, generator=gen)
    with torch.no_grad():
        out_g, ref_out_g = G(z), ref_G(z)
        out_d, ref_out_d = D(x), ref_D(x)
    assert out_g.shape == (8, 3, resolution, resolution)
    assert out_d.shape == (8, 1)
    assert out_g.std() > 0 and out_d.std() > 0  # not a degenerate all-zero comparison
    assert torch.equal(out_g, ref_out_g)  # same ops in the same order: bit for bit
    assert torch.equal(out_d, ref_out_d)
    # A different weight must change the output (the comparison really depends on the weights).
    with torch.no_grad():
        next(ref_D.parameters()).add_(0.1)
        assert not torch.equal(D(x), ref_D(x))


# ------------------------------------------------------------------------------------ training step
@pytest.mark.parametrize("resolution", [8, 16])
def test_training_steps_match_reference(resolution: int, tiny_data: SyntheticShapes) -> None:
    genome = proggan_route(16, 16)[resolution]
    trainer = Trainer(genome, TrainConfig(iterations=100, batch_size=8, seed=5), tiny_data)
    ref_G, ref_D = ref.build_reference(resolution, 16, latent_size=16)
    copy_by_order(ref_G, trainer.G)
    copy_by_order(ref_D, trainer.D)
    reference = ref.ReferenceTrainer(ref_G, ref_D, tiny_data.array, batch_size=8, latent_size=16, seed=5)
    initial = [p.detach().clone() for p in trainer.G.parameters()]
    for _ in range(3):
        stats, ref_stats = trainer.step(), reference.step()
        torch.testing.assert_close(stats, ref_stats, rtol=0, atol=0)  # same ops, same order: exact
    assert stats[2] > 0  # a real gradient penalty was computed
    for mine, theirs in ((trainer.G, reference.G), (trainer.D, reference.D), (trainer.G_ema, reference.G_ema)):
        for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)  # same ops, same order: exact
    # The steps did update the weights, so the comparison above is not of two untouched copies.
    assert all(not torch.equal(a, b) for a, b in zip(trainer.G.parameters(), initial, strict=True))
