from __future__ import annotations

import dataclasses
import json

import pytest

from dggan.model.actions import Action, ActionSpace, GrowthLimits, InvalidActionError, apply_action, valid_actions
from dggan.model.genome import ConvLayer, Genome, GenomeError, constant_channels, d_plan, g_plan, proggan_channels
from dggan.model.networks import Discriminator, Generator


def grown(genome: Genome, *actions: str) -> Genome:
    for text in actions:
        genome = apply_action(genome, Action.parse(text), GrowthLimits(32))
    return genome


def test_json_round_trip_and_key(tiny_genome: Genome) -> None:
    g = grown(tiny_genome, "grow_g:k3:f32", "grow_res", "grow_d:k7:f64")
    again = Genome.from_json(g.to_json())
    assert again == g
    assert again.key() == g.key()
    assert g.key() != tiny_genome.key()
    assert len(g.key()) == 12
    assert json.loads(g.to_json())["g_layers"] == [{"kernel": 3, "filters": 32, "resolution": 8}]


def test_summary_mentions_layers_and_params(tiny_genome: Genome) -> None:
    g = grown(tiny_genome, "grow_g:k7:f64", "grow_res")
    text = g.summary()
    assert "16px" in text and "8[k7f64]" in text and "params G" in text


def test_param_counts_match_networks(tiny_genome: Genome) -> None:
    g = grown(tiny_genome, "grow_g:k3:f32", "grow_d:k7:f64", "grow_res", "grow_g:k7:f128", "grow_d:k3:f32")
    assert g.g_params() == sum(p.numel() for p in Generator(g).parameters())
    assert g.d_params() == sum(p.numel() for p in Discriminator(g).parameters())


def test_proggan_schedule() -> None:
    assert proggan_channels(256) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}
    assert constant_channels(32, 512) == {4: 512, 8: 512, 16: 512, 32: 512}


def test_base_genome_is_proggan_at_8px() -> None:
    g = Genome.base()
    names = [s.name for s in g_plan(g)]
    assert names == ["b4_dense", "b4_conv", "b8_conv0", "b8_conv1", "torgb8"]
    assert [s.name for s in d_plan(g)] == ["fromrgb8", "b8_conv0", "b8_conv1", "b4_conv", "b4_dense", "b4_out"]


def test_grown_layer_positions(tiny_genome: Genome) -> None:
    g = grown(tiny_genome, "grow_g:k3:f32", "grow_g:k7:f64", "grow_d:k3:f32", "grow_d:k7:f64")
    # G grows before its last conv (toRGB), in growth order.
    assert [s.name for s in g_plan(g)][-3:] == ["grow0", "grow1", "torgb8"]
    # D grows right after its first conv (fromRGB): the newest layer comes first.
    assert [s.name for s in d_plan(g)][:3] == ["fromrgb8", "grow1", "grow0"]
    g2 = grown(g, "grow_res")
    assert [s.name for s in g_plan(g2)][-5:] == ["grow0", "grow1", "b16_conv0", "b16_conv1", "torgb16"]
    plan = [s.name for s in d_plan(g2)]
    assert plan[:4] == ["fromrgb16", "b16_conv0", "b16_conv1", "grow1"]


@pytest.mark.parametrize("field,value,needle", [
    ("latent_size", 0, "latent_size"),
    ("resolution", 12, "resolution"),
    ("base_resolution", 6, "base_resolution"),
])
def test_invalid_genomes_are_rejected(tiny_genome: Genome, field: str, value: int, needle: str) -> None:
    with pytest.raises(GenomeError, match=needle):
        dataclasses.replace(tiny_genome, **{field: value})


def test_layer_resolution_must_not_decrease(tiny_genome: Genome) -> None:
    g = grown(tiny_genome, "grow_res")
    with pytest.raises(GenomeError, match="must not decrease"):
        dataclasses.replace(g, g_layers=(ConvLayer(3, 8, 16), ConvLayer(3, 8, 8)))


@pytest.mark.parametrize("text,needle", [
    ("not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"latent_size": 8}', "missing field 'base_resolution'"),
    ('{"latent_size": 8, "base_resolution": 8, "resolution": 8, "channels": {"4": 8, "8": 8}, "colour": 1}',
     "unknown field"),
    ('{"latent_size": 8, "base_resolution": 8, "resolution": 16, "channels": {"4": 8, "8": 8}}',
     "no width for resolution 16"),
    ('{"latent_size": 8, "base_resolution": 8, "resolution": 8, "channels": {"4": 8, "8": 8},'
     ' "g_layers": [{"kernel": 4, "filters": 8, "resolution": 8}]}', "g_layers\\[0\\].kernel"),
])
def test_malformed_genome_json(text: str, needle: str) -> None:
    with pytest.raises(GenomeError, match=needle) as info:
        Genome.from_json(text, source="my.json")
    assert "my.json" in str(info.value)


def test_action_space_has_25_actions() -> None:
    actions = ActionSpace().actions()
    assert len(actions) == 25
    assert sum(a.kind == "grow_res" for a in actions) == 1
    assert {a.kernel for a in actions if a.kind == "grow_g"} == {3, 7}


def test_actions_are_pure(tiny_genome: Genome) -> None:
    before = tiny_genome.to_json()
    child = apply_action(tiny_genome, Action("grow_g", 3, 64))
    assert tiny_genome.to_json() == before
    assert child.g_layers == (ConvLayer(3, 64, 8),)
    assert apply_action(tiny_genome, Action("grow_res")).resolution == 16


def test_invalid_actions(tiny_genome: Genome) -> None:
    with pytest.raises(InvalidActionError, match="exceed the target resolution 8"):
        apply_action(tiny_genome, Action("grow_res"), GrowthLimits(8))
    limited = GrowthLimits(32, max_g_layers=1)
    one = apply_action(tiny_genome, Action("grow_g", 3, 32), limited)
    with pytest.raises(InvalidActionError, match="max_g_layers"):
        apply_action(one, Action("grow_g", 3, 32), limited)
    with pytest.raises(InvalidActionError, match="unknown kernel size 5"):
        apply_action(tiny_genome, Action("grow_d", 5, 32))
    with pytest.raises(InvalidActionError, match="unknown action kind"):
        Action.from_dict({"kind": "grow_x"})
    with pytest.raises(InvalidActionError, match="cannot parse"):
        Action.parse("grow_g:big")
    with pytest.raises(InvalidActionError, match="empty"):
        ActionSpace(grow_g=False, grow_d=False, grow_res=False).actions()
    assert len(valid_actions(one, ActionSpace(), limited)) == 13  # 12 D actions + grow_res


def test_action_dict_round_trip() -> None:
    for action in ActionSpace().actions():
        assert Action.from_dict(action.to_dict()) == action
        assert Action.parse(action.label()) == action and Action.parse(action.spec()) == action
    assert Action("grow_res").to_dict() == {"kind": "grow_res"}
