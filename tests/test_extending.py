"""docs/extending.md, proved: a loss, a metric kind and a growth action defined here, outside the package, registered
by name, and tiny searches that train with the loss, rank with the metric and grow with the action."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from searches import tiny
from test_dataset_registry import Checkers
from torch import nn

import dggan.metrics.registry as metric_registry
import dggan.model.actions as action_registry
import dggan.training.loss as loss_registry
from dggan.errors import ConfigError, InvalidActionError
from dggan.metrics import MetricJob, evaluate, parse_metric, register_metric
from dggan.model.actions import Action, ActionSpace, GrowthLimits, action_kinds, apply_action, register_action
from dggan.model.genome import ConvLayer, Genome, constant_channels
from dggan.search.algorithm import Rules
from dggan.search.config import SearchConfig
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger
from dggan.training.loss import Autocast, Loss, Terms, register_loss


# The loss of docs/extending.md: the hinge loss (Lim & Ye 2017; BigGAN's), with a margin as its one option.
@dataclass(frozen=True)
class Hinge(Loss):
    margin: float = 1.0
    stats: ClassVar[tuple[str, ...]] = ("d_real", "d_fake")

    def critic(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, autocast: Autocast,
               one_pass: bool = True) -> Terms:
        with autocast():
            d_real, d_fake = D(real).float(), D(fake).float()
        loss = F.relu(self.margin - d_real).mean() + F.relu(self.margin + d_fake).mean()
        return Terms(loss, {"d_real": d_real.mean(), "d_fake": d_fake.mean()})

    def generator(self, D: nn.Module, fake: torch.Tensor, autocast: Autocast) -> torch.Tensor:
        with autocast():
            return -D(fake).float().mean()


# The metric kind of docs/extending.md: how far the mean colour of the generated images is from the real ones'.
def colour_distance(job: MetricJob) -> dict[str, Any]:
    def mean_colour(batches: Iterator[torch.Tensor]) -> torch.Tensor:
        return torch.cat([b.float().mean(dim=(2, 3)) for b in batches]).mean(0) / 255

    fake, real = mean_colour(job.fakes()), mean_colour(job.real_batches())
    return {"value": float((fake - real).abs().sum()), "num_real": min(job.num_real, len(job.real_source()))}


# The growth action of docs/extending.md: the same new conv in G and in D.
def grow_both(genome: Genome, action: Action, limits: GrowthLimits) -> Genome:
    """A conv of ``kernel`` x ``filters`` added to G and the same to D, at the current resolution."""
    for net, layers, cap in (("G", genome.g_layers, limits.max_g_layers), ("D", genome.d_layers, limits.max_d_layers)):
        if cap is not None and len(layers) >= cap:
            raise InvalidActionError(f"grow_both: {net} already has {len(layers)} grown layers (max {cap})")
    layer = ConvLayer(kernel=action.kernel, filters=action.filters, resolution=genome.resolution)
    return dataclasses.replace(genome, g_layers=genome.g_layers + (layer,), d_layers=genome.d_layers + (layer,))


@pytest.fixture
def grow_both_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered from here, as a user's module would at import; the registry is put back afterwards."""
    monkeypatch.setattr(action_registry, "_ACTIONS", dict(action_registry._ACTIONS))
    register_action("grow_both", label="GD", conv=True)(grow_both)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both registered from here, as a user's module would at import; the registries are put back afterwards."""
    monkeypatch.setattr(loss_registry, "_LOSSES", dict(loss_registry._LOSSES))
    monkeypatch.setattr(metric_registry, "_KINDS", dict(metric_registry._KINDS))
    register_loss("hinge")(Hinge)
    register_metric("colour", lower_is_better=True, real="subset")(colour_distance)


def test_a_loss_and_a_metric_from_outside_run_a_search(registered: None, tmp_path: Path) -> None:
    assert parse_metric("colour1k").num_real == 1000 and not parse_metric("colour1k").needs_inception
    run = tmp_path / "run"
    config = tiny(loss="hinge", loss_options={"margin": 0.5}, metric="colour32", max_steps=1, final_iterations=2)
    run_search(run, config, progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
    assert rows and all(r.status.value == "done" and r.metric is not None and r.metric >= 0 for r in rows)
    stats = [json.loads(text) for path in (run / "candidates").glob("*/stats.jsonl")
             for text in path.read_text().splitlines()]
    assert stats and all({"loss_d", "loss_g", "d_real", "d_fake"} <= set(row) and "gp" not in row for row in stats)
    best = json.loads((run / "best" / "metrics.json").read_text())  # the final model, scored by the toy metric
    assert best["status"] == "done" and best["extra"]["kind"] == "colour" and best["metric"] >= 0


def test_a_registered_metric_is_evaluated_by_its_function(registered: None) -> None:
    real = torch.full((8, 3, 8, 8), 0.0)

    class Source:  # the least an ImageSource offers evaluate for a "subset" kind
        name, resolution, channels = "grey", 8, 3

        def __len__(self) -> int:
            return len(real)

        def get(self, idx: Any) -> Any:
            return (real[torch.as_tensor(idx)] * 127.5 + 127.5).round().to(torch.uint8).numpy()

    white = evaluate("colour8", lambda n: torch.ones(n, 3, 8, 8), Source(), 8, progress=False)  # type: ignore[arg-type]
    assert white["value"] == pytest.approx(3 * (1 - 128 / 255)) and white["kind"] == "colour"
    assert white["lower_is_better"] and white["num_real"] == 8


def test_bad_registrations_say_what_to_fix(registered: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric("colour", lower_is_better=False)(lambda job: {"value": 0.0})
    with pytest.raises(ValueError, match="lower-case letters"):
        register_metric("fid2", lower_is_better=True)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("hinge")(dataclass(frozen=True)(type("Hinge2", (Loss,), {})))


def test_bad_action_registrations_say_what_to_fix(grow_both_registered: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_action("grow_both", label="B", conv=True)(lambda genome, action, limits: genome)
    with pytest.raises(ValueError, match="would parse as the registered action 'grow_g'"):
        register_action("grow_more", label="g", conv=True)(lambda genome, action, limits: genome)
    with pytest.raises(ValueError, match="lower-case letters"):
        register_action("Grow:x", label="X", conv=False)
    with pytest.raises(ValueError, match="label must be a short word"):
        register_action("grow_x", label="G D", conv=False)
    register_action("grow_both", label="GD", conv=True)(grow_both)  # the same function again (a re-import): fine


def test_a_growth_action_from_outside_parses_shows_and_applies(grow_both_registered: None) -> None:
    assert list(action_kinds()) == ["grow_g", "grow_d", "grow_res", "grow_both"]
    action = Action("grow_both", 3, 64)
    assert action.spec() == "grow_both:k3:f64" and action.label() == "GD k3 f64"
    assert Action.parse("grow_both:k3:f64") == Action.parse("grow_both:3:64") == Action.parse("GD k3 f64") == action
    assert action.to_dict() == {"kind": "grow_both", "kernel": 3, "filters": 64}
    assert Action.from_dict(json.loads(json.dumps(action.to_dict()))) == action
    with pytest.raises(InvalidActionError, match="kernel must be an odd positive int"):
        Action("grow_both", 4, 64)
    with pytest.raises(InvalidActionError, match=r"cannot parse.*registered: grow_both:k3:f64"):
        Action.parse("grow_both")
    genome = Genome.base(latent_size=8, channels=constant_channels(16, 16))
    child = apply_action(genome, action)  # enabled by default: apply_action's own space takes it
    assert child.g_layers == child.d_layers == (ConvLayer(kernel=3, filters=64, resolution=8),)
    with pytest.raises(InvalidActionError, match="max 1"):
        apply_action(child, action, GrowthLimits(16, max_g_layers=1))
    # A search's space takes it only when named (ActionSpace.extra): after the paper's actions, in its order.
    with pytest.raises(InvalidActionError, match="grow_both is disabled in this action space"):
        apply_action(genome, action, space=ActionSpace())
    space = ActionSpace(kernels=(3,), filters=(8, 16), grow_d=False, extra=("grow_both",))
    assert [a.label() for a in space.actions()] == ["G k3 f8", "G k3 f16", "res", "GD k3 f8", "GD k3 f16"]
    for bad, needle in ((("grow_g",), "one of the paper's actions"), (("nope",), "unknown action kind 'nope'"),
                        (("grow_both", "grow_both"), "more than once")):
        with pytest.raises(InvalidActionError, match=needle):
            ActionSpace(extra=bad)


def test_the_actions_setting_names_registered_actions(grow_both_registered: None, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dggan.cli import app

    result = CliRunner().invoke(app, ["search", "--run-dir", str(tmp_path / "r"), "--set", 'actions=["nope"]'])
    assert result.exit_code == 2 and "unregistered growth action(s) 'nope'" in result.output, result.output
    assert "@register_action" in result.output and "docs/extending.md" in result.output
    assert "registered beyond the paper's three: grow_both" in result.output and not (tmp_path / "r").exists()
    for actions, needle in ((["grow_g"], "switched by grow_g"), (["grow_both", "grow_both"], "more than once")):
        with pytest.raises(ConfigError, match=needle):
            tiny(actions=actions)
    with pytest.raises(ConfigError, match="max_steps is null"):
        tiny(actions=["grow_both"], max_steps=None, max_g_layers=1, max_d_layers=1)
    config = tiny(actions="grow_both")  # --set actions=grow_both: one name
    assert config.actions == ("grow_both",) and config.rules().space.extra == ("grow_both",)
    # Settings written before the setting existed (a ledger's, options.json) take the paper's actions alone.
    old = {k: v for k, v in tiny().to_dict().items() if k != "actions"}
    assert SearchConfig.from_dict(old).actions == () and Rules.from_settings(old).space.extra == ()


def test_a_growth_action_from_outside_runs_a_search(grow_both_registered: None, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = tiny(actions=["grow_both"], grow_g=False, grow_d=False, filters=[8], p=1.0, max_steps=1,
                  final_iterations=2)
    run_search(run, config, progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
    grown = [r for r in rows if r.action is not None and r.action.kind == "grow_both"]
    assert grown and all(r.status.value == "done" for r in grown)
    assert all(r.genome.g_layers and r.genome.d_layers for r in grown)
    assert {r.action.label() for r in rows if r.action is not None} == {"GD k3 f8", "res"}  # type: ignore[union-attr]
    from dggan.analysis.analyses import action_effects
    from dggan.analysis.plots import ACTION_PALETTE, kind_colors, plot_action_effects

    effects = action_effects(rows)
    assert [e.label for e in effects] == ["res", "GD k3 f8"]  # registration order: the paper's first
    assert kind_colors()["grow_both"] == ACTION_PALETTE[0] and plot_action_effects(effects).startswith(b"\x89PNG")


def test_the_doc_shows_the_code_tested_here() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    for example in (Hinge, colour_distance, grow_both, Checkers):
        for line in inspect.getsource(example).splitlines():
            assert line.strip() in doc, f"docs/extending.md lacks {line.strip()!r} of the tested {example.__name__}"
