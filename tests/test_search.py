from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_executor import CurveExecutor
from searches import tiny
from typer.testing import CliRunner

from dggan.cli import app
from dggan.execution import worker as worker_module
from dggan.execution.executors import InProcessExecutor, LocalExecutor, make_executor
from dggan.search.baseline import BaselineCurve
from dggan.search.config import preset
from dggan.search.driver import SearchError, run_search
from dggan.search.ledger import Ledger

runner = CliRunner()

def ledger_rows(run: Path) -> list[dict[str, Any]]:
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        return [r.to_dict() for r in ledger.candidates()]


def comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["id"], r["parent"], r["step"], json.dumps(r["action"]), r["status"], r["genome_key"],
             None if r["metric"] is None else round(r["metric"], 6), r["kept"]) for r in rows]


def test_search_runs_algorithm_1(tmp_path: Path) -> None:
    summary = run_search(tmp_path / "run", tiny(), progress=False)
    rows = ledger_rows(tmp_path / "run")
    assert rows[0]["step"] == 0 and rows[0]["action"] is None and rows[0]["parent"] is None
    steps = {r["step"] for r in rows}
    assert steps == {0, 1, 2} and summary.steps == 3
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", readonly=True) as ledger:
        for step in steps:
            kept = ledger.kept(step)
            done = sorted((r for r in rows if r["step"] == step and r["status"] == "done"),
                          key=lambda r: (r["normalized_metric"], r["id"]))
            assert kept == [r["id"] for r in done[:2]]  # top-K by normalised metric
            children = [r for r in rows if r["step"] == step + 1]
            assert all(c["parent"] in kept for c in children)  # only kept parents have children
        final = ledger.final()
    assert all(r["resolution"] <= 16 for r in rows)
    assert all(r["normalized_metric"] == pytest.approx(r["metric"] / 100.0) for r in rows if r["status"] == "done")
    assert final is not None and final.status == "done" and final.iterations == 6
    best = tmp_path / "run" / "best"
    assert (best / "checkpoint.safetensors").exists() and (best / "samples.png").exists()
    assert json.loads((best / "metrics.json").read_text())["status"] == "done"
    for r in rows:
        folder = tmp_path / "run" / "candidates" / f"c{r['id']:05d}"
        assert (folder / "checkpoint.safetensors").exists() and (folder / "genome.json").exists()
        assert json.loads((folder / "stats.jsonl").read_text().splitlines()[-1])["iteration"] == 4


def test_sampling_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    run_search(tmp_path / "a", tiny(final_iterations=0, max_steps=1), progress=False)
    run_search(tmp_path / "b", tiny(final_iterations=0, max_steps=1), progress=False)
    run_search(tmp_path / "c", tiny(final_iterations=0, max_steps=1, seed=1), progress=False)
    a, b, c = (comparable(ledger_rows(tmp_path / x)) for x in "abc")
    assert a == b
    assert [x[:4] for x in a] != [x[:4] for x in c] or [x[6] for x in a] != [x[6] for x in c]


def test_failed_and_diverged_children_are_recorded_and_never_kept(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real_run = worker_module._run

    def flaky(task: worker_module.CandidateTask) -> worker_module.CandidateResult:
        if task.candidate_id == 2:  # a fault of the candidate itself (e.g. a shape that cannot be built)
            raise worker_module.CandidateFailure("simulated crash")
        if task.candidate_id == 3:
            return worker_module.CandidateResult(3, "diverged", error="non-finite loss")
        return real_run(task)

    monkeypatch.setattr(worker_module, "_run", flaky)
    run_search(tmp_path / "run", tiny(p=1.0, max_steps=1, final_iterations=0), progress=False)
    rows = {r["id"]: r for r in ledger_rows(tmp_path / "run")}
    assert rows[2]["status"] == "failed" and "simulated crash" in rows[2]["error"]
    assert rows[3]["status"] == "diverged" and rows[3]["error"] == "non-finite loss"
    assert not rows[2]["kept"] and not rows[3]["kept"]
    assert any(r["status"] == "done" and r["kept"] for r in rows.values() if r["step"] == 1)
    assert "simulated crash" in (tmp_path / "run" / "candidates" / "c00002" / "error.txt").read_text()


@pytest.mark.usefixtures("fake_checkpoints")
def test_auto_baseline_runs_the_proggan_route(tmp_path: Path) -> None:
    run_search(tmp_path / "run", tiny(baseline="auto", max_steps=1, final_iterations=0), executor=CurveExecutor(),
               progress=False)
    base_rows = ledger_rows(tmp_path / "run" / "baseline")
    # The ProgGAN route: the initial model, its grow_res child after one budget, ...
    assert base_rows[0]["action"] is None and base_rows[0]["parent"] is None
    assert (base_rows[0]["resolution"], base_rows[0]["route_iterations"]) == (8, 4)
    grown = [r for r in base_rows if r["action"] == {"kind": "grow_res"}]
    assert len(grown) == 1 and grown[0]["parent"] == base_rows[0]["id"] and grown[0]["route_iterations"] == 8
    # ... and continuation points (same network, trained further) wherever the search's routes went.
    by_id = {r["id"]: r for r in base_rows}
    for r in base_rows[1:]:
        if r["action"] is None:
            parent = by_id[r["parent"]]
            assert r["genome_key"] == parent["genome_key"] and r["route_iterations"] == parent["route_iterations"] + 4
    assert all(r["status"] == "done" for r in base_rows)
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", readonly=True) as ledger:
        curve = BaselineCurve.from_json(ledger.get_meta("baseline") or "")
    assert curve.kind == "auto" and curve.points[8][0] == (4, pytest.approx(base_rows[0]["metric"]))
    rows = ledger_rows(tmp_path / "run")
    for r in rows:  # every candidate is scored against ProgGAN at its resolution and its route iterations
        assert curve.covers(r["resolution"], r["route_iterations"])
        expected = curve.value(r["resolution"], r["route_iterations"])[0]
        assert r["normalized_metric"] == pytest.approx(r["metric"] / expected)
    # The search's initial candidate is the baseline's first one (same genome, seed and budget): reused.
    first = rows[0]
    assert first["normalized_metric"] == pytest.approx(1.0) and first["train_seconds"] == 0.0
    assert first["checkpoint"] == "baseline/candidates/c00001/checkpoint.safetensors"


@pytest.mark.usefixtures("fake_checkpoints")
def test_route_iterations_add_up_along_the_route(tmp_path: Path) -> None:
    run_search(tmp_path / "run", tiny(initial_iterations=6, max_steps=2, final_iterations=0),
               executor=CurveExecutor(), progress=False)
    rows = {r["id"]: r for r in ledger_rows(tmp_path / "run")}
    for r in rows.values():
        if r["parent"] is None:
            assert (r["iterations"], r["route_iterations"]) == (6, 6)
        else:
            assert r["iterations"] == 4 and r["route_iterations"] == rows[r["parent"]]["route_iterations"] + 4
    result = runner.invoke(app, ["ls", str(tmp_path / "run"), "--json"])
    assert {r["id"]: r["route_iterations"] for r in json.loads(result.output)} == {
        i: r["route_iterations"] for i, r in rows.items()}


@pytest.mark.usefixtures("fake_checkpoints")
def test_ls_json_and_table(tmp_path: Path) -> None:
    run_search(tmp_path / "run", tiny(max_steps=1, final_iterations=0), executor=CurveExecutor(), progress=False)
    result = runner.invoke(app, ["ls", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    required = {"id", "parent", "step", "action", "resolution", "g_params", "d_params", "status", "metric",
                "normalized_metric", "kept"}
    assert all(required <= set(r) for r in rows)
    assert rows[0]["action"] is None
    for r in rows[1:]:
        assert r["action"]["kind"] in ("grow_g", "grow_d", "grow_res")
        if r["action"]["kind"] == "grow_res":
            assert set(r["action"]) == {"kind"}
        else:
            assert set(r["action"]) == {"kind", "kernel", "filters"}
        assert r["status"] in ("pending", "running", "done", "diverged", "failed")
    table = runner.invoke(app, ["ls", str(tmp_path / "run")])
    assert table.exit_code == 0 and "status" in table.output


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path: Path) -> None:
    config = tiny(iterations=30, checkpoint_every=5, p=0.6, max_steps=1, final_iterations=4)
    reference = tmp_path / "reference"
    run_search(reference, config, progress=False)
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps(config.to_dict()))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dggan", "search", "--config", str(cfg_file), "--run-dir", str(run), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done_before: dict[int, float] = {}
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if not (run / "ledger.sqlite").exists():
                continue
            rows = ledger_rows(run)
            done = [r for r in rows if r["status"] == "done"]
            if len(done) >= 2 and any(r["status"] == "running" for r in rows):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                done_before = {r["id"]: (run / r["checkpoint"]).stat().st_mtime_ns for r in done}
                break
    finally:
        if proc.poll() is None:
            proc.kill()
    assert done_before, "the search finished before it could be killed; make it longer"
    with pytest.raises(SearchError, match="already exists"):
        run_search(run, config, progress=False)  # a run folder is never overwritten
    result = runner.invoke(app, ["search", "--resume", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = ledger_rows(run)
    for cid, mtime in done_before.items():  # finished candidates were not retrained
        row = next(r for r in rows if r["id"] == cid)
        assert (run / row["checkpoint"]).stat().st_mtime_ns == mtime
    assert comparable(rows) == comparable(ledger_rows(reference))
    with Ledger.open(run / "ledger.sqlite", readonly=True) as a, Ledger.open(reference / "ledger.sqlite") as b:
        assert a.final() is not None and a.final().metric == pytest.approx(b.final().metric)  # type: ignore[union-attr]


@pytest.fixture(scope="session")  # session: the Ray test runs at the end of the suite (conftest)
def inprocess_ledger(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    """The tiny one-step search's ledger trained in this process: what every executor must reproduce."""
    run = tmp_path_factory.mktemp("inprocess") / "run"
    run_search(run, tiny(max_steps=1, final_iterations=0), executor=InProcessExecutor("cpu"), progress=False)
    return comparable(ledger_rows(run))


def same_ledger(run: Path, executor: Any, inprocess_ledger: list[tuple[Any, ...]]) -> None:
    try:
        run_search(run, tiny(max_steps=1, final_iterations=0), executor=executor, progress=False)
    finally:
        executor.close()
    assert comparable(ledger_rows(run)) == inprocess_ledger


@pytest.mark.slow
@pytest.mark.parametrize("group", [None, 2])
def test_local_executor_gives_the_same_ledger(tmp_path: Path, group: int | None,
                                              inprocess_ledger: list[tuple[Any, ...]]) -> None:
    """One candidate per worker process, and two trained together per worker call (what gpu_sharing=streams
    does on a GPU)."""
    executor = LocalExecutor(workers=1, device="cpu", group=2) if group else make_executor("local", 2, "cpu")
    same_ledger(tmp_path / "run", executor, inprocess_ledger)


@pytest.mark.slow
def test_ray_executor_gives_the_same_ledger(tmp_path: Path, inprocess_ledger: list[tuple[Any, ...]],
                                            ray_instance: object | None) -> None:
    if ray_instance is None:
        pytest.skip("Ray is not installed")
    same_ledger(tmp_path / "run", make_executor("ray", workers=2, device="cpu"), inprocess_ledger)


def test_the_fork_server_preload_leaves_cuda_alone() -> None:
    """The local executor's workers fork from a server that imported the worker module; CUDA refuses a child
    whose parent had initialised it, so importing the worker must not touch CUDA at all."""
    code = ("import torch\n"
            "def touched(*args, **kwargs):\n"
            "    raise SystemExit('CUDA touched')\n"
            "torch._C._cuda_getDeviceCount = torch.cuda._lazy_init = touched\n"
            "import dggan.execution.executors, dggan.execution.worker\n"
            "print('imported', flush=True)\n"
            "torch.cuda.is_available()\n")  # the guard itself works: this one is caught
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout == "imported\n" and out.returncode == 1 and "CUDA touched" in out.stderr, out.stderr


class PairsExecutor:
    """Two candidates at a time through ``run_candidates``, in this process (a streams-sharing worker's job)."""

    name = "pairs"

    def run(self, tasks: list[worker_module.CandidateTask]) -> Iterator[worker_module.CandidateResult]:
        worker_module.set_worker_device("cpu")
        for i in range(0, len(tasks), 2):
            yield from worker_module.run_candidates(tasks[i:i + 2])

    def close(self) -> None:
        pass


def test_candidates_trained_together_give_the_same_ledger(tmp_path: Path,
                                                          inprocess_ledger: list[tuple[Any, ...]]) -> None:
    run_search(tmp_path / "pairs", tiny(max_steps=1, final_iterations=0), executor=PairsExecutor(), progress=False)
    rows = ledger_rows(tmp_path / "pairs")
    assert len(rows) > 2 and comparable(rows) == inprocess_ledger


def test_resume_on_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "is not a dggan search run" in result.output


@pytest.mark.usefixtures("fake_checkpoints")
def test_two_searches_on_one_run_folder(tmp_path: Path) -> None:
    import fcntl

    run = tmp_path / "run"
    run_search(run, tiny(max_steps=1, final_iterations=0), executor=CurveExecutor(), progress=False)
    with open(run / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another search holds the run
        with pytest.raises(SearchError, match="in use by another search"):
            run_search(run, resume=True, progress=False)


def test_presets_are_valid() -> None:
    assert preset("cifar10").top_k == 20 and preset("cifar10").p == 0.4 and preset("cifar10").latent_size == 128
    assert preset("lsun-bedroom").target_resolution == 256 and preset("lsun-bedroom").latent_size == 512
    assert preset("demo").data == "digits"  # the main job runs on real images (was: synthetic)
    assert preset("shapes").data.startswith("synthetic")
    # The planted advantage (#27): the shapes search with ProgGAN starved to width 8, kernel 7 on offer, and
    # nothing else changed (benchmarks/README.md measures what that plants).
    planted, shapes = preset("planted").to_dict(), preset("shapes").to_dict()
    assert {k for k in planted if planted[k] != shapes[k]} == {"initial_channels", "kernels"}
    assert tuple(planted["initial_channels"]) == (8,) and tuple(planted["kernels"]) == (3, 7)
    assert preset("cifar10").fade_iterations == 19_200 and preset("cifar10").baseline == "auto"
    from dggan.cli.search import PRESET_NAMES
    from dggan.search.config import PRESETS

    assert sorted(PRESETS) == list(PRESET_NAMES)


def test_baseline_command_and_using_its_run(tmp_path: Path) -> None:
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps(tiny().to_dict()))
    base = tmp_path / "base"
    result = runner.invoke(app, ["baseline", "--config", str(cfg_file), "--run-dir", str(base), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = ledger_rows(base)
    assert rows[0]["action"] is None and [r["action"] for r in rows].count({"kind": "grow_res"}) == 1
    assert all(r["status"] == "done" for r in rows)
    # It reaches as far as the search can: max_steps (2) + the forced grow_res step, plus the final training.
    tiny_config = tiny()
    assert max(r["route_iterations"] for r in rows if r["resolution"] == 16) == 4 + 3 * 4 + 2
    assert max(r["route_iterations"] for r in rows if r["resolution"] == 8) == 4 + tiny_config.max_steps * 4
    run_search(tmp_path / "run", tiny(baseline=str(base), max_steps=1, final_iterations=0), progress=False)
    first = ledger_rows(tmp_path / "run")[0]
    assert first["normalized_metric"] == pytest.approx(first["metric"] / rows[0]["metric"])


@pytest.mark.slow
def test_local_executor_survives_a_killed_worker(tmp_path: Path) -> None:
    import threading

    from dggan.execution.executors import LocalExecutor

    config = tiny(max_steps=1, final_iterations=0, iterations=40, p=1.0)
    executor = LocalExecutor(workers=2, device="cpu")
    killed: list[int] = []
    finished = threading.Event()

    def kill_a_worker() -> None:
        while not finished.is_set():
            pool = executor._pool
            pids = list(pool._processes) if pool is not None and pool._processes else []  # type: ignore[attr-defined]
            rows = ledger_rows(tmp_path / "run") if (tmp_path / "run" / "ledger.sqlite").exists() else []
            if pids and any(r["status"] == "running" for r in rows):
                time.sleep(1.0)
                if not finished.is_set():  # only a kill while the search runs counts
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        run_search(tmp_path / "run", config, executor=executor, progress=False)
    finally:
        finished.set()
        killer.join()
        executor.close()
    assert killed, "no worker was killed while the search ran; make the candidates longer"
    rows = ledger_rows(tmp_path / "run")
    assert rows and all(r["status"] == "done" for r in rows)  # the lost work was resubmitted


def test_resume_may_change_where_a_search_runs_but_not_what_it_computes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_search(run, tiny(max_steps=1, final_iterations=0), progress=False)
    result = runner.invoke(app, ["search", "--resume", str(run), "--no-progress", "--set", "threads=2",
                                 "--set", "workers=1"])
    assert result.exit_code == 0, result.output
    assert "torch threads: 2" in (run / "log.txt").read_text()
    result = runner.invoke(app, ["search", "--resume", str(run), "--no-progress", "--set", "top_k=4"])
    assert result.exit_code == 2 and "may change (not ['top_k'])" in result.output
    assert all(f"'{name}'" in result.output for name in ("candidates_per_gpu", "cuda_graphs", "device", "executor",
                                                          "slurm_partition", "tensorboard", "threads", "workers"))
