"""The CUDA-graph step's CPU-testable parts: capture decisions, buffers, settings, and the iteration a graph
records (run on the CPU by a runner that just calls it). The capture itself: benchmarks/gpu_check.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from pathlib import Path

import pytest
import torch

from dggan.data import SyntheticShapes
from dggan.errors import ConfigError
from dggan.execution.executors import mps_running, resolve_candidates_per_gpu
from dggan.model.actions import Action, apply_action
from dggan.model.genome import Genome
from dggan.search.config import SearchConfig
from dggan.training.checkpoint import load_checkpoint
from dggan.training.cuda_graphs import (
    CapturePlan,
    StaticInputs,
    Uploader,
    adam_options,
    channels_last_enabled,
    ema_update,
    graphs_enabled,
)
from dggan.training.trainer import TrainConfig, Trainer, train_together

CFG = TrainConfig(iterations=12, batch_size=8, log_every=4, seed=7)


class PlainRunner:
    """Stands in for GraphedStep on the CPU: runs the body it would capture, and records the keys' network part
    (whether it is fading; the rest is the hyperparameters baked into a graph)."""

    def __init__(self) -> None:
        self.keys: list[Hashable] = []

    def run(self, key: Hashable, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        assert isinstance(key, tuple)
        self.keys.append(key[0])
        return body()


# ---------------------------------------------------------------------- capture decisions
def test_capture_plan_warms_up_captures_once_and_replays() -> None:
    plan = CapturePlan(warmup=3)
    actions = []
    for _ in range(6):
        action, drop = plan.next(True)
        assert not drop
        plan.done(action)
        actions.append(action)
    assert actions == ["eager", "eager", "eager", "capture", "replay", "replay"]


def test_a_new_network_drops_the_graph_and_recaptures() -> None:
    plan = CapturePlan(warmup=2)
    for _ in range(4):
        plan.done(plan.next("fading")[0])
    assert plan.captured
    seen = []
    for _ in range(4):  # the fade-in ended: the old path is gone, the graph recorded it
        action, drop = plan.next("done")
        plan.done(action)
        seen.append((action, drop))
    assert seen == [("eager", True), ("eager", False), ("capture", False), ("replay", False)]


def test_no_warmup_captures_at_once_and_reset_starts_over() -> None:
    plan = CapturePlan(warmup=0)
    assert plan.next(1) == ("capture", False)
    plan.done("capture")
    assert plan.next(1) == ("replay", False)
    plan.reset()  # e.g. optimizer state loaded: the graph read the old tensors
    assert plan.next(1) == ("capture", False)


def test_a_failed_capture_falls_back_for_good() -> None:
    plan = CapturePlan(warmup=1)
    plan.done(plan.next(0)[0])
    assert plan.next(0)[0] == "capture"
    plan.fail("RuntimeError: operation not permitted when stream is capturing")
    assert [plan.next(k)[0] for k in (0, 1, 1)] == ["fallback"] * 3


def test_device_dependent_choices() -> None:
    assert graphs_enabled("cuda", True) and not graphs_enabled("cuda", False) and not graphs_enabled("cpu", True)
    assert adam_options("cpu", False) == adam_options("cpu", True) == {"foreach": True}  # the CPU path as it was
    assert adam_options("cuda", True) == {"fused": True, "capturable": True}
    assert adam_options("cuda", False) == {"fused": True, "capturable": False}
    assert channels_last_enabled("cuda", None, bf16=True) and not channels_last_enabled("cuda", None, bf16=False)
    assert channels_last_enabled("cuda", True, bf16=False) and not channels_last_enabled("cuda", False, bf16=True)
    assert not channels_last_enabled("cpu", True, bf16=True)


# ---------------------------------------------------------------------- buffers
def test_uploader_cycles_its_slots_and_copies() -> None:
    up = Uploader((2, 3), torch.device("cpu"), slots=3)
    out = torch.empty(2, 3)
    for i in range(7):
        batch = torch.full((2, 3), float(i))
        assert up.copy(batch, out) is out and torch.equal(out, batch)
        assert torch.equal(up.host[i % 3], batch)  # the ring slot this copy used
    assert up.slot == 7 % 3


def test_static_noise_is_the_eager_noise() -> None:
    static = StaticInputs(8, 16, (3, 8, 8), torch.device("cpu"))
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(3):
        static.draw_noise(a)
        assert torch.equal(static.z, torch.randn(8, 16, generator=b))
        assert torch.equal(static.eps, torch.rand(8, 1, 1, 1, generator=b))
    assert torch.equal(a.get_state(), b.get_state())  # so checkpoints save the same RNG state


def test_ema_with_a_tensor_weight_is_the_float_one() -> None:
    params = [torch.randn(5, 7), torch.randn(3)]
    ema_a = [torch.randn(5, 7), torch.randn(3)]
    ema_b = [t.clone() for t in ema_a]
    ema_update(ema_a, params, 0.125)
    ema_update(ema_b, params, torch.tensor(0.125))
    assert all(torch.equal(x, y) for x, y in zip(ema_a, ema_b, strict=True))


# ---------------------------------------------------------------------- the recorded iteration, on the CPU
def test_static_input_iterations_equal_eager_ones(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    for rampup in (None, 0.05):  # a fixed EMA weight is baked into the graph; a ramped one is a device tensor
        cfg = dataclasses.replace(CFG, ema_rampup=rampup)
        eager, static = Trainer(tiny_genome, cfg, tiny_data), Trainer(tiny_genome, cfg, tiny_data)
        runner = PlainRunner()
        static.use_static_inputs(runner)
        assert [eager.step().tolist() for _ in range(5)] == [static.step().tolist() for _ in range(5)]
        assert runner.keys == [False] * 5
        for a, b in zip(eager.tensors().values(), static.tensors().values(), strict=True):
            assert torch.equal(a, b)


def fading_child(tiny_genome: Genome, tiny_data: SyntheticShapes, tmp_path: Path) -> tuple[Trainer, Trainer]:
    parent = Trainer(tiny_genome, dataclasses.replace(CFG, iterations=4), tiny_data)
    parent.train(progress=False)
    parent.save(tmp_path / "parent.safetensors")
    ckpt = load_checkpoint(tmp_path / "parent.safetensors")
    genome = apply_action(tiny_genome, Action("grow_res"))
    cfg = dataclasses.replace(CFG, iterations=10, fade_fraction=0.5)
    return Trainer.child_of(ckpt, genome, cfg, tiny_data), Trainer.child_of(ckpt, genome, cfg, tiny_data)


def eager_with_tensor_alpha(trainer: Trainer) -> Trainer:
    """An eager trainer whose G and D read alpha from a 0-dim tensor, as the static-input path does: lerp's
    backward rounds ``1 - alpha`` in float32 for a tensor weight and in double for a float, so only like with
    like can be compared exactly on every CPU."""
    def set_alpha(alpha: float) -> None:
        trainer.G_ema.set_alpha(alpha)
        weight = torch.tensor(min(max(alpha, 0.0), 1.0), device=trainer.device)
        trainer.G.set_alpha(weight)
        trainer.D.set_alpha(weight)

    trainer._set_alpha = set_alpha  # type: ignore[method-assign]
    set_alpha(trainer.G_ema.alpha)
    return trainer


def test_fade_in_through_static_inputs(tiny_genome: Genome, tiny_data: SyntheticShapes, tmp_path: Path) -> None:
    eager, static = fading_child(tiny_genome, tiny_data, tmp_path)
    eager_with_tensor_alpha(eager)
    runner = PlainRunner()
    static.use_static_inputs(runner)
    assert static._static is not None
    assert static.G.alpha is static._static.alpha and static.D.alpha is static._static.alpha  # bound once
    alphas = []
    for _ in range(8):
        a, b = eager.step(), static.step()
        alphas.append(static._static.alpha.item())
        assert torch.equal(a, b)  # the same schedule, the same ops: bit for bit
    assert alphas[:5] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])  # the eager schedule, fade over 5 iterations
    assert eager.G_ema.alpha == static.G_ema.alpha == 1.0 and not static.fading
    for x, y in zip(eager.tensors().values(), static.tensors().values(), strict=True):
        assert torch.equal(x, y)
    # One graph while fading, a new one for the network without the old path (captured again).
    assert runner.keys == [True] * 5 + [False] * 3


def test_float_and_tensor_alpha_agree_to_float32_rounding(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                                          tmp_path: Path) -> None:
    """A float alpha (the eager default) and a tensor alpha differ only by float32 rounding in lerp's backward:
    bounded by a few ulps per step, compounded over 8 Adam steps, so a loose bound that any CPU meets."""
    eager, tensor_alpha = fading_child(tiny_genome, tiny_data, tmp_path)
    eager_with_tensor_alpha(tensor_alpha)
    for _ in range(8):
        a, b = eager.step(), tensor_alpha.step()
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)


def test_exact_resume_with_static_inputs(tiny_genome: Genome, tiny_data: SyntheticShapes, tmp_path: Path) -> None:
    _, child = fading_child(tiny_genome, tiny_data, tmp_path)
    child.use_static_inputs(PlainRunner())
    child.train(until=3, progress=False)
    child.save(tmp_path / "mid.safetensors")
    expected = [child.step().tolist() for _ in range(5)]  # crosses the end of the fade-in
    resumed = Trainer.resume(load_checkpoint(tmp_path / "mid.safetensors"), tiny_data)
    resumed.use_static_inputs(PlainRunner())
    assert resumed._static is not None and resumed._static.alpha.item() == pytest.approx(0.6)
    assert [resumed.step().tolist() for _ in range(5)] == expected


def test_cpu_ignores_the_cuda_settings(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    trainer = Trainer(tiny_genome, dataclasses.replace(CFG, cuda_graphs=True, channels_last=True), tiny_data)
    assert not trainer.graphed and trainer._static is None and trainer._upload is None
    assert trainer.opt_g.defaults["foreach"] and not trainer.opt_g.defaults["fused"]
    assert all(p.is_contiguous() for p in trainer.D.parameters())


def test_resume_takes_runtime_settings_from_the_caller(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                                       tmp_path: Path) -> None:
    trainer = Trainer(tiny_genome, CFG, tiny_data)
    trainer.save(tmp_path / "c.safetensors")
    resumed = Trainer.resume(load_checkpoint(tmp_path / "c.safetensors"), tiny_data,
                             runtime={"cuda_graphs": False, "seed": 99})  # seed is not a runtime setting
    assert resumed.config.cuda_graphs is False and resumed.config.seed == CFG.seed


# ---------------------------------------------------------------------- several candidates
def test_train_together_equals_training_one_after_another(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    configs = [CFG, dataclasses.replace(CFG, seed=8, iterations=7), dataclasses.replace(CFG, lr=1e6, check_every=1)]
    alone = [Trainer(tiny_genome, cfg, tiny_data) for cfg in configs]
    results_alone = [t.train(progress=False) for t in alone]
    together = [Trainer(tiny_genome, cfg, tiny_data) for cfg in configs]
    results = train_together([(t, {"progress": False}) for t in together])
    for a, b, ra, rb in zip(alone, together, results_alone, results, strict=True):
        assert not isinstance(rb, Exception)
        assert (ra.status, ra.iterations, ra.stats.get("loss_d")) == (rb.status, rb.iterations, rb.stats.get("loss_d"))
        for x, y in zip(a.tensors().values(), b.tensors().values(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)  # bit for bit (NaN: the diverged one)
    assert [r.status for r in results] == ["done", "done", "diverged"]  # type: ignore[union-attr]


def test_one_failing_candidate_does_not_stop_the_others(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = Trainer(tiny_genome, CFG, tiny_data), Trainer(tiny_genome, CFG, tiny_data)

    def boom() -> torch.Tensor:
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(bad, "_step", boom)
    results = train_together([(good, {"progress": False}), (bad, {"progress": False})])
    assert results[0].status == "done" and good.iteration == CFG.iterations  # type: ignore[union-attr]
    assert isinstance(results[1], RuntimeError) and "out of memory" in str(results[1])


def test_candidates_per_gpu_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path))
    assert not mps_running()
    assert resolve_candidates_per_gpu(None) == 1  # processes without MPS only take turns on the GPU
    assert resolve_candidates_per_gpu(None, "streams") == 4
    assert resolve_candidates_per_gpu(3) == 3
    (tmp_path / "control").touch()  # the MPS control daemon's pipe
    assert mps_running() and resolve_candidates_per_gpu(None) == 4


@pytest.mark.parametrize("overrides,needle", [
    ({"candidates_per_gpu": 0}, "candidates_per_gpu"),
    ({"gpu_sharing": "threads"}, "gpu_sharing"),
    ({"gpu_sharing": "streams", "executor": "ray"}, "local executor"),
    ({"cuda_graphs": "maybe"}, "cuda_graphs must be true/false"),
])
def test_bad_gpu_settings(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        SearchConfig.from_dict(overrides)


def test_gpu_settings_reach_the_candidates() -> None:
    config = SearchConfig.from_dict({"cuda_graphs": False, "cudnn_benchmark": False, "channels_last": True,
                                     "graph_self_check": False})
    train = config.train_config(10)
    assert (train.cuda_graphs, train.cudnn_benchmark, train.channels_last) == (False, False, True)
    assert train.graph_self_check is False
    assert TrainConfig().cuda_graphs is True and TrainConfig().channels_last is None
    assert TrainConfig().graph_self_check is True and SearchConfig().graph_self_check is True
