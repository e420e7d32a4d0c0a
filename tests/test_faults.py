"""Faults and bad input, as a new user and an unlucky operator meet them (small budgets, CPU only).

The classes: a search in which nothing works must exit non-zero; a passing fault (a full disk, a lost
parent checkpoint, a lost worker) must stop the search and change nothing, so that --resume continues
exactly; bad input gets one line, exit 2, and leaves nothing behind; nothing hangs; absurd sizes are
refused before anything is allocated; workers die with their driver.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from searches import tiny
from typer.testing import CliRunner

from dggan.cli import app
from dggan.errors import ConfigError, LedgerError, SearchError
from dggan.execution import worker as worker_module
from dggan.execution.state import Status
from dggan.search.config import SearchConfig
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger

runner = CliRunner()

FAST: dict[str, Any] = {"baseline": "none", "filters": [8], "max_steps": 1}  # one step, one filter choice


def fast(**overrides: Any) -> SearchConfig:
    return tiny(**{**FAST, **overrides})


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(fast(**overrides).to_dict()))
    return path


def search_cli(tmp_path: Path, *args: str) -> Any:
    return runner.invoke(app, ["search", "--config", str(write_config(tmp_path)), "--no-progress", *args])


def rows_of(run: Path) -> list[dict[str, Any]]:
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        return [r.to_dict() for r in ledger.candidates()]


def outcome(run: Path) -> list[tuple[Any, ...]]:
    return [(r["id"], r["parent"], json.dumps(r["action"]), r["status"], r["genome_key"],
             None if r["metric"] is None else round(r["metric"], 6), r["kept"]) for r in rows_of(run)]


def one_line_error(result: Any, needle: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert needle in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------- 1. nothing works: non-zero
# Every case: `dggan search` says what is wrong and how to fix it in one line, exits 2 and leaves no run folder.
# Settings cases (settings=True) are refused where the settings enter (SearchConfig), the rest by the checks
# before any work (search.preflight: data, device, Inception weights, the baseline).
@pytest.mark.parametrize("overrides,needle,settings", [
    ({"top_k": 0}, "top_k", True),
    ({"p": 0.0}, "p must be in", True),
    ({"p": 1.5}, "p must be in", True),
    ({"grow_g": False, "grow_d": False, "grow_res": False}, "action space is empty", True),
    ({"target_resolution": 24}, "power of two", True),
    ({"target_resolution": 4}, "below base_resolution", True),
    ({"metric": "is1k"}, "higher-is-better", True),
    ({"metric": "lpips"}, "unknown metric", True),
    ({"base_resolution": 4}, "SWD uses 7x7", True),
    ({"colour": 1}, "unknown setting", True),
    ({"lr": math.inf}, "lr must be a number", True),
    ({"data": "synthetic:n=3,res=16"}, "has 3 images, fewer than one batch", False),
    ({"data": "cifar10"}, "needs a path", False),
    ({"data": "synthetic:n=64,res=8"}, "below the target resolution 16px", False),
    ({"device": "cuda"}, "CUDA is not available", False),
    ({"metric": "fid16", "rung_metric": "fid8"}, "weights-inception-2015-12-05", False),
    ({"metric": "fid16", "rung_metric": "fid8", "inception_weights": "/no/such.pth"}, "does not exist", False),
    ({"inception_weights": "/etc/passwd", "metric": "fid16", "rung_metric": "fid8"},
     "is not a torch file of Inception-v3 weights", False),
    ({"baseline": {"8": 1.0}}, "no value for resolution(s) [16]", False),
])
def test_what_cannot_work_fails_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                overrides: dict[str, Any], needle: str, settings: bool) -> None:
    if overrides.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.delenv("DGGAN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))  # no cached Inception weights
    if settings:
        with pytest.raises(ConfigError, match=re.escape(needle)):
            fast(**overrides)
    args = [f"--set={k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    result = runner.invoke(app, ["search", "--preset", "demo", "--run-dir", str(tmp_path / "r"), "--no-progress",
                                 *args])
    one_line_error(result, needle)
    assert not (tmp_path / "r").exists()


def test_a_search_without_a_result_exits_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def every_candidate_fails(task: worker_module.CandidateTask) -> worker_module.CandidateResult:
        raise worker_module.CandidateFailure("no architecture can be built")

    monkeypatch.setattr(worker_module, "_run", every_candidate_fails)
    result = search_cli(tmp_path, "--run-dir", str(tmp_path / "run"))
    one_line_error(result, "ended without its result", code=1)
    assert "no architecture can be built" in result.output  # said even with --no-progress
    assert "no architecture can be built" in (tmp_path / "run" / "log.txt").read_text()


# ---------------------------------------------------------------------- 2. a passing fault changes nothing
def test_a_full_disk_stops_the_search_and_resume_continues_exactly(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    reference = tmp_path / "reference"
    run_search(reference, fast(p=1.0), progress=False)
    real_save = worker_module.Trainer.save
    calls = {"n": 0}

    def disk_full(self: Any, path: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device", str(path))
        return real_save(self, path)

    monkeypatch.setattr(worker_module.Trainer, "save", disk_full)
    run = tmp_path / "run"
    with pytest.raises(SearchError, match="No space left on device.*stays pending.*--resume"):
        run_search(run, fast(p=1.0), progress=False)
    stopped = rows_of(run)
    assert any(r["status"] == "pending" and "interrupted" in (r["error"] or "") for r in stopped)
    assert not any(r["status"] == "failed" for r in stopped)
    monkeypatch.setattr(worker_module.Trainer, "save", real_save)  # space freed
    run_search(run, resume=True, progress=False)
    assert outcome(run) == outcome(reference)


def test_a_lost_parent_checkpoint_stops_the_search_and_resume_continues_exactly(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    run_search(reference, fast(p=1.0, max_steps=2), progress=False)
    run = tmp_path / "run"
    config = fast(p=1.0, max_steps=2)
    # Run step 0 only, then lose the parent's checkpoint behind the search's back.
    from dggan.execution.executors import InProcessExecutor
    from dggan.search.config import create_run
    from dggan.search.driver import Search

    create_run(run, config)
    search = Search(run, config, InProcessExecutor("cpu"), progress=False)
    search.ledger.add_candidates([{"step": 0, "parent": None, "action": None, "seed": config.seed * 100_003 + 1,
                                   "genome": config.initial_genomes()[0], "iterations": 4, "route_iterations": 4}])
    step0 = search.candidates(0)  # trained
    kept = search.keep(0, lambda: search.rules.select(step0, 0))
    search.grow(1, search.rules.children(1, kept))
    parent_ckpt = run / "candidates" / "c00001" / "checkpoint.safetensors"
    saved = parent_ckpt.read_bytes()
    parent_ckpt.unlink()
    with pytest.raises(SearchError, match="no such checkpoint.*stays pending"):
        run_search(run, resume=True, progress=False)
    assert all(r["status"] in ("done", "pending") for r in rows_of(run))
    parent_ckpt.write_bytes(saved)  # restored
    run_search(run, resume=True, progress=False)
    assert outcome(run) == outcome(reference)


# ---------------------------------------------------------------------- 3. one-line errors, nothing left behind
def test_bad_paths_and_values_are_one_line_errors(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    one_line_error(search_cli(tmp_path, "--run-dir", str(a_file)), "is a file")
    one_line_error(runner.invoke(app, ["train", "--run-dir", str(a_file), "--no-progress"]), "is a file")
    for setting, needle in (("seed=abc", "seed must be an integer, got 'abc'"),
                            ("latent_size=0", "latent_size must be >= 1"),
                            ("checkpoint_every=-1", "checkpoint_every must be >= 0")):
        result = search_cli(tmp_path, "--run-dir", str(tmp_path / "r"), "--set", setting)
        one_line_error(result, needle)
        assert not (tmp_path / "r").exists()
    one_line_error(runner.invoke(app, ["train", "--action", "grow_res", "--no-progress"]), "--action needs --parent")
    if not torch.cuda.is_available():
        one_line_error(runner.invoke(app, ["sample", str(a_file), "--device", "cuda"]), "CUDA is not available")


def test_damaged_checkpoints_and_ledgers_are_one_line_errors(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_search(run, fast(), progress=False)
    ckpt = run / "best" / "checkpoint.safetensors"
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(ckpt), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    state = json.loads(meta["state"])
    state["iteration"] = "abc"
    edited = tmp_path / "edited.safetensors"
    save_file(tensors, str(edited), metadata={**meta, "state": json.dumps(state)})
    one_line_error(runner.invoke(app, ["sample", str(edited)]), "'iteration' must be an integer")
    one_line_error(runner.invoke(app, ["train", "--from", str(edited), "--no-progress"]), "'iteration' must be")
    one_line_error(runner.invoke(app, ["eval", str(ckpt), "--batch-size", "-1"]), "--batch-size must be >= 1")
    one_line_error(runner.invoke(app, ["eval", str(ckpt), "--batch-size", "0", "--metric", "swd16"]),
                   "--batch-size must be >= 1")  # this one used to loop for ever
    # A ledger row with a broken genome: ls and --resume say which candidate, no traceback.
    with sqlite3.connect(run / "ledger.sqlite") as conn:
        conn.execute("UPDATE candidates SET genome = '{\"latent_size\": 8}' WHERE id = 2")
    one_line_error(runner.invoke(app, ["ls", str(run)]), "candidate 2")
    one_line_error(runner.invoke(app, ["search", "--resume", str(run), "--no-progress"]), "candidate 2")
    for damage in (b"random bytes" * 100, (run / "ledger.sqlite").read_bytes()[:1000]):
        (run / "ledger.sqlite").write_bytes(damage)
        for wal in run.glob("ledger.sqlite-*"):
            wal.unlink()
        one_line_error(runner.invoke(app, ["search", "--resume", str(run), "--no-progress"]), "ledger")
        one_line_error(runner.invoke(app, ["ls", str(run)]), "ledger")
        one_line_error(runner.invoke(app, ["report", str(run)]), "ledger")


def stopped_before_the_final_training(run: Path) -> None:
    """A finished run as it was when killed right before its final training (a run's settings cannot be edited
    to ask for one: the ledger holds them)."""
    import shutil

    with Ledger.open(run / "ledger.sqlite") as ledger:
        ledger._conn.execute("DELETE FROM final")
        if ledger._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'final_scores'").fetchone():
            ledger._conn.execute("DELETE FROM final_scores")
        ledger._conn.commit()
    shutil.rmtree(run / "best", ignore_errors=True)


def test_a_missing_best_checkpoint_stops_the_final_training(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = fast(final_iterations=2, baseline="none")
    run_search(run, config, progress=False)
    stopped_before_the_final_training(run)
    # The final training is next, and the best candidate's checkpoint is gone.
    with Ledger.open(run / "ledger.sqlite") as ledger:
        best = min((r for r in ledger.candidates(status=Status.DONE) if r.resolution == 16),
                   key=lambda r: (r.normalized_metric, r.id))
    (run / best.checkpoint).unlink()  # type: ignore[operator]
    with pytest.raises(SearchError, match=f"candidate {best.id}'s checkpoint, which is missing"):
        run_search(run, resume=True, progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        assert ledger.final() is None  # nothing was recorded


def test_a_full_disk_in_the_ledger_is_named(tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path / "ledger.sqlite", {})

    class FullConnection:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        def __exit__(self, *exc: object) -> None:
            return None

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

    ledger._conn = FullConnection(ledger._conn)  # type: ignore[assignment]
    with pytest.raises(LedgerError, match="disk is full.*free disk space.*nothing already recorded is lost"):
        ledger.set_meta("x", "1")


def test_a_report_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    from fixtures.synthetic_ledger import write_synthetic_run

    run = write_synthetic_run(tmp_path / "run", 30, seed=1)
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the report's folder should go")
    result = runner.invoke(app, ["report", str(run), "--out", str(blocker / "report")])
    one_line_error(result, "is a file, so no folder can be made")  # exit 2, as the README's fault table says


# ---------------------------------------------------------------------- 5. sizes
def test_absurd_sizes_are_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    from dggan.data import SyntheticShapes
    from dggan.model.actions import Action, ActionSpace, apply_action
    from dggan.model.genome import Genome, constant_channels
    from dggan.training.trainer import TrainConfig, Trainer

    huge = apply_action(Genome.base(latent_size=8, channels=constant_channels(16, 8)), Action("grow_g", 3, 10**9),
                        space=ActionSpace(filters=(10**9,)))
    with pytest.raises(ConfigError, match=r"needs ~\d.* GiB"):
        Trainer(huge, TrainConfig(iterations=1, batch_size=8), SyntheticShapes(16, 16))
    for setting, needle in (("initial_channels=[1000000]", "an initial genome needs"),
                            ("filters=[1000000000]", "largest grow_g layer needs")):
        result = search_cli(tmp_path, "--run-dir", str(tmp_path / "r"), "--set", setting)
        one_line_error(result, needle)
        assert "memory_limit_gb" in result.output and not (tmp_path / "r").exists()
    small = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    with pytest.raises(ConfigError, match="memory_limit_gb"):
        Trainer(small, TrainConfig(iterations=1, batch_size=8, memory_limit_gb=1e-6), SyntheticShapes(16, 16))


# ---------------------------------------------------------------------- 6. orphans
@pytest.mark.slow
def test_workers_die_with_their_driver(tmp_path: Path) -> None:
    from dggan.execution.executors import _running  # a zombie counts as gone (tested below)

    script = tmp_path / "driver.py"
    script.write_text(
        "import time\n"
        "from dggan.execution.executors import LocalExecutor\n"
        "if __name__ == '__main__':\n"
        "    ex = LocalExecutor(workers=2, device='cpu')\n"
        "    pool = ex._make_pool(); ex._pool = pool\n"
        "    futures = [pool.submit(time.sleep, 60) for _ in range(2)]\n"
        "    time.sleep(3)\n"
        "    print(' '.join(str(p) for p in pool._processes), flush=True)\n"
        "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]  # type: ignore[union-attr]
        assert len(workers) == 2
        started = _descendants(proc.pid)  # the workers, the fork server they came from, the resource tracker
        assert set(workers) < started
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone, not its process group
        proc.wait()
        # A worker busy in its initializer notices only when that is done (seconds on a busy 2-core machine),
        # so the wait is generous; a process that never exits fails after it.
        deadline = time.time() + 60
        alive = sorted(started)
        while alive and time.time() < deadline:
            time.sleep(0.2)
            alive = [p for p in alive if _running(p)]
        assert not alive, f"processes {alive} (workers: {workers}) outlived their driver"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_worker_tells_a_dead_driver_from_a_live_one() -> None:
    from dggan.execution.executors import _running

    assert _running(os.getpid())
    child = subprocess.Popen(["true"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not _running(child.pid)
    child.wait()
    assert not _running(child.pid)


def _descendants(pid: int) -> set[int]:
    try:
        children = {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()
    return children.union(*(_descendants(c) for c in children))


# ---------------------------------------------------------------------- 7 and 8. smaller wrongs
def test_continuing_a_checkpoint_keeps_its_data(tmp_path: Path) -> None:
    base = ["train", "--iterations", "4", "--batch-size", "8", "--channels", "8", "--latent-size", "8",
            "--max-resolution", "16", "--no-progress"]
    assert runner.invoke(app, [*base, "--data", "synthetic:n=32,res=16,seed=5", "--run-dir",
                               str(tmp_path / "a")]).exit_code == 0
    ckpt = tmp_path / "a" / "checkpoint.safetensors"
    result = runner.invoke(app, [*base[:1], "--from", str(ckpt), "--iterations", "6", "--no-progress",
                                 "--run-dir", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "options.json").read_text())["data"] == "synthetic:n=32,res=16,seed=5"
    other = runner.invoke(app, [*base[:1], "--from", str(ckpt), "--iterations", "6", "--no-progress",
                                "--run-dir", str(tmp_path / "c"), "--data", "synthetic:n=32,res=16"])
    assert other.exit_code == 0 and "continuing on 'synthetic:n=32,res=16' as asked" in other.output


def test_resume_keeps_the_run_accounting_and_files_are_readable(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = run_search(run, fast(), progress=False)
    again = run_search(run, resume=True, progress=False)
    assert again.total_wall_seconds >= first.wall_seconds and again.ok
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        sessions = ledger.sessions()
        assert [s.completed for s in sessions] == [True, True]  # each recorded once, by its heartbeat
        assert ledger.session_seconds() >= first.wall_seconds
    result = runner.invoke(app, ["search", "--resume", str(run), "--no-progress"])
    assert result.exit_code == 0 and "overhead" not in result.output
    mask = os.umask(0)
    os.umask(mask)
    for name in ("options.json", "best/metrics.json", "best/checkpoint.safetensors", "best/samples.png"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


# ---------------------------------------------------------------------- 9. values typed at the edge
@pytest.mark.parametrize("edit,needle", [
    (lambda g: g.update(latent_size=True), "'latent_size' must be an integer, got true"),
    (lambda g: g["channels"].update({"4": 32.5}), "channels must map resolutions"),
    (lambda g: g["channels"].update({"4": False}), "channels must map resolutions"),
    (lambda g: g.update(g_layers=[{"kernel": 3, "filters": 8.0, "resolution": 8}]), "g_layers[0].filters must be"),
    (lambda g: g.update(image_channels=2), "image_channels must be 1 (greyscale) or 3"),
    (lambda g: g["channels"].update({"4": 2**40}), "channels[4] must be an int in [1, 2147483647]"),
])
def test_a_genome_file_is_checked_field_by_field(tmp_path: Path, edit: Any, needle: str) -> None:
    from dggan.model.genome import Genome, constant_channels

    data = Genome.base(latent_size=8, channels=constant_channels(16, 8)).to_dict()
    edit(data)
    path = tmp_path / "genome.json"
    path.write_text(json.dumps(data))
    one_line_error(runner.invoke(app, ["genome", "show", str(path)]), needle)
    runs = tmp_path / "runs"
    one_line_error(runner.invoke(app, ["train", "--genome", str(path), "--run-dir", str(runs), "--no-progress"]),
                   needle)
    assert not runs.exists()


def test_a_binary_genome_or_settings_file_is_one_line(tmp_path: Path) -> None:
    blob = tmp_path / "blob.json"
    blob.write_bytes(bytes(range(256)) * 4)
    one_line_error(runner.invoke(app, ["genome", "show", str(blob)]), "not a genome file: binary")
    one_line_error(runner.invoke(app, ["search", "--config", str(blob), "--run-dir", str(tmp_path / "r")]),
                   "not a settings file: binary")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("setting,needle", [
    ("seed=1e30", "seed must be an integer, got 1e+30 (integers must lie within"),
    ("iterations=1000000000000000000000", "iterations must be an integer, got 1000000000000000000000"),
    ("seed=4294967296", "seed must be <= 4,294,967,295"),
    ("final_iterations=10000000000000", "final_iterations must be <= 1,000,000,000,000"),
    ("metric=swd1000000000000000000000", "metric: 'swd1000000000000000000000' asks for"),
    ("kernels=[]", "kernels and filters must each list at least one value"),
    ("latent_size=true", "latent_size must be an integer, got true"),
    ("initial_channels=[32.5]", "initial_channels must be a list of integers"),
    ("data=synthetic:num_images=abc", "num_images (n)=abc must be a whole number"),
    ("data=synthetic:n=99999999999999999999999", "must be in [1, 2,147,483,647]"),
])
def test_settings_are_typed_and_bounded_where_they_enter(tmp_path: Path, setting: str, needle: str) -> None:
    result = search_cli(tmp_path, "--run-dir", str(tmp_path / "r"), "--set", setting)
    one_line_error(result, needle)
    assert not (tmp_path / "r").exists()


def test_maps_in_settings_are_typed_too() -> None:
    for baseline in ({"8": True, "16": 1.0}, {"8": 1e400, "16": 1.0}, {"eight": 1.0}):
        with pytest.raises(ConfigError, match="baseline must map resolutions to finite numbers"):
            fast(baseline=baseline)
    with pytest.raises(ConfigError, match=r"slurm_extra .* bad option\(s\): \['mem'\]"):
        fast(slurm_extra={"mem": 10**30})


def test_a_string_for_a_list_of_lines_is_one_line() -> None:
    from dggan._util.settings import parse_assignment

    key, value = parse_assignment("slurm_setup=module load cuda/12")
    assert fast(**{key: value}).slurm_setup == ("module load cuda/12",)  # one shell line, never three
    assert fast(kernels="3,5").kernels == (3, 5)  # a list of numbers still takes "3,5"


def test_a_rung_metric_is_checked_only_with_halving_and_never_dearer() -> None:
    assert fast(rung_metric="swd64").rung_metric == "swd64"  # halving off: never used, so not refused
    with pytest.raises(ConfigError, match="rung_metric 'swd64' .64 samples. costs more than the metric 'swd32'"):
        fast(rung_metric="swd64", halving_eta=3)
    assert fast(rung_metric="swd16", halving_eta=3).rung_metric == "swd16"


# ---------------------------------------------------------------------- 10. each command checks its own flags
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dggan.data import SyntheticShapes
    from dggan.model.genome import Genome, constant_channels
    from dggan.training.trainer import TrainConfig, Trainer

    genome = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    trainer = Trainer(genome, TrainConfig(iterations=1, batch_size=8), SyntheticShapes(16, 16))
    trainer.data_spec = "synthetic:n=16,res=16"
    return trainer.save(tmp_path_factory.mktemp("ckpt") / "checkpoint.safetensors")


@pytest.mark.parametrize("flags,needle", [
    (["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--seed", "99999999999"], "--seed must be <= 4,294,967,295"),
])
def test_eval_and_sample_check_their_flags_alike(tiny_ckpt: Path, tmp_path: Path, flags: list[str],
                                                 needle: str) -> None:
    one_line_error(runner.invoke(app, ["eval", str(tiny_ckpt), "--metric", "swd16", *flags]), needle)
    one_line_error(runner.invoke(app, ["sample", str(tiny_ckpt), "--out", str(tmp_path / "g.png"), *flags]), needle)
    one_line_error(runner.invoke(app, ["train", "--run-dir", str(tmp_path / "runs"), *flags]), needle)
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "runs").exists()


def test_sample_sizes_formats_and_folders(tiny_ckpt: Path, tmp_path: Path) -> None:
    from PIL import Image

    one_line_error(runner.invoke(app, ["sample", str(tiny_ckpt), "--n", "100000000"]), "--n must be <= 16,384")
    one_line_error(runner.invoke(app, ["sample", str(tiny_ckpt), "--out", str(tmp_path / "g.txt")]),
                   "unknown image type '.txt'")
    one_line_error(runner.invoke(app, ["sample", str(tiny_ckpt), "--out", str(tmp_path)]),
                   f"--out {tmp_path} is a folder")
    for name, fmt in (("g.jpg", "JPEG"), ("g.png", "PNG"), ("g.webp", "WEBP")):
        result = runner.invoke(app, ["sample", str(tiny_ckpt), "--n", "4", "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert Image.open(tmp_path / name).format == fmt  # the bytes are what the suffix says


def test_sample_refuses_a_grid_that_does_not_fit() -> None:
    from dggan.cli import options

    options.grid_fits(64, 256, 3)
    with pytest.raises(ConfigError, match="GiB grid; at most"):
        options.grid_fits(16_000, 256, 3)


def test_errors_point_the_right_way(tiny_ckpt: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    for args in (["eval", str(missing)], ["train", "--from", str(missing), "--run-dir", str(tmp_path / "r")],
                 ["sample", str(missing), "--out", str(tmp_path / "g.png")]):
        one_line_error(runner.invoke(app, args), "no such checkpoint file or folder")
    for damage in (tiny_ckpt.read_bytes()[:200], os.urandom(4096)):
        broken = tmp_path / "broken.safetensors"
        broken.write_bytes(damage)
        result = runner.invoke(app, ["eval", str(broken)])
        one_line_error(result, "not a readable checkpoint")
        assert "--data" not in result.output  # it is the file, not the missing flag
    grey = "digits" if _has_sklearn() else None
    if grey:  # an RGB model against greyscale data: the channels, not descriptor shapes
        one_line_error(runner.invoke(app, ["eval", str(tiny_ckpt), "--metric", "swd16", "--data", grey,
                                           "--no-progress"]), "colour (3-channel) images but")


def _has_sklearn() -> bool:
    import importlib.util

    return importlib.util.find_spec("sklearn") is not None


def test_a_search_fault_says_what_resume_can_change() -> None:
    from dggan.cli.search import with_resume_hint

    told = with_resume_hint(SearchError("... fix the cause, then continue with `dggan search --resume RUN`"))
    assert "--resume may change only the runtime settings" in str(told) and "workers" in str(told)
    assert "new search with --run-dir" in str(told)
    plain = SearchError("no data")
    assert with_resume_hint(plain) is plain


# ---------------------------------------------------------------------- 11. exit codes and fast refusals
def test_unwritable_run_folders_exit_2_before_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    one_line_error(search_cli(tmp_path, "--run-dir", str(a_file / "run")), "is a file, so no folder can be made")
    one_line_error(runner.invoke(app, ["train", "--run-dir", str(a_file / "runs"), "--no-progress"]),
                   "is a file, so no folder can be made")
    run = tmp_path / "run"
    run_search(run, fast(), progress=False)
    import dggan.runs

    real_access = os.access
    # Root ignores permissions, so pretend: every folder here refuses writes (reads still work).
    monkeypatch.setattr(dggan.runs.os, "access", lambda p, mode: False if mode & os.W_OK and
                        str(p).startswith(str(tmp_path)) else real_access(p, mode))
    one_line_error(search_cli(tmp_path, "--run-dir", str(tmp_path / "new")), "is read-only")
    one_line_error(runner.invoke(app, ["search", "--resume", str(run), "--no-progress"]), "is read-only")
    one_line_error(runner.invoke(app, ["report", str(run)]), "is read-only")
    one_line_error(runner.invoke(app, ["sample", str(run / "best"), "--out", str(tmp_path / "g.png")]),
                   "is read-only")


def test_a_mistyped_run_dir_answers_without_loading_torch(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code = ("import sys\nfrom dggan.cli import main\nsys.argv = ['dggan', 'search', '--run-dir', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print('torch' in sys.modules, e.code)\n")
    result = subprocess.run([sys.executable, "-c", code, str(a_file)], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "2"], result.stdout + result.stderr
    assert "is a file" in result.stderr


def test_a_relative_resume_records_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_search("run", fast(final_iterations=2), progress=False)
    stopped_before_the_final_training(tmp_path / "run")  # the final training is what the resume does
    result = runner.invoke(app, ["search", "--resume", "run", "--no-progress"])
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "run" / "best" / "metrics.json").read_text())["checkpoint"]
    assert Path(recorded).is_absolute() and Path(recorded).is_file()


def test_search_takes_data_like_train_and_eval(tmp_path: Path) -> None:
    result = search_cli(tmp_path, "--data", "synthetic:n=32,res=16", "--print-config")
    assert result.exit_code == 0 and json.loads(result.output)["data"] == "synthetic:n=32,res=16"
    one_line_error(search_cli(tmp_path, "--data", "synthetic:n=abc", "--run-dir", str(tmp_path / "r")),
                   "must be a whole number")
    assert not (tmp_path / "r").exists()
