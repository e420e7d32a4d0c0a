"""Real clusters on this machine: a one-node SLURM with accounting (started by `.ci/slurm_up`) and a two-node
Ray on localhost (started here). On each, a tiny search at default settings gives exactly the in-process
ledger, also when one fault hits it mid-candidate: a scancel of a running job (SLURM resubmits it and it
resumes from its checkpoint), the second Ray node stopped (Ray retries its tasks on the head node). Skipped,
with the reason, where the cluster cannot be had (no SLURM daemons, no Ray)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from searches import tiny

from dggan.execution.executors import InProcessExecutor
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger

pytestmark = pytest.mark.slow
# Candidates long enough (a few seconds each) for a fault to land while one trains.
LONGER = {"max_steps": 1, "final_iterations": 0, "iterations": 200, "checkpoint_every": 50, "tensorboard": False}


def comparable(run: Path) -> list[tuple[Any, ...]]:
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = [r.to_dict() for r in ledger.candidates()]
    return [(r["id"], r["parent"], r["step"], json.dumps(r["action"]), r["status"], r["genome_key"],
             None if r["metric"] is None else round(r["metric"], 6), r["kept"]) for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    run = tmp_path_factory.mktemp("reference") / "run"
    run_search(run, tiny(**LONGER), executor=InProcessExecutor("cpu"), progress=False)
    return comparable(run)


def slurm_up() -> str | None:
    """Why no real SLURM can be used here, or None when one answers (sinfo idle, sacct working)."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "no SLURM client here (.ci/slurm_up installs and starts a one-node cluster as root)"
    try:
        idle = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20).stdout
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"SLURM does not answer ({exc})"
    if "idle" not in idle and "mix" not in idle:
        return f"no idle SLURM node (sinfo: {idle.strip() or 'nothing'}); start one with .ci/slurm_up"
    if acct.returncode != 0:
        return f"SLURM accounting does not answer ({acct.stderr.strip()}); .ci/slurm_up starts slurmdbd"
    return None


@pytest.mark.slurm_cluster
def test_a_search_on_a_real_slurm_cluster_survives_a_cancelled_job(tmp_path: Path,
                                                                  reference: list[tuple[Any, ...]]) -> None:
    why = slurm_up()
    if why:
        pytest.skip(why)
    cancelled: list[str] = []
    stop = threading.Event()

    def cancel_one_running_job() -> None:  # once a candidate's job runs (past its start-up), scancel it
        while not stop.is_set() and not cancelled:
            out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%M"], capture_output=True,
                                 text=True).stdout.split()
            running = [line.split("|")[0] for line in out if line.split("|")[-1] not in ("0:00", "0:01", "0:02")]
            if running:
                subprocess.run(["scancel", running[0]], check=False)
                cancelled.append(running[0])
            time.sleep(0.2)

    watcher = threading.Thread(target=cancel_one_running_job, daemon=True)
    watcher.start()
    run = tmp_path / "run"
    try:  # the settings' defaults: CPUs and GPUs per job follow the partition (here 0 GPUs)
        run_search(run, tiny(**LONGER, executor="slurm", slurm_cluster="slurm", slurm_poll_s=0.5), progress=False)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert cancelled, "no job ran long enough to be cancelled; make the candidates longer"
    assert comparable(run) == reference
    states = subprocess.run(["sacct", "-n", "-X", "-j", cancelled[0].split("_")[0], "-o", "JobID,State"],
                            capture_output=True, text=True).stdout
    assert "CANCELLED" in states  # the fault really happened, and the search took it in its stride


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_node_ray() -> Iterator[tuple[str, dict[str, str], subprocess.Popen[bytes]]]:
    """A Ray head and a second node on localhost, one CPU each (each its own process group, so the second
    node alone can be stopped), with token authentication as current Ray wants it; yields (the address, the
    environment a driver needs: RAY_AUTH_MODE and RAY_AUTH_TOKEN, the second node's process)."""
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.skip("Ray is not installed (pip install 'dggan[ray]')")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="rayc", dir="/tmp")  # Ray's socket paths must stay short
    common = ["--num-cpus=1", "--num-gpus=0", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **auth}
    head = subprocess.Popen([str(ray_cli), "start", "--head", f"--port={port}", "--include-dashboard=false",
                             f"--temp-dir={temp}", *common], start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes = [head]
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if subprocess.run([str(ray_cli), "status", f"--address={address}"], capture_output=True,
                              env=env).returncode == 0:
                break
            time.sleep(1)
        else:
            pytest.skip("the Ray head did not come up in 90 s")
        second = subprocess.Popen([str(ray_cli), "start", f"--address={address}", *common], start_new_session=True,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        nodes.append(second)
        for _ in range(90):
            status = subprocess.run([str(ray_cli), "status", f"--address={address}"], capture_output=True,
                                    text=True, env=env).stdout
            if "2.0 CPU" in status or "0.0/2.0 CPU" in status:
                break
            time.sleep(1)
        else:
            pytest.skip("the second Ray node did not join in 90 s")
        yield address, auth, second
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.ray_cluster
def test_a_search_on_a_real_two_node_ray_cluster_survives_a_lost_node(
        tmp_path: Path, reference: list[tuple[Any, ...]],
        two_node_ray: tuple[str, dict[str, str], subprocess.Popen[bytes]]) -> None:
    address, auth, second = two_node_ray
    run, config = tmp_path / "run", tmp_path / "config.json"
    config.write_text(json.dumps(tiny(**LONGER, executor="ray", workers=2).to_dict()))
    driver = subprocess.Popen([sys.executable, "-m", "dggan", "search", "--config", str(config), "--run-dir",
                               str(run), "--no-progress"], env={**os.environ, **auth, "RAY_ADDRESS": address},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stopped_at = None
    try:
        deadline = time.time() + 300
        while driver.poll() is None and time.time() < deadline:
            time.sleep(0.3)
            if stopped_at is None and (run / "ledger.sqlite").exists():
                with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
                    running = [r.id for r in ledger.candidates() if r.status.value == "running"]
                if len(running) >= 2:  # both nodes hold a candidate: stop the second node mid-candidate
                    time.sleep(1.0)
                    os.killpg(second.pid, signal.SIGKILL)
                    stopped_at = running
        output = driver.communicate(timeout=max(1.0, deadline - time.time()))[0].decode(errors="replace")
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, output[-3000:]
    assert stopped_at, "the search never had two candidates running at once"
    assert comparable(run) == reference
