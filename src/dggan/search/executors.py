"""Executors: train a batch of independent candidates and yield their results as they finish.

- ``inprocess``: one after another in this process (no engine; laptops and CI).
- ``local``: a pool of worker processes, each pinned to one GPU (or to a share of the CPU cores).
- ``ray``: Ray core tasks, fractional GPUs so small candidates share a card, retries on worker loss.

Every executor runs the same ``run_candidate`` on the same task (seed included), so on the CPU the
ledger does not depend on the executor.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from .ledger import Status
from .worker import CandidateResult, CandidateTask, run_candidate, set_worker_device


class Executor(Protocol):
    name: str

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]: ...

    def close(self) -> None: ...


class InProcessExecutor:
    name = "inprocess"

    def __init__(self, device: str = "cpu"):
        self.device = device

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        set_worker_device(self.device)
        for task in tasks:
            yield run_candidate(task)

    def close(self) -> None:
        pass


def _init_local_worker(devices: Any, threads: int) -> None:
    import torch

    set_worker_device(devices.get())
    torch.set_num_threads(threads)


class LocalExecutor:
    """One process per GPU, or ``workers`` CPU processes splitting the cores between them."""

    name = "local"

    def __init__(self, workers: int | None = None, device: str = "cpu"):
        import torch

        if device.startswith("cuda") and torch.cuda.is_available():
            devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            workers = workers or len(devices)
            devices = [devices[i % len(devices)] for i in range(workers)]
        else:
            workers = workers or 1
            devices = ["cpu"] * workers
        self.workers = workers
        self.devices = devices
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool: ProcessPoolExecutor | None = None
        self._manager: Any = None

    def _make_pool(self) -> ProcessPoolExecutor:
        ctx = mp.get_context("spawn")  # CUDA cannot be forked; spawn also gives clean RNG state
        if self._manager is None:
            self._manager = ctx.Manager()
        queue = self._manager.Queue()
        for device in self.devices:
            queue.put(device)
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_local_worker,
                                   initargs=(queue, self.threads))

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        pending = {task.candidate_id: task for task in tasks}
        for attempt in range(2):  # one retry of what was lost if a worker process dies
            if not pending:
                return
            if self._pool is None:
                self._pool = self._make_pool()
            futures = {self._pool.submit(run_candidate, task): task for task in pending.values()}
            try:
                for future in as_completed(futures):
                    result = future.result()
                    pending.pop(result.candidate_id, None)
                    yield result
            except BrokenProcessPool as exc:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                if attempt == 1:
                    for task in pending.values():
                        yield CandidateResult(task.candidate_id, Status.FAILED, error=f"worker process died: {exc}")
                    return

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None


class RayExecutor:
    """Ray core tasks. Connects to ``RAY_ADDRESS`` when set, otherwise starts a local instance."""

    name = "ray"

    def __init__(self, workers: int | None = None, device: str = "cpu", gpus_per_candidate: float = 1.0,
                 max_retries: int = 2):
        try:
            import ray
        except ImportError:
            raise RuntimeError("the ray executor needs Ray: pip install 'dggan[ray]'") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": True, "logging_level": "ERROR"}
            if os.environ.get("RAY_ADDRESS"):
                kwargs["address"] = os.environ["RAY_ADDRESS"]
            else:
                kwargs["num_cpus"] = workers or os.cpu_count() or 1
                # Ray's socket paths must stay short; the default temp dir can be too deep.
                kwargs["_temp_dir"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
            ray.init(**kwargs)
            self._started = True
        use_gpu = device.startswith("cuda") or (device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus_per_candidate if use_gpu else 0,
                                  max_retries=max_retries, retry_exceptions=False)(_ray_run_candidate)
        self._device = "cuda" if use_gpu else "cpu"

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        ray = self._ray
        refs = {self._remote.remote(task, self._device): task for task in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task = refs.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:  # worker lost more often than max_retries
                    yield CandidateResult(task.candidate_id, Status.FAILED, error=f"ray task failed: {exc}")

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def _ray_run_candidate(task: CandidateTask, device: str) -> CandidateResult:
    import torch

    torch.set_num_threads(1)
    set_worker_device(device)
    return run_candidate(task)


def make_executor(name: str, workers: int = 1, device: str = "cpu", gpus_per_candidate: float = 1.0) -> Executor:
    if name == "inprocess":
        return InProcessExecutor(device)
    if name == "local":
        return LocalExecutor(workers, device)
    if name == "ray":
        return RayExecutor(workers, device, gpus_per_candidate)
    raise ValueError(f"unknown executor {name!r}; use inprocess, local or ray")
