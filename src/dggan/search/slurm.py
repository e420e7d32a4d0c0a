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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SearchError
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
    """submitit imports and, for a real cluster, SLURM's commands are here; else a SearchError saying the fix."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SearchError("the slurm executor needs submitit: pip install 'dggan[slurm]' (or pip install"
                          " submitit)") from None
    if cluster == "slurm" and shutil.which("srun") is None:
        raise SearchError("the slurm executor found no SLURM here (no srun on the PATH): run dggan on a login node"
                          " of the cluster, or --set slurm_cluster=local to run the jobs on this machine")


def task_key(task: CandidateTask) -> str:
    """The same task (candidate, rung, settings) gives the same key: the id under which its job is kept."""
    text = json.dumps(dataclasses.asdict(task), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class SlurmExecutor:
    """Candidates as SLURM jobs (``cluster="slurm"``) or local processes (``cluster="local"``) through
    submitit; yields their results as the jobs finish."""

    name = "slurm"

    def __init__(self, folder: str | Path, *, cluster: str = "slurm", partition: str | None = None, gpus: int = 1,
                 cpus_per_task: int = 4, time_min: int = 24 * 60, max_timeouts: int = 20,
                 array_parallelism: int = 256, extra: dict[str, Any] | None = None, setup: tuple[str, ...] = (),
                 poll_s: float | None = None):
        check_slurm(cluster)
        import submitit

        self.folder = Path(folder)
        self.cluster = cluster
        self.cpus_per_task = cpus_per_task
        self.poll_s = poll_s if poll_s is not None else (0.5 if cluster == "local" else 15.0)
        self._live: dict[Any, tuple[CandidateTask, int]] = {}
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
        with self._submitit.batch():  # one job array on SLURM
            for task in tasks:
                jobs.append(self._submitit.submit(CandidateJob(task, self.cpus_per_task)))
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
        try:
            while mine:
                finished = [job for job in mine if job.done()]
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
    except UncompletedJobError as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    except Exception as exc:  # noqa: BLE001 (an unreadable result pickle is a lost result too)
        return f"{type(exc).__name__}: {exc}"
    return result if isinstance(result, CandidateResult) else f"unexpected result {type(result).__name__}"
