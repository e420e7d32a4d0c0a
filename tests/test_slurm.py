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

from dggan.search.config import SearchConfig
from dggan.search.driver import run_search
from dggan.search.executors import InProcessExecutor, executor_for
from dggan.search.ledger import Ledger
from dggan.search.worker import CandidateTask

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
    return CandidateTask(candidate_id=cid, genome_json="{}", parent_checkpoint=None, out_dir=str(out), train={},
                         data="synthetic", metric="swd32")


def test_sbatch_options_come_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dggan.errors import SearchError

    bin_dir = tmp_path / "bin"  # stand-ins for SLURM's commands: sbatch keeps the script it was given
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(SearchError, match="no srun on the PATH"):
        executor_for(tiny(slurm_cluster="slurm"), tmp_path / "run")
    sbatch = f'cp "$1" {tmp_path}/script.sh\necho "Submitted batch job 4242"'
    for name, script in (("srun", "exit 0"), ("sbatch", sbatch)):
        (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
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


def test_a_preempted_job_requeues_the_same_task() -> None:
    from dggan.search.slurm import CandidateJob

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
    from dggan.search.slurm import SlurmExecutor

    executor = SlurmExecutor(tmp_path / "jobs", cluster="local", gpus=0, setup=("exit 3",))  # every job dies
    try:
        (result,) = list(executor.run([task(5, tmp_path / "c5")]))
    finally:
        executor.close()
    assert result.candidate_id == 5 and result.retry and "ended without a result twice" in str(result.error)
    assert len(list((tmp_path / "jobs" / "tasks").iterdir())) == 1 and len(list((tmp_path / "jobs").glob("*.pkl"))) == 2
