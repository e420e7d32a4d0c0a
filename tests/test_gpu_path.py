"""The GPU path's memory and sharing, on the CPU (issue 32): a finished trainer is freed by reference counting alone
(eager, graphed through ``EmulatedBackend``, and in the worker); a failed capture turns graphs off for the whole
process and ``empty_cache()`` is never called after it; a candidate that runs out of memory while sharing its GPU is
retried alone before it counts as failed, and ``check_fits`` counts the sharing; the local executor honours
``cuda:N``; batches go up as uint8 and are made float on the device, bit for bit; TF32 is a setting, off."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

import dggan.execution.worker as worker_mod
import dggan.training.cuda_graphs as cuda_graphs
import dggan.training.trainer as trainer_mod
from dggan.data import SyntheticShapes
from dggan.data.base import to_float
from dggan.errors import ConfigError
from dggan.execution.executors import LocalExecutor, RayExecutor
from dggan.execution.state import Status
from dggan.execution.worker import CandidateResult, CandidateTask, run_candidate, run_candidates
from dggan.model.actions import Action, apply_action
from dggan.model.genome import Genome
from dggan.model.memory import check_fits, estimate
from dggan.search.config import RUNTIME_SETTINGS, SearchConfig
from dggan.training.checkpoint import load_checkpoint
from dggan.training.config import RUNTIME_FIELDS
from dggan.training.cuda_graphs import (
    EmulatedBackend,
    RawBatchSampler,
    graphs_enabled,
    graphs_off_in_process,
    release_cached_memory,
    set_tf32,
)
from dggan.training.trainer import TrainConfig, Trainer

CFG = TrainConfig(iterations=6, batch_size=8, log_every=3, seed=5)
CAPTURE = RuntimeError("operation not permitted when stream is capturing")
STICKY = "CUDA error: an illegal memory access was encountered (simulated)"


pytestmark = pytest.mark.usefixtures("graphs_allowed_again")  # tests/conftest.py


@pytest.fixture
def no_cyclic_gc(tiny_genome: Genome, tiny_data: SyntheticShapes) -> Iterator[None]:
    """Python's cyclic collector off: only reference counting frees anything (after one trainer has been built, as
    in any process that trains: the first optimizer's lazy imports are collected once by the trainer itself)."""
    Trainer(tiny_genome, CFG, tiny_data)
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def tracked(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref[Trainer]]:
    """A weak reference to every trainer built during the test."""
    refs: list[weakref.ref[Trainer]] = []
    init = Trainer.__init__

    def tracking(self: Trainer, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        refs.append(weakref.ref(self))

    monkeypatch.setattr(Trainer, "__init__", tracking)
    return refs


@pytest.fixture
def emulated_graphs(monkeypatch: pytest.MonkeyPatch) -> list[EmulatedBackend]:
    """Graphs "on" on the CPU wherever a trainer is built (the worker's too), through the emulated backend; the
    backends made, in order, so a test can inject faults into the next one."""
    backends: list[EmulatedBackend] = []
    monkeypatch.setattr(trainer_mod, "graphs_enabled",
                        lambda device_type, flag: flag and graphs_off_in_process() is None)
    step = Trainer.graphed_step

    def graphed_step(self: Trainer, backend: Any = None) -> Any:
        backend = EmulatedBackend(self.graph_state)
        backends.append(backend)
        return step(self, backend)

    monkeypatch.setattr(Trainer, "graphed_step", graphed_step)
    return backends


def emulated(genome: Genome, data: SyntheticShapes, cfg: TrainConfig = CFG) -> tuple[Trainer, EmulatedBackend]:
    trainer = Trainer(genome, cfg, data)
    backend = EmulatedBackend(trainer.graph_state)
    trainer.use_static_inputs(trainer.graphed_step(backend))
    return trainer, backend


def task(tmp_path: Path, genome: Genome, cid: int = 1, **train: Any) -> CandidateTask:
    return CandidateTask(candidate_id=cid, genome_json=genome.to_json(), parent_checkpoint=None,
                         out_dir=str(tmp_path / f"c{cid:05d}"),
                         train=TrainConfig(**{"iterations": 6, "batch_size": 8, "log_every": 3, "device": "cpu",
                                              **train}),
                         data="synthetic:n=64,res=16", metric="swd32", sample_grid=0,
                         eval_options={"batch_size": 32})


# ---------------------------------------------------------------------- 1. freed by reference counting alone
@pytest.mark.parametrize("how", ["eager", "graphed", "graphed, capture failed", "graphed, fading child"])
def test_a_finished_trainer_is_freed_by_reference_counting(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                                           tmp_path: Path, no_cyclic_gc: None, how: str) -> None:
    if how == "graphed, fading child":
        parent = Trainer(tiny_genome, CFG, tiny_data)
        parent.train(progress=False)
        parent.save(tmp_path / "parent.safetensors")
        del parent
        ckpt = load_checkpoint(tmp_path / "parent.safetensors")
        trainer = Trainer.child_of(ckpt, apply_action(tiny_genome, Action("grow_res")),
                                   dataclasses.replace(CFG, iterations=10, fade_iterations=4), tiny_data)
        backend = EmulatedBackend(trainer.graph_state)
        trainer.use_static_inputs(trainer.graphed_step(backend))
    elif how == "eager":
        trainer = Trainer(tiny_genome, CFG, tiny_data)
    else:
        trainer, backend = emulated(tiny_genome, tiny_data)
        if how == "graphed, capture failed":
            backend.fail_end = CAPTURE
    with pytest.warns(RuntimeWarning) if how == "graphed, capture failed" else contextlib.nullcontext():
        result = trainer.train(progress=False)
    expected = {"eager": "eager", "graphed": "graphed", "graphed, capture failed": "fell back",
                "graphed, fading child": "graphed"}[how]
    assert result.graphs["mode"] == expected
    if how == "graphed, fading child":
        assert result.graphs["captures"] == 2  # a graph while fading, one after: the first one was dropped
    ref = weakref.ref(trainer)
    weights = weakref.ref(next(trainer.G.parameters()))
    del trainer, result
    assert ref() is None and weights() is None  # at once: nothing but its last reference held it


def test_the_first_trainer_of_a_process_is_freed_too(tmp_path: Path) -> None:
    """The first optimizer of a process imports torch._dynamo, whose torch.fx.wrap leaves its callers' frames in a
    cycle: in a fresh process, the first trainer too must die with its last reference."""
    code = ("import gc, weakref\n"
            "gc.disable()\n"
            "from dggan.data import SyntheticShapes\n"
            "from dggan.model.genome import Genome, constant_channels\n"
            "from dggan.training.trainer import TrainConfig, Trainer\n"
            "trainer = Trainer(Genome.base(latent_size=8, channels=constant_channels(8, 8)),"
            " TrainConfig(iterations=2, batch_size=4), SyntheticShapes(8, 8, seed=0))\n"
            "ref = weakref.ref(trainer)\n"
            "del trainer\n"
            "print('dead' if ref() is None else 'alive')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "dead", out.stdout + out.stderr[-2000:]


def test_the_worker_frees_every_candidate_before_it_returns(tmp_path: Path, tiny_genome: Genome,
                                                            no_cyclic_gc: None, tracked: list[weakref.ref[Trainer]],
                                                            emulated_graphs: list[EmulatedBackend],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Graphed candidates through the worker: one plain, one whose graphed training fails (kept as an error, then
    retried eagerly), one out of memory, two trained together (one of them failing): when the device memory is
    released after each, and when the worker returns, every trainer it built is gone."""
    alive_at_release: list[int] = []
    monkeypatch.setattr(worker_mod, "release_cached_memory",
                        lambda: alive_at_release.append(sum(r() is not None for r in tracked)) or True)
    alive_when_scored: list[int] = []
    conclude = worker_mod._conclude

    def noting(job: Any, outcome: Any) -> CandidateResult:
        alive_when_scored.append(sum(r() is not None for r in tracked))
        return conclude(job, outcome)

    monkeypatch.setattr(worker_mod, "_conclude", noting)
    step = Trainer._step

    def faulty(self: Trainer) -> torch.Tensor:
        if self.config.seed == 2 and self.graphed:
            raise RuntimeError(STICKY)
        if self.config.seed == 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return step(self)

    monkeypatch.setattr(Trainer, "_step", faulty)
    results = [run_candidate(task(tmp_path, tiny_genome, cid, seed=cid, cuda_graphs=True)) for cid in (1, 2, 3)]
    results += run_candidates([task(tmp_path, tiny_genome, 4, seed=4, cuda_graphs=True),
                               task(tmp_path, tiny_genome, 5, seed=3, cuda_graphs=True)])
    assert [r.status for r in results] == [Status.DONE, Status.DONE, Status.FAILED, Status.DONE, Status.FAILED]
    assert results[1].extra["graphs"]["mode"] == "retried eagerly"
    assert len(tracked) == 6 and all(r() is None for r in tracked)  # candidate 2 built two trainers
    # Released after each candidate (and once before the eager retry allocated), never with a trainer alive.
    assert alive_at_release == [0, 0, 0, 0, 0]
    # Each scored with only its own trainer alive (the failed graphed one gone before the retry; the pair's first
    # gone before the second, whose error held the whole pair), both of the pair while the first is scored.
    assert alive_when_scored == [1, 1, 1, 2, 1]


# ---------------------------------------------------------------------- 2. a failed capture: graphs off for the process
def test_a_failed_capture_turns_graphs_off_for_the_process(tiny_genome: Genome, tiny_data: SyntheticShapes,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    emptied: list[bool] = []
    monkeypatch.setattr(cuda_graphs, "cuda_in_use", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    assert release_cached_memory() and emptied == [True]  # while graphs work, the cache goes back

    first, backend = emulated(tiny_genome, tiny_data)
    backend.fail_end = CAPTURE
    with pytest.warns(RuntimeWarning) as caught:
        first.train(progress=False)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("CUDA graphs off for this trainer") for m in messages)
    loud = [m for m in messages if "CUDA graphs off for the rest of process" in m]
    assert len(loud) == 1 and "\n" not in loud[0] and f"capture failed: RuntimeError: {CAPTURE}" in loud[0]
    assert graphs_off_in_process() == f"capture failed: RuntimeError: {CAPTURE}"
    assert not graphs_enabled("cuda", True)  # a trainer built on CUDA from now on is eager

    second, backend2 = emulated(tiny_genome, tiny_data)  # one that would capture: it never begins
    assert second.train(progress=False).status == "done"
    assert not any(event == "capture_begin" for event, _ in backend2.log)
    why = second.graph_record()["why"]
    assert why == f"CUDA graphs are off in this process: capture failed: RuntimeError: {CAPTURE}"
    assert not release_cached_memory() and emptied == [True]  # never empty_cache() after it


def test_no_empty_cache_in_the_eager_retry_after_a_failed_capture(tmp_path: Path, tiny_genome: Genome,
                                                                   emulated_graphs: list[EmulatedBackend],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture fails (the trainer falls back), then its training raises (a sticky error): the worker retries it
    eagerly, and neither the retry nor the end of the candidate calls empty_cache(); without the failed capture
    both do."""
    emptied: list[int] = []
    monkeypatch.setattr(cuda_graphs, "cuda_in_use", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    step = Trainer._step

    def sticky_after_a_while(self: Trainer) -> torch.Tensor:
        if self.graphed and self.iteration == 5:
            raise RuntimeError(STICKY)
        return step(self)

    monkeypatch.setattr(Trainer, "_step", sticky_after_a_while)
    result = run_candidate(task(tmp_path, tiny_genome, 1, cuda_graphs=True))  # graphs work: the control
    assert result.extra["graphs"]["mode"] == "retried eagerly" and len(emptied) == 2
    emptied.clear()
    original = cuda_graphs.EmulatedBackend.new_graph

    def failing_graph(self: EmulatedBackend) -> Any:
        self.fail_end = CAPTURE
        return original(self)

    monkeypatch.setattr(cuda_graphs.EmulatedBackend, "new_graph", failing_graph)
    with pytest.warns(RuntimeWarning) as caught:
        result = run_candidate(task(tmp_path, tiny_genome, 2, cuda_graphs=True))
    assert any("CUDA graphs off for the rest of process" in str(w.message) for w in caught)
    assert result.status == Status.DONE and result.extra["graphs"]["mode"] == "retried eagerly", result.error
    assert graphs_off_in_process() is not None and emptied == []


# ---------------------------------------------------------------------- 4. sharing a GPU
def test_check_fits_counts_the_sharing(tiny_genome: Genome, monkeypatch: pytest.MonkeyPatch) -> None:
    need = estimate(tiny_genome, 16).total
    monkeypatch.setattr("dggan.model.memory.device_memory", lambda device: int(need * 3))
    check_fits(tiny_genome, 16, "cuda:0")
    check_fits(tiny_genome, 16, "cuda:0", share=2)  # 1.5x what it needs
    with pytest.raises(ConfigError, match=r"its 1/4 share of cuda:0's .* GiB \(.* GiB: 4 candidates share the"):
        check_fits(tiny_genome, 16, "cuda:0", share=4)
    check_fits(tiny_genome, 16, "cuda:0", need * 2 / 2**30, share=4)  # an explicit limit is each candidate's own


def oom_while(condition: Callable[[Trainer], bool]) -> Callable[[Trainer], torch.Tensor]:
    step = Trainer._step

    def maybe_oom(self: Trainer) -> torch.Tensor:
        if condition(self):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return step(self)

    return maybe_oom


def test_out_of_memory_while_sharing_asks_to_run_alone(tmp_path: Path, tiny_genome: Genome,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Trainer, "_step", oom_while(lambda trainer: worker_mod._WORKER_SHARE > 1))
    monkeypatch.setattr(worker_mod, "_WORKER_SHARE", 2)
    shared = run_candidate(task(tmp_path, tiny_genome))
    assert shared.retry_alone and not shared.retry and shared.status == Status.FAILED
    assert shared.error is not None and shared.error.startswith("OutOfMemoryError: CUDA out of memory")
    monkeypatch.setattr(Trainer, "_step", oom_while(lambda trainer: True))
    alone = run_candidate(dataclasses.replace(task(tmp_path, tiny_genome), alone=True))
    assert alone.status == Status.FAILED and not alone.retry_alone and not alone.retry
    assert alone.error is not None and alone.error.endswith(
        "(with the GPU to itself, after running out of memory while sharing it)")
    monkeypatch.setattr(worker_mod, "_WORKER_SHARE", 1)  # not sharing: out of memory is the candidate's failure
    assert not run_candidate(task(tmp_path, tiny_genome, 2)).retry_alone


def test_a_candidate_too_big_for_its_share_runs_alone(tmp_path: Path, tiny_genome: Genome,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    need = estimate(tiny_genome, 8).total
    monkeypatch.setattr("dggan.model.memory.device_memory", lambda device: int(need * 1.5))
    monkeypatch.setattr(worker_mod, "_WORKER_SHARE", 2)
    shared = run_candidate(task(tmp_path, tiny_genome))
    assert shared.retry_alone and "its 1/2 share of cpu's" in str(shared.error)
    assert not (tmp_path / "c00001" / "checkpoint.safetensors").exists()  # refused before anything was built
    alone = run_candidate(dataclasses.replace(task(tmp_path, tiny_genome), alone=True))
    assert alone.status == Status.DONE, alone.error


class InlinePool(ThreadPoolExecutor):
    """The local executor's pool, in this process (so monkeypatches reach the worker); records what it ran."""

    def __init__(self) -> None:
        super().__init__(1)
        self.submitted: list[list[CandidateTask]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted.append(list(args[0]))
        return super().submit(fn, *args, **kwargs)


def test_the_local_executor_retries_alone_after_the_batch(tmp_path: Path, tiny_genome: Genome,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Two candidates share a GPU (emulated: the worker is told it shares); one runs out of memory while sharing:
    the other's result comes first, then that one runs again alone, and succeeds. One that runs out alone too
    fails, tried twice, no more."""
    monkeypatch.setattr(worker_mod, "_WORKER_SHARE", 2)
    monkeypatch.setattr(Trainer, "_step", oom_while(
        lambda trainer: trainer.config.seed in (1, 3) and worker_mod._WORKER_SHARE > 1 and not alone_now[0]))
    alone_now = [False]
    run = worker_mod.run_candidates

    def run_and_note(tasks: list[CandidateTask]) -> list[CandidateResult]:
        alone_now[0] = tasks[0].alone
        return run(tasks)

    executor = LocalExecutor(workers=1, device="cpu")
    pool = InlinePool()
    monkeypatch.setattr(executor, "_make_pool", lambda: pool)
    monkeypatch.setattr("dggan.execution.executors.run_candidates", run_and_note)
    try:
        results = list(executor.run([task(tmp_path, tiny_genome, 1, seed=1), task(tmp_path, tiny_genome, 2, seed=2)]))
    finally:
        executor.close()
    assert [(r.candidate_id, r.status, r.retry_alone) for r in results] == [(2, Status.DONE, False),
                                                                            (1, Status.DONE, False)]
    assert [[(t.candidate_id, t.alone) for t in group] for group in pool.submitted] == [
        [(1, False)], [(2, False)], [(1, True)]]

    monkeypatch.setattr(Trainer, "_step", oom_while(lambda trainer: True))
    executor = LocalExecutor(workers=1, device="cpu")
    pool = InlinePool()
    monkeypatch.setattr(executor, "_make_pool", lambda: pool)
    try:
        results = list(executor.run([task(tmp_path, tiny_genome, 3, seed=3)]))
    finally:
        executor.close()
    assert [(r.status, r.retry_alone, r.retry) for r in results] == [(Status.FAILED, False, False)]
    assert len(pool.submitted) == 2 and "with the GPU to itself" in str(results[0].error)


@dataclasses.dataclass(eq=False)
class Ref:
    """An object ref (hashable by identity, as Ray's are)."""

    value: CandidateResult


class FakeRay:
    """Just what ``RayExecutor.run`` asks of Ray: tasks run when submitted; ``options`` records num_gpus."""

    class exceptions:  # noqa: N801 (ray.exceptions)
        RayError = RuntimeError

    def __init__(self, outcome: Callable[[CandidateTask, int], CandidateResult]):
        self.outcome = outcome
        self.calls: list[tuple[int, bool, int, float | None]] = []
        self._num_gpus: float | None = None

    def remote(self, task: CandidateTask, device: str, share: int, search_path: tuple[str, ...] = ()) -> Ref:
        assert search_path == ()  # the driver's module search path travels only when a task names plugins
        self.calls.append((task.candidate_id, task.alone, share, self._num_gpus))
        self._num_gpus = None
        return Ref(self.outcome(task, share))

    def options(self, num_gpus: float) -> FakeRay:
        self._num_gpus = num_gpus
        return self

    def wait(self, refs: list[Any], num_returns: int) -> tuple[list[Any], list[Any]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Ref) -> CandidateResult:
        return ref.value


def test_the_ray_executor_retries_alone_on_a_whole_gpu(tmp_path: Path, tiny_genome: Genome) -> None:
    def outcome(task: CandidateTask, share: int) -> CandidateResult:
        oom = task.candidate_id == 1 and share > 1
        return CandidateResult(task.candidate_id, Status.FAILED if oom else Status.DONE, retry_alone=oom)

    ray = FakeRay(outcome)
    executor = object.__new__(RayExecutor)
    executor._ray, executor._remote, executor._device, executor.share = ray, ray, "cuda", 4
    results = list(executor.run([task(tmp_path, tiny_genome, 1), task(tmp_path, tiny_genome, 2)]))
    assert sorted((r.candidate_id, r.status) for r in results) == [(1, Status.DONE), (2, Status.DONE)]
    assert ray.calls == [(1, False, 4, None), (2, False, 4, None), (1, True, 1, 1)]  # alone: a whole GPU


# ---------------------------------------------------------------------- 5. device, uploads, TF32
def test_the_local_executor_honours_cuda_n(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    pinned = LocalExecutor(workers=None, device="cuda:1", candidates_per_gpu=3)
    assert pinned.devices == ["cuda:1"] * 3 and pinned.shares == {"cuda:1": 3}
    every = LocalExecutor(workers=None, device="cuda", candidates_per_gpu=2)
    assert every.devices == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"] and every.shares == {"cuda:0": 2, "cuda:1": 2}
    streams = LocalExecutor(workers=None, device="cuda:0", candidates_per_gpu=4, gpu_sharing="streams")
    assert streams.devices == ["cuda:0"] and streams.group == 4 and streams.shares == {"cuda:0": 4}
    with pytest.raises(ValueError, match=r"device 'cuda:2' requested but only 2 CUDA device\(s\) exist"):
        LocalExecutor(device="cuda:2")
    assert LocalExecutor(workers=2, device="cpu").shares == {"cpu": 1}


@pytest.mark.parametrize("flip", [False, True])
def test_uint8_batches_are_the_float_batches_bit_for_bit(flip: bool) -> None:
    data = SyntheticShapes(num_images=20, resolution=16, seed=4)
    raw = RawBatchSampler(data, 16, 8, seed=3, flip=flip)
    plain = RawBatchSampler(data, 16, 8, seed=3, flip=flip)
    for _ in range(6):  # across epochs (20 images, batches of 8)
        batch = raw.draw_uint8()
        assert batch.dtype == torch.uint8
        assert torch.equal(to_float(batch, 16), plain.draw())
    assert torch.equal(raw.generator.get_state(), plain.generator.get_state())
    assert not RawBatchSampler(data, 8, 8).serves_raw()  # pooled: float32 after the CPU's pooling, as before
    with pytest.raises(ValueError, match="serves the stored 16px only"):
        RawBatchSampler(data, 8, 8).draw_uint8()


def test_the_upload_path_sends_uint8_and_trains_exactly_as_eager(tiny_genome: Genome) -> None:
    """Static inputs (what graphs read) on the CPU: the data stored at the trained resolution goes through the
    uint8 upload ring, and training equals the plain eager loop bit for bit."""
    data = SyntheticShapes(num_images=64, resolution=tiny_genome.resolution, seed=3)
    cfg = dataclasses.replace(CFG, flip=True)
    eager = Trainer(tiny_genome, cfg, data)
    graphed, _ = emulated(tiny_genome, data, cfg)
    assert graphed._raw is not None and graphed._upload is not None
    assert graphed._upload.host[0].dtype == torch.uint8
    for _ in range(6):
        assert torch.equal(eager.step(), graphed.step())
    for (name, a), b in zip(eager.tensors().items(), graphed.tensors().values(), strict=True):
        assert torch.equal(a, b), name


def test_tf32_is_a_setting_and_off_by_default() -> None:
    assert TrainConfig().allow_tf32 is False and SearchConfig().allow_tf32 is False
    assert "allow_tf32" in RUNTIME_FIELDS and "allow_tf32" in RUNTIME_SETTINGS
    assert SearchConfig.from_dict({"allow_tf32": True}).train_config(10).allow_tf32 is True
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        set_tf32(True)
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        set_tf32(False)
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
