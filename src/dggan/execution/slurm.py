"""The ``slurm`` executor: every candidate a SLURM job, through submitit (``pip install 'dggan[slurm]'``).

One command on a login node drives the whole search: the driver submits each batch of candidates as one
job array, waits for the jobs and records their results. Everything goes through the run folder, which
must lie on a filesystem the login node and the compute nodes share: the candidates' checkpoints, and
submitit's job files, logs and pickled results (``RUN/slurm`` unless ``slurm_folder`` says otherwise).

- Preemption and the time limit: SLURM signals the job (USR2, 90 s ahead, submitit's ``--signal``). The
  candidate saves a checkpoint at its next logged iteration (at most 100 iterations away), then submitit
  requeues the job with the same task (``CandidateJob.checkpoint``) and the worker resumes the candidate
  from that checkpoint, exactly. ``slurm_max_timeouts`` bounds the requeues after the time limit.
- A job that ends without a result (killed, node failure, out of memory on the host) is submitted once
  more and resumes from the candidate's latest checkpoint; lost twice, the candidate is not marked failed:
  the result says ``retry`` and the driver stops, leaving it pending for ``dggan search --resume``.
- A driver that dies (a closed ssh session, a rebooted login node) loses nothing: each task's job id is
  kept beside the jobs (``RUN/slurm/tasks``), and a resumed driver waits for the jobs still queued or
  running and takes the results of those that finished, instead of submitting them again.
- ``slurm_cluster="local"`` runs the same jobs as processes of this machine (submitit's local executor):
  how the tests exercise all of this without a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SearchError
from ..training import devices
from .state import Status
from .worker import CandidateResult, CandidateTask

LOST = "the SLURM job ended without a result"


class CandidateJob:
    """One candidate's task as a submitit job. Checkpointable: a preempted or timed-out job is requeued
    with the same task, and the worker resumes the candidate from its own latest checkpoint."""

    def __init__(self, task: CandidateTask, threads: int):
        self.task = task
        self.threads = threads

    def __call__(self) -> CandidateResult:
        from .._util.threads import set_threads
        from ..runs import CHECKPOINT_NAME
        from .worker import run_candidate

        set_threads(self.task.threads or self.threads)
        _defer_preemption()
        checkpoint = Path(self.task.out_dir) / CHECKPOINT_NAME
        if checkpoint.exists():  # a requeued or resubmitted job, or the next rung: said in the job's log
            with contextlib.suppress(Exception):
                from ..training.checkpoint import load_checkpoint

                iteration = load_checkpoint(checkpoint, tensors=False).state["iteration"]
                print(f"candidate {self.task.candidate_id}: resuming from its checkpoint at iteration {iteration}",
                      flush=True)
        return run_candidate(self.task)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this when the job is preempted or times out: requeue the same task (the worker saved
        the candidate's checkpoint first, see ``_defer_preemption``)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(CandidateJob(self.task, self.threads))


def _defer_preemption() -> None:
    """Route submitit's preemption signal through the worker: while a candidate trains, it saves a checkpoint at
    its next logged iteration before submitit requeues the job and exits; otherwise submitit acts at once."""
    from . import worker

    number = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
    if number is None:
        return
    requeue = signal.getsignal(number)
    if not callable(requeue):  # not inside a submitit job
        return

    def on_signal(signum: int, frame: Any) -> None:
        if not worker.preempt(lambda: requeue(signum, frame)):
            requeue(signum, frame)

    signal.signal(number, on_signal)


def check_slurm(cluster: str) -> None:
    """submitit imports and, for a real cluster, SLURM's commands and its accounting answer here; else a
    SearchError saying the fix."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SearchError("the slurm executor needs submitit: pip install 'dggan[slurm]' (or pip install"
                          " submitit)") from None
    if cluster == "slurm" and shutil.which("srun") is None:
        raise SearchError("the slurm executor found no SLURM here (no srun on the PATH): run dggan on a login node"
                          " of the cluster, or --set slurm_cluster=local to run the jobs on this machine")
    if cluster == "slurm":
        check_accounting()


def _slurm_command(args: list[str], timeout: float = 30.0) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a SLURM client command; 127 when it cannot be run at all."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", f"{type(exc).__name__}: {exc}"
    return done.returncode, done.stdout, done.stderr


def one_line(text: str) -> str:
    """A multi-line message (sbatch's, submitit's) as one line: its non-empty lines joined."""
    return " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def check_accounting() -> None:
    """submitit learns a job's state only from ``sacct``: without SLURM accounting (slurmdbd) a cancelled job
    would leave the search waiting forever and a resumed driver would submit a running candidate again."""
    code, _, err = _slurm_command(["sacct", "-n", "-X", "-o", "JobID", "-S", "now"])
    if code != 0:
        raise SearchError(f"the slurm executor needs SLURM's job accounting (slurmdbd), and `sacct` does not answer"
                          f" here ({one_line(err) or f'exit status {code}'}): submitit reads job states only"
                          " through sacct, so a lost job would leave the search waiting forever. Ask the"
                          " cluster's admins for accounting, or run with --executor local or ray")


@dataclass(frozen=True)
class Partition:
    """What ``sinfo`` says of a partition's nodes: the most CPUs and GPUs any one of them offers."""

    name: str
    cpus: int
    gpus: int


def _gpus_of(gres: str) -> int:
    """GPUs in an sinfo GRES field: ``gpu:4``, ``gpu:a100:4(S:0-1)``, ``gpu:2,shard:8``; 0 for ``(null)``."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def partition_info(name: str | None) -> Partition:
    """The partition ``name`` (None: the cluster's default) as ``sinfo`` lists its nodes; SearchError without it."""
    code, out, err = _slurm_command(["sinfo", "-h", "-N", "-o", "%P|%c|%G"])
    if code != 0:
        raise SearchError(f"`sinfo` failed ({one_line(err) or f'exit status {code}'}): the slurm executor checks the"
                          " partition's CPUs and GPUs before it submits anything")
    nodes: dict[str, list[tuple[int, int]]] = {}
    default = None
    for line in out.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 3:
            continue
        part, cpus, gres = fields
        if part.endswith("*"):
            part = default = part[:-1]
        digits = "".join(c for c in cpus if c.isdigit())
        nodes.setdefault(part, []).append((int(digits or 0), _gpus_of(gres)))
    wanted = name or default
    if wanted is None or wanted not in nodes:
        known = ", ".join(sorted(nodes)) or "none"
        raise SearchError(f"SLURM has no partition {wanted!r} here (sinfo lists: {known}); --set slurm_partition=NAME"
                          if name else f"SLURM has no default partition here (sinfo lists: {known}); choose one with"
                          " --set slurm_partition=NAME")
    return Partition(wanted, max(c for c, _ in nodes[wanted]), max(g for _, g in nodes[wanted]))


def job_request(partition: Partition, gpus: int | None, cpus: int | None, device: str) -> tuple[int, int]:
    """(GPUs, CPUs) per candidate job: the settings, or by default what the device and the partition offer
    (a GPU when the device is CUDA, or ``auto`` on a partition with GPUs; 4 CPUs or all a node has, if fewer),
    checked against the partition so that no job is refused by sbatch or left pending forever."""
    where = f"partition {partition.name!r}"
    if gpus is None:
        if device.startswith("cuda") and partition.gpus == 0:
            raise SearchError(f"device {device!r} asks for GPUs, but the nodes of {where} have none (sinfo); choose a"
                              " GPU partition with --set slurm_partition=NAME, or --set device=cpu")
        gpus = 0 if device == "cpu" else min(1, partition.gpus)
    if cpus is None:
        cpus = max(1, min(4, partition.cpus))
    if gpus > partition.gpus:
        fix = "--set slurm_gpus=0 for CPU jobs" if partition.gpus == 0 else f"--set slurm_gpus={partition.gpus}"
        raise SearchError(f"slurm_gpus={gpus}, but the nodes of {where} have {partition.gpus or 'no'} GPU(s) (sinfo):"
                          f" sbatch would refuse the jobs; {fix}, or choose a partition with --set slurm_partition")
    if cpus > partition.cpus:
        raise SearchError(f"slurm_cpus_per_task={cpus}, but the nodes of {where} have at most {partition.cpus} CPUs"
                          f" (sinfo): the jobs would wait forever; --set slurm_cpus_per_task={partition.cpus}")
    return gpus, cpus


def pending_summary(job_ids: list[str]) -> str | None:
    """What ``squeue`` says of these jobs, as one line: how many run and, for the pending ones, why
    (``Resources``, ``Priority``, ``QOSMaxJobsPerUserLimit``...); None when squeue has nothing to say."""
    if not job_ids:
        return None
    code, out, _ = _slurm_command(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%T|%r"])
    if code != 0 or not out.strip():
        return None
    states = [line.split("|", 1) for line in out.strip().splitlines() if "|" in line]
    running = sum(state == "RUNNING" for state, _ in states)
    reasons = Counter(reason for state, reason in states if state == "PENDING")
    if not reasons:
        return None
    why = ", ".join(f"{reason}: {count}" for reason, count in reasons.most_common())
    return f"SLURM: {running} running, {sum(reasons.values())} pending ({why})"


def task_key(task: CandidateTask) -> str:
    """The same task (candidate, rung, settings) gives the same key: the id under which its job is kept."""
    fields = dataclasses.asdict(task)  # (its TrainConfig as a dict, as tasks carried their settings before)
    if fields.pop("worker_device"):  # and said the worker's own device so: the same tasks keep their keys
        fields["train"]["device"] = "worker"
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class SlurmExecutor:
    """Candidates as SLURM jobs (``cluster="slurm"``) or local processes (``cluster="local"``) through
    submitit; yields their results as the jobs finish."""

    name = "slurm"
    in_process = False  # (registered in executors.py, which imports this module only to make one)

    def __init__(self, folder: str | Path, *, cluster: str = "slurm", partition: str | None = None,
                 gpus: int | None = None, cpus_per_task: int | None = None, time_min: int = 24 * 60,
                 max_timeouts: int = 20, array_parallelism: int = 256, extra: dict[str, Any] | None = None,
                 setup: tuple[str, ...] = (), poll_s: float | None = None, device: str = "auto"):
        check_slurm(cluster)
        import submitit

        if cluster == "slurm":
            gpus, cpus_per_task = job_request(partition_info(partition), gpus, cpus_per_task, device)
        else:  # this machine's processes: its GPUs and cores
            gpus = gpus if gpus is not None else 0 if devices.resolve_device(device) == "cpu" else 1
            cpus_per_task = cpus_per_task if cpus_per_task is not None else max(1, min(4, os.cpu_count() or 1))
        self.folder = Path(folder)
        self.cluster = cluster
        self.gpus = gpus
        self.cpus_per_task = cpus_per_task
        self.poll_s = poll_s if poll_s is not None else (0.5 if cluster == "local" else 15.0)
        self._live: dict[Any, tuple[CandidateTask, int]] = {}
        # Called while the driver waits with what squeue says of pending jobs (the runner shows it).
        self.on_wait: Callable[[str | None], None] | None = None
        if cluster == "local":
            self._submitit = submitit.LocalExecutor(self.folder, max_num_timeout=max_timeouts)
            self._submitit.update_parameters(timeout_min=time_min, gpus_per_node=gpus, tasks_per_node=1, nodes=1,
                                             setup=list(setup))
            self._job_class: Any = submitit.LocalJob
        elif cluster == "slurm":
            self._submitit = submitit.SlurmExecutor(self.folder, max_num_timeout=max_timeouts)
            params: dict[str, Any] = {"time": time_min, "cpus_per_task": cpus_per_task, "nodes": 1,
                                      "ntasks_per_node": 1, "job_name": "dggan", "array_parallelism": array_parallelism,
                                      "setup": list(setup), "additional_parameters": dict(extra or {})}
            if partition:
                params["partition"] = partition
            if gpus:
                params["gpus_per_node"] = gpus
            self._submitit.update_parameters(**params)
            self._job_class = submitit.SlurmJob
        else:
            raise SearchError(f"slurm_cluster must be 'slurm' or 'local', got {cluster!r}")

    # ---------------------------------------------------------------- job ids beside the jobs
    def _id_file(self, task: CandidateTask) -> Path:
        return self.folder / "tasks" / f"c{task.candidate_id:05d}-{task_key(task)}"

    def _remember(self, task: CandidateTask, job: Any) -> None:
        from .._util.files import atomic_write_text

        atomic_write_text(self._id_file(task), str(job.job_id))

    def _reattach(self, task: CandidateTask) -> Any | None:
        """The job an earlier driver submitted for this very task, if it is still queued or running or left a
        result that can be used; None when the task must be submitted."""
        try:
            job_id = self._id_file(task).read_text().strip()
        except OSError:
            return None
        job = self._job_class(self.folder, job_id)
        if job.paths.result_pickle.exists():
            result = _result_of(job)
            return job if isinstance(result, CandidateResult) and not result.retry else None
        if self.cluster == "slurm" and job.watcher.get_state(job_id, mode="force").upper() in (
                "PENDING", "RUNNING", "REQUEUED", "COMPLETING", "CONFIGURING", "READY", "PREEMPTED"):
            return job
        return None  # a local job of another process cannot be watched; a finished job without a result is lost

    def _submit(self, tasks: list[CandidateTask], attempt: int) -> list[Any]:
        jobs = []
        try:
            with self._submitit.batch():  # one job array on SLURM
                for task in tasks:
                    jobs.append(self._submitit.submit(CandidateJob(task, self.cpus_per_task)))
        except Exception as exc:  # noqa: BLE001 (sbatch's refusal arrives as submitit's own error types)
            ids = ", ".join(str(t.candidate_id) for t in tasks)
            raise SearchError(f"SLURM refused the jobs of candidates {ids}: {one_line(str(exc)) or type(exc).__name__};"
                              " they stay pending: fix the slurm_* settings, then `dggan search --resume`") from None
        for task, job in zip(tasks, jobs, strict=True):
            if self.cluster == "local":
                job._results_timeout_s = 2  # no shared filesystem to wait for
            self._remember(task, job)
            self._live[job] = (task, attempt)
        return jobs

    # ---------------------------------------------------------------- the Executor protocol
    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        fresh, mine = [], set()
        for task in tasks:
            job = self._reattach(task)
            if job is None:
                fresh.append(task)
            else:
                self._live[job] = (task, 0)
                mine.add(job)
        if fresh:
            mine.update(self._submit(fresh, attempt=0))
        waited_since, last_said = time.monotonic(), 0.0
        try:
            while mine:
                finished = [job for job in mine if job.done()]
                if finished:
                    waited_since = time.monotonic()
                elif self.on_wait is not None and self.cluster == "slurm" and \
                        time.monotonic() - max(waited_since, last_said) >= max(30.0, 2 * self.poll_s):
                    last_said = time.monotonic()  # squeue at most every 30 s, and only once nothing has finished
                    self.on_wait(pending_summary([str(job.job_id) for job in mine]))
                for job in finished:
                    mine.discard(job)
                    task, attempt = self._live.pop(job)
                    result = _result_of(job)
                    if isinstance(result, CandidateResult):
                        yield result
                    elif attempt == 0:  # lost once: the same task again, resuming from the latest checkpoint
                        mine.update(self._submit([task], attempt=1))
                    else:
                        yield CandidateResult(task.candidate_id, Status.FAILED, retry=True,
                                              error=f"{LOST} twice (job {job.job_id}: {result}); see its log in"
                                                    f" {self.folder}")
                if mine and not finished:
                    time.sleep(self.poll_s)
        finally:  # the driver stopped early (an error elsewhere): its candidates' jobs are not wanted now
            for job in mine:
                self._cancel(job)

    def _cancel(self, job: Any) -> None:
        self._live.pop(job, None)
        with contextlib.suppress(Exception):
            job.cancel(check=False)

    def close(self) -> None:
        for job in list(self._live):
            self._cancel(job)


def _result_of(job: Any) -> CandidateResult | str:
    """The job's CandidateResult, or why there is none."""
    from submitit.core.utils import UncompletedJobError

    try:
        result = job.result()
    except UncompletedJobError as exc:  # every line: submitit puts the job's state ("CANCELLED") on a later one
        return one_line(str(exc)) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 (an unreadable result pickle is a lost result too)
        return f"{type(exc).__name__}: {exc}"
    return result if isinstance(result, CandidateResult) else f"unexpected result {type(result).__name__}"
