from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dggan.data import SyntheticShapes
from dggan.model.actions import Action, apply_action
from dggan.model.genome import Genome
from dggan.training.checkpoint import CheckpointError, load_checkpoint, load_generator
from dggan.training.trainer import ConfigError, TrainConfig, Trainer

CFG = TrainConfig(iterations=12, batch_size=8, log_every=4, seed=7)


def test_losses_are_finite_and_ema_moves(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    trainer = Trainer(tiny_genome, CFG, tiny_data)
    before = [p.clone() for p in trainer.G_ema.parameters()]
    logs: list[dict[str, float]] = []
    result = trainer.train(progress=False, on_log=logs.append)
    assert result.status == "done" and result.iterations == 12
    assert [row["iteration"] for row in logs] == [4, 8, 12]
    assert all(torch.isfinite(torch.tensor(row["loss_d"])) for row in logs)
    names = {"loss_d", "loss_g", "gp", "d_real", "d_fake", "drift", "alpha", "images_per_s", "iteration"}
    assert all(set(row) == names for row in logs)
    for row in logs:  # the logged terms add up to the critic loss (averages over the same iterations)
        assert row["drift"] >= 0  # E[D(real)^2]
        parts = row["d_fake"] - row["d_real"] + CFG.gp_lambda * row["gp"] + CFG.drift * row["drift"]
        assert row["loss_d"] == pytest.approx(parts, rel=1e-4, abs=1e-5)
    after = list(trainer.G_ema.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # EMA lags G: it moved, but not all the way.
    assert any(not torch.equal(a, b) for a, b in zip(after, trainer.G.parameters(), strict=True))


def test_seeded_training_is_deterministic(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    state = torch.get_rng_state()
    a = Trainer(tiny_genome, CFG, tiny_data)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's global RNG is untouched
    torch.manual_seed(123)  # and the trainer does not depend on it
    b = Trainer(tiny_genome, CFG, tiny_data)
    assert [a.step().tolist() for _ in range(3)] == [b.step().tolist() for _ in range(3)]


def make_fading_child(tiny_genome: Genome, tiny_data: SyntheticShapes, tmp_path: Path) -> Trainer:
    parent = Trainer(tiny_genome, dataclasses.replace(CFG, iterations=4), tiny_data)
    parent.train(progress=False)
    parent.save(tmp_path / "parent.safetensors")
    child_genome = apply_action(tiny_genome, Action("grow_res"))
    return Trainer.child_of(load_checkpoint(tmp_path / "parent.safetensors"), child_genome,
                            dataclasses.replace(CFG, iterations=20, fade_fraction=0.5), tiny_data)


def test_resume_mid_fade_in_continues_exactly(tiny_genome: Genome, tiny_data: SyntheticShapes, tmp_path: Path) -> None:
    child = make_fading_child(tiny_genome, tiny_data, tmp_path)
    child.train(until=5, progress=False)
    assert child.fading and child.G.alpha == pytest.approx(0.4)
    child.save(tmp_path / "mid.safetensors")
    expected = [child.step().tolist() for _ in range(8)]  # crosses the end of the fade-in (iteration 10)
    assert not child.fading

    resumed = Trainer.resume(load_checkpoint(tmp_path / "mid.safetensors"), tiny_data)
    # The next step runs at alpha = 5 / 10, and that is what the checkpoint records.
    assert resumed.fading and resumed.iteration == 5 and resumed.G.alpha == pytest.approx(0.5)
    assert load_checkpoint(tmp_path / "mid.safetensors").state["alpha"] == pytest.approx(0.5)
    assert [resumed.step().tolist() for _ in range(8)] == expected
    for a, b in zip(child.G.parameters(), resumed.G.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fade_in_ends_and_old_path_is_dropped(tiny_genome: Genome, tiny_data: SyntheticShapes, tmp_path: Path) -> None:
    child = make_fading_child(tiny_genome, tiny_data, tmp_path)
    assert child.G.alpha == 0.0
    child.train(progress=False)
    assert not child.fading
    child.save(tmp_path / "done.safetensors")
    ckpt = load_checkpoint(tmp_path / "done.safetensors")
    assert ckpt.state["fade_in"] is False
    assert "G.layers.torgb8.weight" not in ckpt.tensors and "D.layers.fromrgb8.weight" not in ckpt.tensors
    assert not any(k.startswith("opt_g.layers.torgb8") for k in ckpt.tensors)
    genome, net = load_generator(tmp_path / "done.safetensors")
    assert net(torch.randn(2, genome.latent_size)).shape == (2, 3, 16, 16)


def test_divergence_is_reported_not_raised(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    trainer = Trainer(tiny_genome, dataclasses.replace(CFG, lr=1e6, check_every=1), tiny_data)
    result = trainer.train(progress=False)
    assert result.status == "diverged"
    assert "non-finite" in result.reason or "exploding" in result.reason
    assert result.iterations < CFG.iterations


def test_checkpoint_is_self_describing(tiny_genome: Genome, tiny_data: SyntheticShapes, tmp_path: Path) -> None:
    trainer = Trainer(tiny_genome, CFG, tiny_data)
    trainer.train(until=3, progress=False)
    path = trainer.save(tmp_path / "c.safetensors")
    ckpt = load_checkpoint(path)
    assert ckpt.genome == tiny_genome
    assert ckpt.state["iteration"] == 3 and ckpt.state["config"]["seed"] == 7
    assert {k.split(".")[0] for k in ckpt.tensors} == {"G", "D", "G_ema", "opt_g", "opt_d", "sampler", "rng"}
    assert not list(tmp_path.glob(".*.tmp"))  # the temp file was renamed into place
    header = load_checkpoint(path, tensors=False)  # metadata only, for callers that need no weights
    assert header.genome == tiny_genome and header.state["iteration"] == 3 and header.tensors == {}


def test_bad_checkpoints_get_clear_errors(tiny_genome: Genome, tiny_data: SyntheticShapes, tmp_path: Path) -> None:
    trainer = Trainer(tiny_genome, CFG, tiny_data)
    path = trainer.save(tmp_path / "c.safetensors")
    data = path.read_bytes()

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors.*truncated or corrupt"):
        load_checkpoint(truncated)

    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")

    # Weights from one genome, metadata claiming another.
    other = apply_action(tiny_genome, Action("grow_g", 3, 32))
    tensors = load_file(str(path))
    mismatched = tmp_path / "mismatch.safetensors"
    meta = {"format": "dggan-checkpoint/1", "genome": other.to_json(indent=None),
            "state": json.dumps(trainer.state())}
    save_file(tensors, str(mismatched), metadata=meta)
    with pytest.raises(CheckpointError, match="mismatch.safetensors.*do not match"):
        load_generator(mismatched)
    with pytest.raises(CheckpointError, match="do not match"):
        Trainer.resume(load_checkpoint(mismatched), tiny_data)
    assert path.read_bytes() == data  # nothing was overwritten


@pytest.mark.parametrize("kwargs,needle", [
    ({"iterations": 0}, "iterations"),
    ({"batch_size": 1}, "batch_size"),
    ({"fade_fraction": 0.0}, "fade_fraction"),
    ({"device": "tpu"}, "device"),
])
def test_bad_train_config(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_data_smaller_than_genome_is_rejected(tiny_genome: Genome) -> None:
    small = SyntheticShapes(num_images=16, resolution=4)
    with pytest.raises(ConfigError, match="below the genome's 8px"):
        Trainer(tiny_genome, CFG, small)


def test_cuda_request_without_cuda_is_a_clear_error(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Trainer(tiny_genome, dataclasses.replace(CFG, device="cuda"), tiny_data)


def test_extending_a_run_mid_fade_in_keeps_alpha(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                                 tmp_path: Path) -> None:
    # Resume at iteration 5 of 20 (fade over 10: alpha 0.5), extend to 40: alpha must stay 0.5, not drop to 0.25.
    child = make_fading_child(tiny_genome, tiny_data, tmp_path)
    child.train(until=5, progress=False)
    child.save(tmp_path / "mid.safetensors")
    resumed = Trainer.resume(load_checkpoint(tmp_path / "mid.safetensors"), tiny_data)
    resumed.extend(40)
    assert resumed.fade_iterations == 10 and resumed.G.alpha == pytest.approx(0.5)
    assert resumed.alpha_at(resumed.iteration) == pytest.approx(0.5)
    assert resumed.alpha_at(10) == 1.0  # the fade still ends at iteration 10
    resumed.train(until=11, progress=False)
    assert not resumed.fading
    result = resumed.train(progress=False)
    assert result.iterations == 40 and result.trained == 29
    with pytest.raises(ConfigError, match="already at 40"):
        resumed.extend(20)


def test_wrong_types_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="lr must be a number"):
        TrainConfig(lr="abc")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lr must be a number, got Infinity"):
        TrainConfig(lr=float("inf"))
    assert TrainConfig.from_dict({"lr": "0.002", "iterations": 5.0}).lr == 0.002
