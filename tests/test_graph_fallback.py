"""GraphedStep's own logic on the CPU, driven through ``EmulatedBackend`` (a capture that records nothing, a
replay that runs the body again): a capture or first replay that raises anything falls back to eager with the
stream restored and the device synchronised first; the self-check catches a graph that computes something
else; a changed learning rate recaptures; the memory estimate counts what graphs hold."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
import torch

from dggan.data import SyntheticShapes
from dggan.errors import ConfigError
from dggan.model.genome import Genome
from dggan.model.memory import check_fits, estimate
from dggan.training.cuda_graphs import (
    Backend,
    CudaBackend,
    EmulatedBackend,
    EmulatedGraph,
    first_mismatch,
    graphs_off_in_process,
)
from dggan.training.trainer import TrainConfig, Trainer

CFG = TrainConfig(iterations=10, batch_size=8, log_every=5, seed=11)


pytestmark = pytest.mark.usefixtures("graphs_allowed_again")  # tests/conftest.py


def emulated(genome: Genome, data: SyntheticShapes, cfg: TrainConfig = CFG) -> tuple[Trainer, EmulatedBackend]:
    """A trainer whose iterations go through a real GraphedStep on the emulated backend; every call of the
    iteration's body is logged with the stream current at the time."""
    trainer = Trainer(genome, cfg, data)
    backend = EmulatedBackend(trainer.graph_state)
    trainer.use_static_inputs(trainer.graphed_step(backend))
    update = trainer._update

    def logged(*args, **kwargs):  # type: ignore[no-untyped-def]
        backend.log.append(("body", backend.current))
        return update(*args, **kwargs)

    trainer._update = logged  # type: ignore[method-assign]
    return trainer, backend


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for (name, x), y in zip(a.tensors().items(), b.tensors().values(), strict=True):
        assert torch.equal(x, y), name


def events(backend: EmulatedBackend) -> list[str]:
    return [f"{what}@{stream.name}" for what, stream in backend.log]


@pytest.mark.parametrize("self_check", [True, False])
def test_graphed_training_equals_eager(tiny_genome: Genome, tiny_data: SyntheticShapes, self_check: bool) -> None:
    cfg = dataclasses.replace(CFG, graph_self_check=self_check)
    eager = Trainer(tiny_genome, cfg, tiny_data)
    graphed, backend = emulated(tiny_genome, tiny_data, cfg)
    for _ in range(8):
        assert torch.equal(eager.step(), graphed.step())
    assert_same_state(eager, graphed)
    record = graphed.graph_record()
    assert record == {"mode": "graphed", "captures": 1, "self_checks_passed": int(self_check),
                      "self_check": self_check, "why": ""}
    log = events(backend)
    # Warm-up runs on the stream the graph is then captured on (make_graphed_callables' recipe).
    assert log[:4] == ["body@side1"] * 3 + ["capture_begin@side1"]
    if self_check:  # replay on a snapshot, put back, the same iteration eagerly on the capture stream
        assert log[4:9] == ["body@side1", "capture_end@side1", "replay@default", "body@default", "body@side1"]
    assert log[-1] == "body@default" and log[-2] == "replay@default"


@pytest.mark.parametrize("error", [RuntimeError("operation not permitted when stream is capturing"),
                                   ValueError("odd"), AssertionError("capture invalidated")])
def test_capture_end_raising_restores_the_stream_and_falls_back(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                                                error: Exception) -> None:
    eager = Trainer(tiny_genome, CFG, tiny_data)
    graphed, backend = emulated(tiny_genome, tiny_data)
    backend.fail_end = error
    with pytest.warns(RuntimeWarning) as caught:
        for _ in range(6):
            assert torch.equal(eager.step(), graphed.step())
    assert [str(w.message).split(":")[0] for w in caught] == [
        "CUDA graphs off for this trainer, training continues eagerly", f"CUDA graphs off for the rest of process"
        f" {os.getpid()}"]  # this trainer's, then the process's (once)
    assert_same_state(eager, graphed)
    assert backend.current is backend.default  # the capture stream did not stay current
    log = events(backend)
    end = log.index("capture_end@side1")
    # The device finishes the capture stream's work, then the iteration runs eagerly on the trainer's stream.
    assert log[end + 1:end + 3] == ["synchronize@default", "body@default"]
    assert "replay@default" not in log
    record = graphed.graph_record()
    assert record["mode"] == "fell back" and record["captures"] == 0
    assert record["why"] == f"capture failed: {type(error).__name__}: {error}" == graphs_off_in_process()


def test_a_body_that_raises_in_capture_is_the_reported_error(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    graphed, backend = emulated(tiny_genome, tiny_data)
    backend.fail_end = RuntimeError("capture invalidated")  # what CUDA says after an op it refused
    calls = {"n": 0}
    update = graphed._update

    def refuses_in_capture(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:  # the fourth body call is the capture's
            raise NotImplementedError("an op that cannot be captured")
        return update(*args, **kwargs)

    graphed._update = refuses_in_capture  # type: ignore[method-assign]
    with pytest.warns(RuntimeWarning):
        for _ in range(5):
            graphed.step()
    assert backend.current is backend.default
    assert graphed.graph_record()["why"] == "capture failed: NotImplementedError: an op that cannot be captured"


@pytest.mark.parametrize("self_check", [True, False])
def test_a_first_replay_that_raises_falls_back(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                               self_check: bool) -> None:
    cfg = dataclasses.replace(CFG, graph_self_check=self_check)
    eager = Trainer(tiny_genome, cfg, tiny_data)
    graphed, backend = emulated(tiny_genome, tiny_data, cfg)
    backend.fail_replay = KeyError("cudaGraphLaunch")
    with pytest.warns(RuntimeWarning):
        for _ in range(6):
            assert torch.equal(eager.step(), graphed.step())
    assert_same_state(eager, graphed)
    assert backend.current is backend.default
    record = graphed.graph_record()
    assert record["mode"] == "fell back" and record["why"].startswith("first replay failed: KeyError")


def test_the_self_check_catches_a_wrong_replay(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    eager = Trainer(tiny_genome, CFG, tiny_data)
    graphed, backend = emulated(tiny_genome, tiny_data)
    weight = next(graphed.G.parameters())
    backend.corrupt_replay = lambda: weight.data.add_(1e-3)  # a graph that computes something else
    with pytest.warns(RuntimeWarning, match="self-check failed"):
        for _ in range(8):
            assert torch.equal(eager.step(), graphed.step())
    assert_same_state(eager, graphed)  # the wrong replay was undone; training went on eagerly
    record = graphed.graph_record()
    assert record["mode"] == "fell back" and record["self_checks_passed"] == 0
    assert record["why"].startswith("self-check failed: G.") and "differs from eager by up to 0.001" in record["why"]
    assert events(backend).count("replay@default") == 1  # never replayed again


def test_without_the_self_check_a_wrong_replay_goes_unseen(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    """What the self-check costs nothing to prevent: the same wrong graph, trusted."""
    graphed, backend = emulated(tiny_genome, tiny_data, dataclasses.replace(CFG, graph_self_check=False))
    weight = next(graphed.G.parameters())
    backend.corrupt_replay = lambda: weight.data.add_(1e-3)
    for _ in range(6):
        graphed.step()
    assert graphed.graph_record()["mode"] == "graphed"


def test_first_mismatch_tolerances() -> None:
    a = {"x": torch.ones(3), "n": torch.tensor(3)}
    assert first_mismatch(a, {"x": torch.ones(3) + 1e-7, "n": torch.tensor(3)}, 1e-4, 1e-5) is None
    assert first_mismatch(a, {"x": torch.ones(3) + 1e-7, "n": torch.tensor(3)}, 0.0, 0.0) is not None  # exact
    assert "n differs" in str(first_mismatch(a, {"x": torch.ones(3), "n": torch.tensor(4)}, 1e-4, 1e-5))
    nan = first_mismatch(a, {"x": torch.tensor([1.0, float("nan"), 1.0]), "n": torch.tensor(3)}, 1e-4, 1e-5)
    assert nan is not None and "inf" in nan


def test_a_changed_learning_rate_recaptures(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    """Adam's lr is baked into a captured graph: changing it mid-run must not replay the old one."""
    eager = Trainer(tiny_genome, CFG, tiny_data)
    graphed, _ = emulated(tiny_genome, tiny_data)
    for step in range(10):
        if step == 5:
            for trainer in (eager, graphed):
                for group in trainer.opt_g.param_groups:
                    group["lr"] = 5e-4
        assert torch.equal(eager.step(), graphed.step())
    record = graphed.graph_record()
    assert record["captures"] == 2 and record["self_checks_passed"] == 2


def test_graphed_training_records_how_it_ran(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    graphed, backend = emulated(tiny_genome, tiny_data)
    assert graphed.train(progress=False).graphs["mode"] == "graphed"
    cpu = Trainer(tiny_genome, CFG, tiny_data).train(progress=False)
    assert cpu.graphs == {"mode": "eager", "captures": 0, "self_checks_passed": 0, "self_check": False,
                          "why": "CUDA graphs are CUDA only"}


def test_self_check_cost(tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    """The self-check's work: one eager iteration more per capture (plus two snapshots and a comparison);
    the time it adds to the capture iteration is printed with -s (benchmarks: README's "On a GPU")."""
    bodies, capture_seconds, steady = {}, {}, []
    for check in (False, True):
        trainer, backend = emulated(tiny_genome, tiny_data, dataclasses.replace(CFG, graph_self_check=check))
        for _ in range(3):
            trainer.step()
        start = time.perf_counter()
        trainer.step()  # the capture
        capture_seconds[check] = time.perf_counter() - start
        for _ in range(3):
            start = time.perf_counter()
            trainer.step()
            steady.append(time.perf_counter() - start)
        bodies[check] = events(backend).count("body@side1") + events(backend).count("body@default")
    assert bodies[True] == bodies[False] + 1
    extra = capture_seconds[True] - capture_seconds[False]
    print(f"self-check: {extra * 1e3:.1f} ms once per capture, {extra / min(steady):.2f} iterations' time")


def test_memory_estimate_counts_graphs(tiny_genome: Genome) -> None:
    plain = estimate(tiny_genome, 16)
    graphed = estimate(tiny_genome, 16, graphs=True)
    checked = estimate(tiny_genome, 16, graphs=True, self_check=True)
    assert plain.graphs == 0 and graphed.graphs > plain.activations and checked.graphs > graphed.graphs
    assert "CUDA graphs" in str(checked) and "CUDA graphs" not in str(plain)
    limit_gb = (plain.total + checked.graphs / 2) / 2**30  # fits eagerly, not with graphs
    check_fits(tiny_genome, 16, "cpu", limit_gb)
    with pytest.raises(ConfigError, match=r"CUDA graphs add .* GiB \(it would fit without them\), cuda_graphs: false"):
        check_fits(tiny_genome, 16, "cuda", limit_gb, graphs=True, self_check=True)


def test_the_emulation_speaks_the_cuda_backends_protocol() -> None:
    """What the CPU tests drive is what a GPU runs: the same backend methods, and the graph methods GraphedStep
    calls exist on torch.cuda.CUDAGraph and take no required argument (it calls them bare)."""
    import inspect

    wanted = {name for name in vars(Backend) if not name.startswith("_")}
    assert wanted <= set(dir(CudaBackend)) and wanted <= set(dir(EmulatedBackend))
    for name in ("capture_begin", "capture_end", "replay", "reset"):
        method = getattr(torch.cuda.CUDAGraph, name)
        required = [p for p in list(inspect.signature(method).parameters.values())[1:]
                    if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        assert not required, (name, required)
        assert callable(getattr(EmulatedGraph, name))
