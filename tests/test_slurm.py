"""The slurm executor (submitit): sbatch options from the settings, and, with submitit's local executor,
the same ledger as in-process, a killed job resubmitted, a preempted job requeued, both resuming from the
candidate's checkpoint, and a job lost twice left pending."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import searches

from dggan.execution.executors import InProcessExecutor, executor_for
from dggan.execution.worker import CandidateTask
from dggan.search.config import SearchConfig
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger
from dggan.training.config import TrainConfig

submitit = pytest.importorskip("submitit")

SLURM: dict[str, Any] = {  # the tests' tiny search, one job per candidate on this machine
    "baseline": "none", "p": 0.3, "final_iterations": 0, "max_steps": 1, "tensorboard": False,
    "executor": "slurm", "slurm_cluster": "local", "slurm_gpus": 0,
}


def tiny(**overrides: Any) -> SearchConfig:
    return searches.tiny(**{**SLURM, **overrides})


def comparable(run: Path) -> list[tuple[Any, ...]]:
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = [r.to_dict() for r in ledger.candidates()]
    return [(r["id"], r["parent"], r["step"], json.dumps(r["action"]), r["status"], r["genome_key"],
             None if r["metric"] is None else round(r["metric"], 6), r["kept"]) for r in rows]


def task(cid: int, out: Path) -> CandidateTask:
    return CandidateTask(candidate_id=cid, genome_json="{}", parent_checkpoint=None, out_dir=str(out),
                         train=TrainConfig(), data="synthetic", metric="swd32")


def stand_ins(bin_dir: Path, **scripts: str) -> None:
    """Shell stand-ins for SLURM's commands (name -> script body) in ``bin_dir``."""
    bin_dir.mkdir(exist_ok=True)
    for name, script in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)


A_GPU_CLUSTER = {"srun": "exit 0", "sacct": "exit 0", "sinfo": "echo 'cpu*|2|(null)'; echo 'gpu|16|gpu:a100:4(S:0-1)'"}


def test_sbatch_options_come_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dggan.errors import SearchError

    bin_dir = tmp_path / "bin"  # stand-ins for SLURM's commands: sbatch keeps the script it was given
    bin_dir.mkdir()
    # A PATH with nothing on it, whatever this machine has installed (a login node has a real srun).
    system_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(SearchError, match="no srun on the PATH"):
        executor_for(tiny(slurm_cluster="slurm"), tmp_path / "run")
    monkeypatch.setenv("PATH", f"{bin_dir}:{system_path}")  # the stand-ins shadow a real SLURM
    stand_ins(bin_dir, **A_GPU_CLUSTER, sbatch=f'cp "$1" {tmp_path}/script.sh\necho "Submitted batch job 4242"')
    config = tiny(slurm_cluster="slurm", slurm_partition="gpu", slurm_gpus=2, slurm_cpus_per_task=8,
                  slurm_time_min=600, slurm_extra={"account": "lab", "mem": "64G", "exclusive": True},
                  slurm_setup=["module load cuda"])
    executor = executor_for(config, tmp_path / "run")
    assert executor.name == "slurm" and executor.folder == tmp_path / "run" / "slurm"  # type: ignore[attr-defined]
    jobs = executor._submit([task(7, tmp_path / "c7"), task(8, tmp_path / "c8")], attempt=0)  # type: ignore[attr-defined]
    script = (tmp_path / "script.sh").read_text()
    for line in ("--partition=gpu", "--gpus-per-node=2", "--cpus-per-task=8", "--time=600", "--account=lab",
                 "--mem=64G", "--exclusive\n", "--array=0-1%2", "--signal=USR2@90", "--nodes=1"):
        assert f"#SBATCH {line}" in script
    assert "module load cuda" in script
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1"]  # one job array for the batch
    ids = sorted(p.read_text() for p in (tmp_path / "run" / "slurm" / "tasks").iterdir())
    assert ids == ["4242_0", "4242_1"]  # kept beside the jobs, for a driver that restarts
    executor._live.clear()  # type: ignore[attr-defined]  # nothing to scancel here
    with pytest.raises(Exception, match="slurm_cluster"):
        tiny(slurm_cluster="k8s")
    with pytest.raises(Exception, match="slurm_extra"):
        tiny(slurm_extra={"account": ["a", "b"]})


def test_requests_follow_the_device_and_are_checked_against_the_partition(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from dggan.errors import SearchError
    from dggan.execution.slurm import Partition, job_request, partition_info
    from dggan.search.preflight import check_executor

    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    stand_ins(tmp_path, **A_GPU_CLUSTER)
    cpu, gpu = partition_info(None), partition_info("gpu")
    assert cpu == Partition("cpu", 2, 0) and gpu == Partition("gpu", 16, 4)  # the default partition is starred
    # Defaults: a GPU where the partition has them (device auto or cuda), none on a CPU partition; 4 CPUs or fewer.
    assert job_request(cpu, None, None, "auto") == (0, 2) and job_request(gpu, None, None, "auto") == (1, 4)
    assert job_request(gpu, None, None, "cpu") == (0, 4) and job_request(gpu, None, None, "cuda") == (1, 4)
    with pytest.raises(SearchError, match=r"have no GPU\(s\) \(sinfo\): sbatch would refuse .*slurm_gpus=0"):
        job_request(cpu, 1, None, "auto")
    with pytest.raises(SearchError, match="at most 2 CPUs .* wait forever; --set slurm_cpus_per_task=2"):
        job_request(cpu, 0, 4, "auto")
    with pytest.raises(SearchError, match="asks for GPUs, but the nodes of partition 'cpu' have none"):
        job_request(cpu, None, None, "cuda")
    with pytest.raises(SearchError, match="no partition 'big' here \\(sinfo lists: cpu, gpu\\)"):
        partition_info("big")
    # Before any work: preflight refuses the defaults that cannot run, in one line.
    with pytest.raises(SearchError, match="slurm_cpus_per_task=8"):
        check_executor(tiny(slurm_cluster="slurm", slurm_gpus=None, slurm_cpus_per_task=8))
    check_executor(tiny(slurm_cluster="slurm", slurm_gpus=None, slurm_cpus_per_task=None))  # fits: no error
    stand_ins(tmp_path, sacct="echo 'sacct: error: Slurm accounting storage is disabled' >&2; exit 1")
    with pytest.raises(SearchError, match="needs SLURM's job accounting .*accounting storage is disabled"):
        check_executor(tiny(slurm_cluster="slurm"))


def test_pending_jobs_say_why_in_the_progress_line_and_status(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import time as clock

    from dggan.execution.slurm import pending_summary
    from dggan.search.watch import _waiting_message

    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    stand_ins(tmp_path, squeue=f'echo "$@" > {tmp_path}/asked\n'
                              "printf 'PENDING|Resources\\nRUNNING|None\\nPENDING|Resources\\nPENDING|Priority\\n'")
    said = pending_summary(["4242_0", "4242_1", "4242_2", "4243"])
    assert said == "SLURM: 1 running, 3 pending (Resources: 2, Priority: 1)"
    assert "-j 4242_0,4242_1,4242_2,4243" in (tmp_path / "asked").read_text()
    stand_ins(tmp_path, squeue="printf 'RUNNING|None\\n'")
    assert pending_summary(["1"]) is None  # nothing pending: nothing to say (the line is cleared)
    shown = _waiting_message(json.dumps({"message": said, "at": clock.time() - 90}))
    assert shown is not None and shown.startswith(said) and "ago)" in shown
    assert _waiting_message("") is None and _waiting_message("not json") is None


def test_a_refused_submission_is_one_line_and_leaves_the_candidates_pending(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from dggan.errors import SearchError
    from dggan.execution.state import Status

    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    stand_ins(tmp_path / "bin", **A_GPU_CLUSTER,
              sbatch="echo 'sbatch: error: Invalid generic resource (gres) specification' >&2; exit 1")
    run = tmp_path / "run"
    with pytest.raises(SearchError, match="SLURM refused the jobs of candidates 1: .*Invalid generic resource"):
        run_search(run, tiny(slurm_cluster="slurm", slurm_partition="gpu"), progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        assert [r.status for r in ledger.candidates()] == [Status.PENDING]  # not shown running


def test_a_lost_job_says_everything_submitit_said() -> None:
    from submitit.core.utils import UncompletedJobError

    from dggan.execution.slurm import _result_of

    class Lost:
        def result(self) -> Any:
            raise UncompletedJobError("Job 12_0 (task: 0) with path /x/12_0_0_result.pkl\n"
                                      "has not produced any output (state: CANCELLED)\nError stream produced:")

    said = _result_of(Lost())
    assert said == ("Job 12_0 (task: 0) with path /x/12_0_0_result.pkl | has not produced any output (state:"
                    " CANCELLED) | Error stream produced:")


def test_the_poll_interval_is_a_setting(tmp_path: Path) -> None:
    executor = executor_for(tiny(slurm_poll_s=0.2), tmp_path / "run")
    assert executor.poll_s == 0.2  # type: ignore[attr-defined]
    assert executor_for(tiny(), tmp_path / "run2").poll_s == 0.5  # type: ignore[attr-defined]  # local default
    with pytest.raises(Exception, match="slurm_poll_s must be in"):
        tiny(slurm_poll_s=0)


def test_a_preempted_job_requeues_the_same_task() -> None:
    from dggan.execution.slurm import CandidateJob

    job = CandidateJob(task(3, Path("/nowhere")), threads=4)
    again = job.checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    assert again.function.task == job.task and again.function.threads == 4


@pytest.mark.slow
def test_slurm_executor_gives_the_same_ledger_and_a_new_driver_reuses_its_jobs(tmp_path: Path) -> None:
    config = tiny()
    run_search(tmp_path / "inprocess", config, executor=InProcessExecutor("cpu"), progress=False)
    run = tmp_path / "slurm"
    run_search(run, config, progress=False)  # executor "slurm" (its local cluster), jobs under RUN/slurm
    assert comparable(run) == comparable(tmp_path / "inprocess")
    submitted = sorted((run / "slurm").glob("*_submitted.pkl"))
    assert len(submitted) == len(comparable(run))  # one job per candidate
    # A driver that died after its jobs finished: the candidates are unfinished in the ledger, the jobs'
    # results are in RUN/slurm. The resumed driver takes them instead of running the jobs again.
    with Ledger.open(run / "ledger.sqlite") as ledger:
        last = ledger.candidates(step=max(r.step for r in ledger.candidates()))
        ledger.update_many([r.id for r in last], status="running", metric=None, normalized_metric=None)
    run_search(run, resume=True, progress=False)
    assert sorted((run / "slurm").glob("*_submitted.pkl")) == submitted
    assert comparable(run) == comparable(tmp_path / "inprocess")


def _job_process(run: Path, candidate: int) -> int | None:
    """The pid of the process running candidate ``candidate``'s job (a child of submitit's local controller)."""
    ids = sorted((run / "slurm" / "tasks").glob(f"c{candidate:05d}-*"), key=lambda p: p.stat().st_mtime)
    if not ids:
        return None
    controller = ids[-1].read_text().strip()
    try:
        children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _checkpointed(run: Path, candidate: int) -> bool:
    """The candidate's training has saved a checkpoint (written whole, then renamed into place)."""
    return (run / "candidates" / f"c{candidate:05d}" / "checkpoint.safetensors").exists()


@pytest.mark.slow
def test_killed_and_preempted_jobs_resume_from_the_checkpoint(tmp_path: Path) -> None:
    # 150 iterations: logged (and checkpointed) every 50, so a signal lands between two logged iterations.
    config = tiny(iterations=150, checkpoint_every=50, p=0.01, max_steps=1)
    run_search(tmp_path / "inprocess", config, executor=InProcessExecutor("cpu"), progress=False)
    run = tmp_path / "slurm"
    hits: dict[int, int] = {}  # candidate -> the signal its job got
    finished = threading.Event()

    def interrupt() -> None:
        plan = [(1, signal.SIGKILL), (2, signal.SIGUSR2)]  # a killed job, then a preempted one
        while plan and not finished.is_set():
            candidate, sig = plan[0]
            pid = _job_process(run, candidate)
            if pid is not None and _checkpointed(run, candidate):  # mid-training, past a checkpoint
                os.kill(pid, sig)
                hits[candidate] = sig
                plan.pop(0)
            time.sleep(0.02)

    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        run_search(run, config, progress=False)
    finally:
        finished.set()
        thread.join()
    assert hits == {1: signal.SIGKILL, 2: signal.SIGUSR2}, "the jobs finished before they could be interrupted"
    assert comparable(run) == comparable(tmp_path / "inprocess")
    logs = {p.name: p.read_text() for p in (run / "slurm").glob("*_log.out")}
    killed = [text for text in logs.values() if "candidate 1: resuming from its checkpoint at iteration" in text]
    assert killed, "the killed job was not submitted again"  # a second job, resuming past iteration 0
    requeued = [text for name, text in logs.items() if "Requeued job" in text]
    assert requeued and "candidate 2: resuming from its checkpoint at iteration" in requeued[0]
    iteration = int(requeued[0].split("candidate 2: resuming from its checkpoint at iteration ")[1].split()[0])
    assert iteration % 50 == 0 and iteration > 0  # saved at a logged iteration when the signal came


@pytest.mark.slow
def test_a_job_lost_twice_is_left_for_a_retry(tmp_path: Path) -> None:
    from dggan.execution.slurm import SlurmExecutor

    executor = SlurmExecutor(tmp_path / "jobs", cluster="local", gpus=0, setup=("exit 3",))  # every job dies
    try:
        (result,) = list(executor.run([task(5, tmp_path / "c5")]))
    finally:
        executor.close()
    assert result.candidate_id == 5 and result.retry and "ended without a result twice" in str(result.error)
    assert len(list((tmp_path / "jobs" / "tasks").iterdir())) == 1 and len(list((tmp_path / "jobs").glob("*.pkl"))) == 2
