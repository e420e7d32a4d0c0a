"""The loss registry and ``loss=r1`` (StyleGAN2's non-saturating logistic loss with lazy R1): its values by hand,
its training, logging and exact resume, its CUDA-graph path (emulated on the CPU), a search with it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from searches import tiny
from typer.testing import CliRunner

from dggan.cli import app
from dggan.data import SyntheticShapes
from dggan.errors import ConfigError
from dggan.model.genome import Genome
from dggan.search.config import SearchConfig
from dggan.search.ledger import Ledger
from dggan.training.checkpoint import load_checkpoint
from dggan.training.cuda_graphs import EmulatedBackend, reset_graphs_in_process
from dggan.training.loss import R1, WGANGP, Loss, loss_names, make_loss, register_loss
from dggan.training.trainer import TrainConfig, Trainer

# every=2: several lazy steps in a few iterations, and a resume point (5) between two of them.
R1_CFG = TrainConfig(iterations=12, batch_size=8, log_every=4, seed=7, loss="r1",
                     loss_options={"gamma": 10.0, "every": 2})


class _Square(torch.nn.Module):
    """D(x) = 0.5 * sum(c * x^2) per image: grad_x D = c * x, so ||grad||^2 = sum(c^2 x^2), by hand."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.c * x.square().flatten(1).sum(1, keepdim=True)


def _no_autocast() -> torch.autocast:
    return torch.autocast("cpu", enabled=False)


def test_r1_penalty_and_logistic_losses_by_hand() -> None:
    real = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]], [[[3.0, 1.0], [-1.0, 2.0]]]])  # [2, 1, 2, 2]
    fake = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]], [[[-1.0, 0.0], [0.0, 2.0]]]])
    loss, D = R1(gamma=4.0, every=3), _Square(c=0.5)
    # ||grad||^2 = c^2 * sum x^2: 0.25 * 5.25 and 0.25 * 15 -> mean 2.53125; the D step: gamma / 2 * every times it.
    reg = loss.regularizer(D, real, _no_autocast)
    assert reg.stats["r1"].item() == pytest.approx(2.53125)
    assert reg.loss.item() == pytest.approx(4.0 / 2 * 3 * 2.53125)
    # D(real) = 0.25 * [5.25, 15], D(fake) = 0.25 * [2, 5]
    d_real, d_fake = torch.tensor([1.3125, 3.75]), torch.tensor([0.5, 1.25])
    critic = loss.critic(D, real, fake, torch.zeros(2, 1, 1, 1), _no_autocast)
    expected = (F.softplus(d_fake).mean() + F.softplus(-d_real).mean()).item()
    assert critic.loss.item() == pytest.approx(expected)
    assert (critic.stats["d_real"].item(), critic.stats["d_fake"].item()) == pytest.approx((2.53125, 0.875))
    assert loss.generator(D, fake, _no_autocast).item() == pytest.approx(F.softplus(-d_fake).mean().item())
    assert (R1(every=16).regularize_every, R1(gamma=0.0).regularize_every) == (16, 0)  # gamma 0: no lazy step


def test_losses_are_chosen_by_name_and_checked() -> None:
    assert {"wgan-gp", "r1"} <= set(loss_names()) and TrainConfig().loss == "wgan-gp"
    assert make_loss(TrainConfig(gp_lambda=5.0, drift=0.0)) == WGANGP(gp_lambda=5.0, drift=0.0)
    assert make_loss(TrainConfig(loss="r1", loss_options={"gamma": 1, "every": "8"})) == R1(gamma=1.0, every=8)
    assert make_loss(TrainConfig(loss="r1")) == R1(gamma=10.0, every=16)
    for overrides, needle in [({"loss": "hinge"}, "unknown loss 'hinge'; registered losses: r1, wgan-gp"),
                              ({"loss": "r1", "loss_options": {"gama": 1}}, "unknown setting(s) ['gama']"),
                              ({"loss": "r1", "loss_options": {"gamma": -1}}, "gamma must be >= 0"),
                              ({"loss": "r1", "loss_options": {"every": 0}}, "every must be in [1, 1000000]"),
                              ({"loss_options": {"gamma": 1}}, "wgan-gp takes no loss_options")]:
        with pytest.raises(ConfigError) as info:
            TrainConfig(**overrides)
        assert needle in str(info.value) and "\n" not in str(info.value)
    # A search setting too, checked when the settings are read.
    assert SearchConfig(loss="r1", loss_options={"every": 4}).train_config(10).loss_options == {"every": 4}
    with pytest.raises(ConfigError, match="unknown loss 'nope'"):
        SearchConfig.from_dict({"loss": "nope"})


def test_naming_a_loss_or_a_metric_needs_no_torch() -> None:
    """Settings are checked without torch (the CLI answers fast): the registries' names and options included."""
    code = ("import sys\nfrom dggan.search.config import SearchConfig\n"
            "SearchConfig(loss='r1', loss_options={'gamma': 1}, metric='kid1k')\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_a_loss_must_be_a_registered_dataclass_with_its_own_stat_names() -> None:
    class NotADataclass(Loss):
        pass

    with pytest.raises(TypeError, match="must be a dataclass subclass"):
        register_loss("bad")(NotADataclass)

    @dataclasses.dataclass(frozen=True)
    class Clash(Loss):
        stats = ("loss_d",)

    with pytest.raises(ValueError, match=r"stats \['loss_d'\] clash"):
        register_loss("clash")(Clash)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("r1")(dataclasses.dataclass(frozen=True)(type("Other", (Loss,), {})))
    assert "bad" not in loss_names() and "clash" not in loss_names()


def test_r1_training_logs_its_stats_and_regularizes(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    logs: list[dict[str, float]] = []
    trainer = Trainer(tiny_genome, R1_CFG, tiny_data)
    result = trainer.train(progress=False, on_log=logs.append)
    assert result.status == "done" and [row["iteration"] for row in logs] == [4, 8, 12]
    names = {"loss_d", "loss_g", "d_real", "d_fake", "r1", "alpha", "images_per_s", "iteration"}
    assert all(set(row) == names for row in logs) and set(result.stats) == names
    assert all(row["r1"] > 0 and row["loss_d"] > 0 for row in logs)
    # The lazy step trains D: without it (gamma 0) the same seed ends elsewhere.
    plain = Trainer(tiny_genome, dataclasses.replace(R1_CFG, loss_options={"gamma": 0.0}), tiny_data)
    plain.train(progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(trainer.D.parameters(), plain.D.parameters(), strict=True))


def test_r1_resumes_exactly_between_lazy_steps(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                               tmp_path: Path) -> None:
    trainer = Trainer(tiny_genome, R1_CFG, tiny_data)
    trainer.train(until=5, progress=False)  # the last lazy step at 4; the next at 6
    trainer.save(tmp_path / "mid.safetensors")
    expected = [trainer.step().tolist() for _ in range(6)]
    resumed = Trainer.resume(load_checkpoint(tmp_path / "mid.safetensors"), tiny_data)
    assert resumed.iteration == 5
    assert [resumed.step().tolist() for _ in range(6)] == expected  # r1 (held since iteration 4) included
    for (name, a), b in zip(trainer.tensors().items(), resumed.tensors().values(), strict=True):
        assert torch.equal(a, b), name


class _PlainRunner:
    """GraphedStep's stand-in: runs the body it would capture; records the keys."""

    def __init__(self) -> None:
        self.keys: list[object] = []

    def run(self, key: object, body):  # type: ignore[no-untyped-def]
        self.keys.append(key)
        return body()


def test_r1_through_static_inputs_and_an_emulated_graph_equals_eager(tiny_genome: Genome,
                                                                     tiny_data: SyntheticShapes) -> None:
    reset_graphs_in_process()
    eager = Trainer(tiny_genome, R1_CFG, tiny_data)
    static = Trainer(tiny_genome, R1_CFG, tiny_data)
    runner = _PlainRunner()
    static.use_static_inputs(runner)
    graphed = Trainer(tiny_genome, R1_CFG, tiny_data)
    graphed.use_static_inputs(graphed.graphed_step(EmulatedBackend(graphed.graph_state)))
    for _ in range(9):  # warm-up, capture (self-checked), replays; lazy steps at 0, 2, 4, 6, 8
        a, b, c = eager.step(), static.step(), graphed.step()
        assert torch.equal(a, b) and torch.equal(a, c)
    for name, x in eager.tensors().items():
        assert torch.equal(x, static.tensors()[name]) and torch.equal(x, graphed.tensors()[name]), name
    assert len(set(runner.keys)) == 1  # the lazy step never changes the graph's key...
    record = graphed.graph_record()
    assert (record["mode"], record["captures"], record["self_checks_passed"]) == ("graphed", 1, 1)  # ...one capture
    reset_graphs_in_process()


def test_a_tiny_search_with_set_loss_r1(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny(max_steps=1, final_iterations=0).to_dict()))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["search", "--config", str(config), "--run-dir", str(run), "--no-progress",
                                      "--set", "loss=r1", "--set", 'loss_options={"every": 2}'])
    assert result.exit_code == 0, result.output
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
        assert ledger.settings()["loss"] == "r1" and ledger.settings()["loss_options"] == {"every": 2}
    assert rows and all(r.status.value == "done" for r in rows)
    stats = [json.loads(text) for path in (run / "candidates").glob("*/stats.jsonl")
             for text in path.read_text().splitlines()]
    assert stats and all("r1" in row and "gp" not in row for row in stats)
    checkpoint = next((run / "candidates").glob("*/checkpoint.safetensors"))
    assert load_checkpoint(checkpoint, tensors=False).state["config"]["loss"] == "r1"
