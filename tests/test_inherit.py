from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dggan.model.actions import Action, ActionSpace, GrowthLimits, apply_action
from dggan.model.genome import Genome
from dggan.model.inherit import inherit_weights
from dggan.model.networks import Discriminator, Generator

SPACE = ActionSpace(filters=(8, 16, 24, 32, 64))


def trained_like(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give a network distinctive non-initial weights (biases too), as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return net


@pytest.mark.parametrize("action", [a.spec() for a in ActionSpace(filters=(8, 16, 64)).actions()])
def test_untouched_parameters_are_copied_bit_for_bit(tiny_genome: Genome, action: str) -> None:
    parent_genome = apply_action(tiny_genome, Action("grow_g", 3, 24), space=SPACE)
    parent_genome = apply_action(parent_genome, Action("grow_d", 7, 24), space=SPACE)
    child_genome = apply_action(parent_genome, Action.parse(action), GrowthLimits(32), SPACE)
    for net_cls, seed in ((Generator, 1), (Discriminator, 2)):
        parent = trained_like(net_cls(parent_genome), seed)
        child = net_cls(child_genome, fade_in=child_genome.resolution > parent_genome.resolution)
        report = inherit_weights(child, parent.state_dict())
        parent_state, child_state = parent.state_dict(), child.state_dict()
        touched = {name for name, _ in report.adapted} | {name for name, _ in report.fresh}
        for name in set(parent_state) & set(child_state) - touched:
            assert torch.equal(parent_state[name], child_state[name]), name
        # Only the new layer and its direct neighbour may be touched.
        touched_layers = {name.split(".")[1] for name in touched}
        assert len(touched_layers) <= (5 if action == "grow_res" else 2), touched_layers
        assert not report.dropped


def test_report_names_fresh_and_adapted_layers(tiny_genome: Genome) -> None:
    child_genome = apply_action(tiny_genome, Action("grow_g", 7, 32))
    parent = trained_like(Generator(tiny_genome), 0)
    child = Generator(child_genome)
    report = inherit_weights(child, parent.state_dict())
    assert {n for n, _ in report.fresh} == {"layers.grow0.weight", "layers.grow0.bias"}
    assert [n for n, _ in report.adapted] == ["layers.torgb8.weight"]  # toRGB now reads 32 channels, not 16
    assert "layers.torgb8.bias" in report.copied
    # The overlap keeps its effective (equalized-lr) weights: raw * sqrt(2 / fan_in) is unchanged.
    old = parent.layers["torgb8"].weight * parent.layers["torgb8"].scale
    new = child.layers["torgb8"].weight[:, :16] * child.layers["torgb8"].scale
    assert torch.allclose(old, new, atol=1e-6)
    fresh = inherit_weights(Generator(child_genome), parent.state_dict(), policy="fresh")
    assert "layers.torgb8.weight" in {n for n, _ in fresh.fresh}
    assert "3 copied" not in report.summary() and "adapted" in report.summary()


def test_fade_in_at_alpha_zero_preserves_function(tiny_genome: Genome) -> None:
    parent_genome = apply_action(tiny_genome, Action("grow_g", 3, 24), space=SPACE)
    parent_genome = apply_action(parent_genome, Action("grow_d", 7, 8), space=SPACE)
    child_genome = apply_action(parent_genome, Action("grow_res"))
    g_parent = trained_like(Generator(parent_genome), 5).eval()
    d_parent = trained_like(Discriminator(parent_genome), 6).eval()
    g_child = Generator(child_genome, fade_in=True)
    d_child = Discriminator(child_genome, fade_in=True)
    inherit_weights(g_child, g_parent.state_dict())
    inherit_weights(d_child, d_parent.state_dict())
    g_child.set_alpha(0.0)
    d_child.set_alpha(0.0)
    z = torch.randn(8, tiny_genome.latent_size)
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        expected_g = F.interpolate(g_parent(z), scale_factor=2.0, mode="nearest")
        assert torch.allclose(g_child(z), expected_g, atol=1e-5)
        assert torch.allclose(d_child(x), d_parent(F.avg_pool2d(x, 2)), atol=1e-5)
        # And alpha actually blends: at 1 the new (random) path takes over.
        g_child.set_alpha(1.0)
        assert not torch.allclose(g_child(z), expected_g, atol=1e-3)


def test_drop_fade_in_removes_old_path(tiny_genome: Genome) -> None:
    child = Generator(apply_action(tiny_genome, Action("grow_res")), fade_in=True)
    assert "layers.torgb8.weight" in child.state_dict()
    dropped = child.drop_fade_in()
    assert len(dropped) == 2 and "layers.torgb8.weight" not in child.state_dict()
    assert child(torch.randn(2, 16)).shape == (2, 3, 16, 16)


def test_unknown_policy_rejected(tiny_genome: Genome) -> None:
    with pytest.raises(ValueError, match="policy"):
        inherit_weights(Generator(tiny_genome), {}, policy="magic")  # type: ignore[arg-type]


def test_identity_init_keeps_the_child_close_to_its_parent(tiny_genome: Genome) -> None:
    from dggan.model.inherit import identity_init

    parent = trained_like(Generator(tiny_genome), 3).eval()
    z = torch.randn(16, tiny_genome.latent_size)
    child_genome = apply_action(tiny_genome, Action("grow_g", 3, 32))
    errors = {}
    for mode in ("random", "identity"):
        torch.manual_seed(0)
        child = Generator(child_genome).eval()
        report = inherit_weights(child, parent.state_dict())
        if mode == "identity":
            assert identity_init(child, report) == ["grow0"]
            weight = child.layers["grow0"].weight * child.layers["grow0"].scale
            assert torch.allclose(weight[:16, :16, 1, 1], torch.eye(16)) and weight[16:].abs().sum() == 0
            assert ("layers.grow0.weight", "new layer, identity init") in report.fresh
        with torch.no_grad():
            errors[mode] = (child(z) - parent(z)).abs().mean().item()
    # Not exact (LeakyReLU shrinks negative inputs again), but far closer than a random layer.
    assert errors["identity"] < 0.5 * errors["random"]
