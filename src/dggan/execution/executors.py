"""Executors: train a batch of independent candidates and yield their results as they finish.

- ``inprocess``: one after another in this process (no engine; laptops and CI).
- ``local``: a pool of worker processes, each pinned to one GPU (or to a share of the CPU cores).
- ``ray``: Ray core tasks, fractional GPUs so small candidates share a card, retries on worker loss.
- ``slurm``: every candidate a SLURM job through submitit, requeued on preemption (see ``slurm``).

Several candidates per GPU (``candidates_per_gpu``): one candidate's iteration, even replayed as a CUDA
graph, leaves most of a big GPU idle. ``gpu_sharing="processes"`` runs that many worker processes per GPU
(local) or gives each Ray task that fraction of a GPU; their kernels only overlap under CUDA MPS
(``nvidia-cuda-mps-control -d``), otherwise the GPU time-slices between them. ``gpu_sharing="streams"`` (local)
trains that many candidates together in each worker process, each on its own CUDA stream: concurrency
without MPS, with one Python thread feeding them. The default (``candidates_per_gpu`` unset) is 4 processes
per GPU when an MPS daemon is running, 4 streams per worker with ``streams``, else 1.

Out of memory while sharing: each worker knows how many candidates share its GPU (``set_worker_device``), a
candidate may count on that share of the card, and one that does not fit it or runs out of memory comes back
``retry_alone``. The executor then runs it again with the GPU to itself before the driver hears of it: local,
after the rest of the batch, one at a time while the pool is otherwise idle; Ray, as a task asking for a whole
GPU. Only out of memory alone fails the candidate. (The simplest correct design: a lock held across processes
would have to be taken by every candidate, and Ray places tasks on GPUs itself.)

Every executor runs the same ``run_candidate`` on the same task (seed included), so on the CPU the
ledger does not depend on the executor.

Executors are found by name in a registry (``register_executor``): the four above register here, and a module
of one's own (imported first, e.g. through the ``plugins`` setting) can add one. Naming an executor, listing them
and checking the settings load neither torch nor Ray nor submitit: this module imports the worker, the process
pools and the engines only where an executor is made or run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._util.threads import default_threads, set_threads
from .state import Status

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from .worker import CandidateResult, CandidateTask

# The worker's names this module used to import at its top: the worker imports torch, so they load on first use
# (``executors.run_candidates`` and ``from dggan.execution.executors import CandidateTask`` still work).
_FROM_WORKER = ("CandidateResult", "CandidateTask", "run_candidate", "run_candidates", "set_worker_device")


def __getattr__(name: str) -> Any:
    if name in _FROM_WORKER:
        from . import worker

        globals()[name] = value = getattr(worker, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _worker(name: str) -> Any:
    """The worker's ``name`` as this module holds it (a test may have replaced it here)."""
    return globals()[name] if name in globals() else __getattr__(name)


GPU_SHARING = ("processes", "streams")
SHARED_CANDIDATES = 4  # candidates per GPU when sharing is worth it (MPS running, or streams)


def mps_pipe_directory() -> Path:
    return Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps")


def mps_running() -> bool:
    """Whether a CUDA MPS control daemon serves this process's GPUs (its control pipe exists)."""
    return (mps_pipe_directory() / "control").exists()


def resolve_candidates_per_gpu(setting: int | None, sharing: str = "processes", mps: bool | None = None) -> int:
    """Candidates sharing one GPU: the setting, or by default ``SHARED_CANDIDATES`` where they can overlap
    (streams, or processes under MPS) and 1 where they could only take turns (processes without MPS)."""
    if setting is not None:
        return setting
    if sharing == "streams":
        return SHARED_CANDIDATES
    return SHARED_CANDIDATES if (mps_running() if mps is None else mps) else 1


class Executor(Protocol):
    """What the search asks of an executor. ``name``: how it is recorded (the ledger's sessions).
    ``in_process``: the candidates run in the driver's own process, one after another, so the driver's device,
    torch threads and progress bars are theirs (else each worker picks its device and threads, and shows no bars).
    ``run``: train the tasks and yield one result per task as each finishes, in any order; never raise for a
    candidate's own failure (``run_candidate`` turns it into its result). ``close``: give back the workers."""

    name: str
    in_process: bool

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]: ...

    def close(self) -> None: ...


def runs_in_process(executor: Executor) -> bool:
    """Whether ``executor`` runs its candidates in this process (an executor that does not say: no)."""
    return bool(getattr(executor, "in_process", False))


class InProcessExecutor:
    name = "inprocess"
    in_process = True

    def __init__(self, device: str = "cpu"):
        self.device = device

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        from .worker import run_candidate, set_worker_device

        set_worker_device(self.device)
        for task in tasks:
            yield run_candidate(task)

    def close(self) -> None:
        pass


def _init_local_worker(devices: Any, threads: int, driver: int) -> None:
    import threading

    from .worker import set_worker_device

    device, share = devices.get()
    set_worker_device(device, share)
    if device.startswith("cuda:"):
        import torch

        torch.cuda.set_device(device)  # streams, graphs and cuDNN state of this worker live on its GPU
    set_threads(threads)
    # A worker must not outlive its driver (a kill -9 of the driver alone would leave it idle for ever,
    # holding memory and a GPU). Its parent is the fork server, which lives on while any worker holds the
    # server's keep-alive pipe (every forked child does), so the worker watches the driver itself.
    threading.Thread(target=_exit_with_driver, args=(driver,), daemon=True).start()


def _exit_with_driver(driver: int) -> None:
    import time

    spawned = os.getppid() == driver  # a spawned worker's parent is the driver (the only way on Windows)
    while (os.getppid() == driver) if spawned else _running(driver):
        time.sleep(0.5)
    os._exit(1)


def _running(pid: int) -> bool:
    """Whether process ``pid`` is alive (POSIX: signal 0 only asks)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or someone else's process under that number
        return False
    try:  # killed but not yet reaped by its parent counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): kill(0) has answered
        return True


class LocalExecutor:
    """Worker processes pinned to the GPUs (at least one per GPU, ``candidates_per_gpu`` per GPU with
    ``processes`` sharing), or ``workers`` CPU processes splitting the cores between them. ``device``: ``cuda``
    uses every GPU, ``cuda:N`` GPU N only, ``auto`` every GPU when there is one (``resolve_device``); a GPU this
    machine does not have is refused.

    ``group``: candidates one worker trains together (streams sharing: ``candidates_per_gpu``; else 1).
    ``shares``: candidates training at once on each device (its workers times ``group``), what each worker is told.
    """

    name = "local"
    in_process = False

    def __init__(self, workers: int | None = None, device: str = "cpu", threads: int | None = None,
                 candidates_per_gpu: int | None = 1, gpu_sharing: str = "processes", group: int | None = None):
        import torch

        from ..training.devices import pick_device, resolve_device

        if gpu_sharing not in GPU_SHARING:
            raise ValueError(f"gpu_sharing must be one of {GPU_SHARING}, got {gpu_sharing!r}")
        self.group = 1
        device = resolve_device(device)
        if device.startswith("cuda"):
            index, count = pick_device(device).index, torch.cuda.device_count()  # (refuses a GPU it does not have)
            devices = [f"cuda:{i}" for i in range(count)] if index is None else [f"cuda:{index}"]
            per_gpu = resolve_candidates_per_gpu(candidates_per_gpu, gpu_sharing)
            if gpu_sharing == "streams":
                self.group = per_gpu
                per_gpu = 1
            workers = max(workers or 1, len(devices) * per_gpu)
            devices = [devices[i % len(devices)] for i in range(workers)]
        else:
            workers = workers or 1
            devices = ["cpu"] * workers
        if group is not None:
            self.group = group
        self.workers = workers
        self.devices = devices
        # CPU workers split the cores and each has the machine's memory to itself as far as check_fits goes.
        self.shares = {d: (devices.count(d) * self.group if d.startswith("cuda") else 1) for d in devices}
        self.threads = threads or default_threads(workers)
        self._pool: ProcessPoolExecutor | None = None

    def _make_pool(self) -> ProcessPoolExecutor:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # Workers fork from a server that has imported torch and the worker once (a spawned worker spends
        # seconds on those imports, each time a pool starts or a lost worker is replaced). The server never
        # touches CUDA, so its children may, as spawned ones can; each candidate seeds its own RNGs.
        if "forkserver" not in mp.get_all_start_methods():  # Windows: each worker imports torch itself
            ctx = mp.get_context("spawn")
        else:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["dggan.execution.worker"])  # before the server starts; later calls no-op
        queue = ctx.Queue()  # each worker takes one device; no manager process that could be orphaned
        for device in self.devices:
            queue.put((device, self.shares[device]))
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_local_worker,
                                   initargs=(queue, self.threads, os.getpid()))

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        by_id = {task.candidate_id: task for task in tasks}
        alone: list[CandidateTask] = []
        for result in self._run_batch(tasks):
            task = by_id[result.candidate_id]
            if result.retry_alone and not task.alone:
                alone.append(task)
                continue
            yield result
        # Out of memory while sharing a GPU: again, one at a time, now that the rest of the batch is done (the other
        # workers idle, their cached blocks given back after each candidate).
        for task in alone:
            yield from self._run_batch([dataclasses.replace(task, alone=True)])

    def _run_batch(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        from .worker import CandidateResult

        run_candidates = _worker("run_candidates")
        pending = {task.candidate_id: task for task in tasks}
        for attempt in range(2):  # one retry of what was lost if a worker process dies
            if not pending:
                return
            if self._pool is None:
                self._pool = self._make_pool()
            todo = list(pending.values())
            groups = [todo[i:i + self.group] for i in range(0, len(todo), self.group)]
            futures = {self._pool.submit(run_candidates, group): group for group in groups}
            try:
                for future in as_completed(futures):
                    for result in future.result():
                        pending.pop(result.candidate_id, None)
                        yield result
            except BrokenProcessPool as exc:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                if attempt == 1:  # lost twice: not the candidates' fault, stop the search and keep them pending
                    for task in pending.values():
                        yield CandidateResult(task.candidate_id, Status.FAILED, retry=True,
                                              error=f"worker process died twice ({exc}); check memory and the"
                                                    " worker's log")
                    return

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Ray core tasks. Connects to ``RAY_ADDRESS`` when set, otherwise starts a local instance."""

    name = "ray"
    in_process = False

    def __init__(self, workers: int | None = None, device: str = "cpu", gpus_per_candidate: float = 1.0,
                 max_retries: int = 2, candidates_per_gpu: int | None = 1):
        import tempfile

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
        # The smaller share wins: gpus_per_candidate, or one GPU split between candidates_per_gpu tasks.
        share = min(gpus_per_candidate, 1.0 / resolve_candidates_per_gpu(candidates_per_gpu)) if use_gpu else 0
        self.gpu_share = share
        self.share = max(1, int(1.0 / share + 1e-9)) if share else 1  # candidates that fit on one GPU at once
        self._remote = ray.remote(num_cpus=1, num_gpus=share,
                                  max_retries=max_retries, retry_exceptions=False)(_ray_run_candidate)
        self._device = "cuda" if use_gpu else "cpu"

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        from .worker import CandidateResult

        ray = self._ray
        paths = _search_path(tasks)
        refs = {self._remote.remote(task, self._device, self.share, paths): task for task in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # worker lost more often than max_retries
                    yield CandidateResult(task.candidate_id, Status.FAILED, retry=True,
                                          error=f"ray task failed after its retries: {exc}")
                    continue
                if result.retry_alone and not task.alone:  # out of memory while sharing: again, on a whole GPU
                    task = dataclasses.replace(task, alone=True)
                    refs[self._remote.options(num_gpus=1).remote(task, self._device, 1, paths)] = task
                    continue
                yield result

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def _search_path(tasks: list[CandidateTask]) -> tuple[str, ...]:
    """The driver's module search path when a task names plugins: Ray's workers outlive the driver's sys.path (they
    may have started before the plugin's folder was added), so the folders travel with the tasks."""
    if not any(task.train.plugins for task in tasks):
        return ()
    return tuple(os.path.abspath(p) for p in sys.path if p)


def _ray_run_candidate(task: CandidateTask, device: str, share: int = 1,
                       search_path: tuple[str, ...] = ()) -> CandidateResult:
    from .worker import run_candidate, set_worker_device

    # After the worker's own entries (so they keep precedence), the driver's folders that exist on this node.
    sys.path.extend(p for p in search_path if p not in sys.path and os.path.isdir(p))
    set_threads(1)
    set_worker_device(device, share)
    return run_candidate(task)


# ---------------------------------------------------------------------- the registry: executors by name
ExecutorFactory = Callable[[Any, "Path | None"], Executor]
ExecutorCheck = Callable[[Any], None]
_Factory = TypeVar("_Factory", bound=ExecutorFactory)


@dataclass(frozen=True)
class ExecutorKind:
    """A registered executor: ``factory(settings, run_dir)`` makes it, ``help`` says in a few words where it runs
    the candidates (``--executor``'s help), ``check(settings)`` (optional) asks before any work whether it can."""

    name: str
    factory: ExecutorFactory
    help: str
    check: ExecutorCheck | None = None


_EXECUTORS: dict[str, ExecutorKind] = {}


def register_executor(name: str, *, help: str, check: ExecutorCheck | None = None) -> Callable[[_Factory], _Factory]:
    """Decorator: ``factory(settings, run_dir) -> Executor`` is the executor the setting ``executor=name``
    (``--executor name``) runs candidates on.

    ``settings`` is the search's settings (a ``SearchConfig``: typed loosely, this layer is below the search; read
    what your executor needs: ``workers``, ``threads``, ``resolved_device()``, ...), ``run_dir`` the run folder
    (None when there is none, e.g. ``make_executor``). The factory is called when a search (a baseline, a
    comparison) starts, and its executor closed when that ends. ``help``: a few words for ``--executor``'s help
    (where the candidates run). ``check(settings)``: called before a run folder is made or any work is done (and on
    ``--resume``); raise a ``DgganError`` that names the setting and the fix. A factory rather than a class: what an
    executor needs of the settings differs per executor, its class keeps a plain constructor (tests and benchmarks
    make one directly), and the class itself may be imported lazily (Ray, submitit)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name):
        raise ValueError(f"register_executor: {name!r} is not a name for --executor (letters, digits, _ . -)")
    if not isinstance(help, str) or not help.strip():
        raise ValueError(f"register_executor({name!r}): help must say in a few words where it runs candidates")

    def add(factory: _Factory) -> _Factory:
        if not callable(factory):
            raise TypeError(f"register_executor({name!r}): {factory!r} must be a function (settings, run_dir) ->"
                            " Executor")
        known = _EXECUTORS.get(name)
        where = (getattr(factory, "__module__", None), getattr(factory, "__qualname__", None))
        if known is not None and (known.factory.__module__, known.factory.__qualname__) != where:
            raise ValueError(f"executor {name!r} is already registered ({known.factory.__module__}."
                             f"{known.factory.__qualname__}); pick another name")
        _EXECUTORS[name] = ExecutorKind(name, factory, help.strip(), check)
        return factory

    return add


def executor_names() -> tuple[str, ...]:
    """Every registered executor's name, the built-in ones first, in the order they were registered."""
    return tuple(_EXECUTORS)


def executor_kinds() -> dict[str, ExecutorKind]:
    return dict(_EXECUTORS)


def executor_choices() -> str:
    """The registered names as a message lists them: ``inprocess, local, ray or slurm``."""
    names = executor_names()
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


def executor_kind(name: str, what: str = "--executor") -> ExecutorKind:
    """The executor registered as ``name``; a one-line ``ConfigError`` listing the registered names if none is."""
    from ..errors import ConfigError

    if not isinstance(name, str) or name not in _EXECUTORS:
        raise ConfigError(f"{what} must be {executor_choices()}, got {name!r}")
    return _EXECUTORS[name]


def check_executor_settings(settings: Any) -> None:
    """The check the executor ``settings.executor`` registered, if any (before any work)."""
    kind = executor_kind(settings.executor, "executor")
    if kind.check is not None:
        kind.check(settings)


@dataclass(frozen=True)
class _Values:
    """``make_executor``'s explicit values, read as a factory reads a search's settings."""

    executor: str
    workers: int
    device: str
    gpus_per_candidate: float
    threads: int | None
    candidates_per_gpu: int | None
    gpu_sharing: str

    def resolved_device(self) -> str:
        return self.device


def make_executor(name: str, workers: int = 1, device: str = "cpu", gpus_per_candidate: float = 1.0,
                  threads: int | None = None, candidates_per_gpu: int | None = 1,
                  gpu_sharing: str = "processes") -> Executor:
    """An executor by name from explicit values (tests, benchmarks), for executors that need no more of the
    settings than these; a search's settings (the slurm executor's included): ``executor_for``."""
    kind = executor_kind(name, "make_executor: name")
    return kind.factory(_Values(name, workers, device, gpus_per_candidate, threads, candidates_per_gpu, gpu_sharing),
                        None)


def slurm_options(config: Any, run_dir: str | Path | None) -> dict[str, Any]:
    """The slurm executor's options from a search's settings; its folder defaults to RUN/slurm."""
    from ..errors import SearchError
    from ..runs import RunLayout

    if config.slurm_folder:
        folder = Path(config.slurm_folder)
    elif run_dir is not None:
        folder = RunLayout(run_dir).slurm
    else:
        raise SearchError("the slurm executor keeps its jobs in the run folder; give the run folder, or set"
                          " slurm_folder to a folder on the shared filesystem")
    return {"folder": folder, "cluster": config.slurm_cluster, "partition": config.slurm_partition,
            "gpus": config.slurm_gpus, "cpus_per_task": config.slurm_cpus_per_task, "time_min": config.slurm_time_min,
            "max_timeouts": config.slurm_max_timeouts, "array_parallelism": config.slurm_array_parallelism,
            "extra": dict(config.slurm_extra), "setup": tuple(config.slurm_setup), "poll_s": config.slurm_poll_s,
            "device": config.device}


def executor_for(config: Any, run_dir: str | Path | None = None, **changes: Any) -> Executor:
    """The executor a search's settings (a ``SearchConfig``) ask for, made by its registered factory; ``changes``
    override settings (e.g. ``executor="local", workers=4``; None: unchanged); ``run_dir`` is the run folder (the
    slurm executor keeps its jobs in RUN/slurm)."""
    from ..errors import ConfigError

    changes = {k: v for k, v in changes.items() if v is not None}
    name, workers = changes.get("executor", config.executor), changes.get("workers", config.workers)
    kind = executor_kind(name)  # one line, for a name from the command line (compare --executor) too
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers!r}")
    settings = dataclasses.replace(config, **changes) if changes else config
    return kind.factory(settings, None if run_dir is None else Path(run_dir))


# ---------------------------------------------------------------------- the built-in executors
@register_executor("inprocess", help="one after another in this process")
def _inprocess(settings: Any, run_dir: Path | None) -> Executor:
    return InProcessExecutor(settings.resolved_device())


@register_executor("local", help="worker processes of this machine, pinned to its GPUs")
def _local(settings: Any, run_dir: Path | None) -> Executor:
    return LocalExecutor(settings.workers, settings.resolved_device(), settings.threads, settings.candidates_per_gpu,
                         settings.gpu_sharing)


@register_executor("ray", help="Ray tasks, here or on a Ray cluster")
def _ray(settings: Any, run_dir: Path | None) -> Executor:
    return RayExecutor(settings.workers, settings.resolved_device(), settings.gpus_per_candidate,
                       candidates_per_gpu=settings.candidates_per_gpu)


def _check_slurm(settings: Any) -> None:
    """submitit, and SLURM with its accounting, are here, and the partition can run the jobs the settings ask for."""
    from .slurm import check_slurm, job_request, partition_info

    check_slurm(settings.slurm_cluster)
    if settings.slurm_cluster == "slurm":
        job_request(partition_info(settings.slurm_partition), settings.slurm_gpus, settings.slurm_cpus_per_task,
                    settings.device)


# Registered here, not in slurm.py: naming an executor must import neither submitit nor the worker (torch).
@register_executor("slurm", help="SLURM jobs through submitit", check=_check_slurm)
def _slurm(settings: Any, run_dir: Path | None) -> Executor:
    from .slurm import SlurmExecutor  # submitit loads only for this executor

    if not hasattr(settings, "slurm_cluster"):
        raise ValueError("the slurm executor needs a search's settings: use executor_for(config, run_dir)")
    return SlurmExecutor(**slurm_options(settings, run_dir))


BUILTIN_EXECUTORS = executor_names()  # inprocess, local, ray, slurm
