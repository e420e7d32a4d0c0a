"""Watching a search: TensorBoard logs, ``dggan status`` and the report of a running search."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_executor import CurveExecutor
from searches import tiny

from dggan.search.driver import run_search
from dggan.search.ledger import Ledger


def events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_logs_every_candidate_and_every_step(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    run_search(run, tiny(baseline="auto", max_steps=1, final_iterations=2), progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
    trained = [r for r in rows if not r.extra.get("reused")]
    for r in trained:
        acc = events(run / "tb" / f"c{r.id:05d}")
        tags = set(acc.Tags()["scalars"])
        for name in ("loss_d", "loss_g", "gp", "drift", "d_real", "d_fake", "alpha", "images_per_s"):
            assert f"train/{name}" in tags
        assert [e.step for e in acc.Scalars("train/loss_d")] == [4]  # logged at its iterations
        (metric,) = acc.Scalars("metric/swd32")
        assert metric.step == 4 and metric.value == pytest.approx(r.metric, rel=1e-5)
        assert acc.Tags()["images"] == ["samples"]
    assert (run / "tb" / "best").is_dir() and (run / "tb" / "baseline" / "c00001").is_dir()
    search = events(run / "tb" / "search")
    tags = set(search.Tags()["scalars"])
    assert {"search/candidates/done", "search/candidates/pending", "search/best_normalized/8px",
            "search/best_normalized/16px", "search/final_normalized"} <= tags
    assert [e.step for e in search.Scalars("search/candidates/done")] == list(range(max(r.step for r in rows) + 1))
    done = sum(r.status == "done" for r in rows if not r.extra.get("proggan_route"))  # it joins after the steps
    assert search.Scalars("search/candidates/done")[-1].value == done
    best16 = min(r.normalized_metric for r in rows if r.status == "done" and r.resolution == 16)
    assert search.Scalars("search/best_normalized/16px")[-1].value == pytest.approx(best16, rel=1e-5)


def test_a_resumed_candidate_hides_what_it_trains_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard")
    from dggan._util.tensorboard import Board

    with Board(tmp_path / "c1") as board:  # interrupted after iteration 5; its checkpoint is at 2
        for i in range(1, 6):
            board.scalars({"loss_d": float(i)}, i, "train/")
    with Board(tmp_path / "c1", purge_step=3) as board:  # the worker resumes at 2: purge_step = iteration + 1
        for i in range(3, 6):
            board.scalars({"loss_d": 10.0 + i, "nan": float("nan")}, i, "train/")
    acc = events(tmp_path / "c1")
    assert [(e.step, e.value) for e in acc.Scalars("train/loss_d")] == [(1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0),
                                                                         (5, 15.0)]
    assert "train/nan" not in acc.Tags()["scalars"]  # non-finite values are left out
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    off = Board(tmp_path / "c2")
    off.scalars({"x": 1.0}, 1)
    off.close()
    assert not off.active and not (tmp_path / "c2").exists()


def test_without_tensorboard_nothing_breaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    run = tmp_path / "run"
    summary = run_search(run, tiny(max_steps=1, final_iterations=0), progress=False)
    assert summary.candidates > 0 and not (run / "tb").exists()
    log = (run / "log.txt").read_text()
    assert log.count("tensorboard is not installed (pip install 'dggan[tb]'") == 1
    quiet = tmp_path / "quiet"
    run_search(quiet, tiny(max_steps=1, final_iterations=0, tensorboard=False), progress=False)
    assert "tensorboard" not in (quiet / "log.txt").read_text()


# ---------------------------------------------------------------------- dggan status
def _row(cid: int, step: int, status: str, *, res: int = 8, norm: float | None = None, train: float | None = None,
         evals: float | None = None, updated: float = 100.0, iterations: int = 100) -> Any:
    from dggan.execution.state import Status
    from dggan.model.genome import Genome, constant_channels
    from dggan.search.ledger import CandidateRow

    genome = Genome.base(latent_size=8, channels=constant_channels(8, 8), base_resolution=8)
    return CandidateRow(id=cid, parent=None, step=step, action=None, genome=genome, resolution=res, g_params=1,
                        d_params=1, status=Status(status), metric=None if norm is None else norm * 10,
                        normalized_metric=norm, extra={}, train_seconds=train, eval_seconds=evals, checkpoint=None,
                        error=None, seed=0, kept=False, iterations=iterations, route_iterations=iterations,
                        updated=updated)


def test_status_is_a_pure_function_of_the_rows() -> None:
    from dggan.search.watch import Progress, compute_status

    rows = [_row(1, 0, "done", norm=1.0, train=30, evals=6),
            _row(2, 1, "done", norm=0.8, train=10, evals=2), _row(3, 1, "done", norm=0.9, train=20, evals=4),
            _row(4, 1, "failed"), _row(5, 1, "pruned", norm=None, train=3),
            _row(6, 1, "running"),  # training: stats written since it was handed out, half way
            _row(7, 1, "running"),  # handed out with the same batch, waiting for a worker
            _row(8, 1, "pending", res=16)]
    progress = {6: Progress({"iteration": 50, "images_per_s": 120.0}, mtime=200.0),
                7: Progress({"iteration": 25, "images_per_s": 99.0}, mtime=50.0)}  # an earlier rung's (stale)
    settings = {"metric": "swd512", "iterations": 100, "max_steps": 3, "final_iterations": 10}
    status = compute_status(rows, None, settings, run="RUN", locked=True, pid=42, progress=progress, now=300.0)
    assert (status.state, status.pid, status.phase, status.step) == ("running", 42, "step 1", 1)
    assert status.counts == {"pending": 1, "running": 2, "done": 3, "diverged": 0, "failed": 1, "pruned": 1}
    assert status.step_counts["done"] == 2 and status.step_counts["running"] == 2
    assert status.training == [6] and status.images_per_s == 120.0
    # Mean of step 1's finished candidates: (12 + 24) / 2 = 18 s; c6 is half done, c7 a quarter (an earlier
    # rung), c8 not started; one trains at a time, as now.
    assert status.eta_seconds == pytest.approx(18 * 0.5 + 18 * 0.75 + 18)
    assert "mean of 2 finished one(s) of step 1" in status.eta_note
    assert [(b.resolution, b.candidate, b.normalized_metric) for b in status.best] == [(8, 2, 0.8)]
    assert status.score == "swd512 / ProgGAN"
    text = "\n".join(status.lines())
    assert "running (pid 42) — step 1" in text and "1 of the 2 running candidate(s)" in text and "120 images/s" in text
    assert "3 done, 2 running, 1 pending, 1 failed, 1 pruned" in text and "c00002" in text
    # Nothing finished yet in the newest step: the previous step's candidates are the estimate's basis.
    early = compute_status(rows[:1] + [_row(9, 1, "running")], None, settings, locked=True, progress={})
    assert early.eta_seconds == pytest.approx(36.0) and "of step 0" in early.eta_note
    alone = compute_status(rows[:1], None, settings, locked=True)  # every candidate done, no final model yet
    assert alone.phase == "final training" and alone.eta_seconds is None
    text = "\n".join(alone.lines())
    assert "final training: running" in text and "the final model" in text and "time left" not in text
    last = compute_status(rows[:1], None, {**settings, "final_iterations": 0, "baseline": "none"}, locked=True)
    assert last.eta_seconds == 0.0  # nothing left in the step, no final training to come
    first = compute_status([_row(1, 0, "running")], None, settings, locked=True)
    assert first.eta_seconds is None and "no estimate" in first.eta_note
    stopped = compute_status(rows, None, settings, locked=False, completed=False)
    assert stopped.state == "stopped" and stopped.eta_seconds is None and stopped.pid is None
    assert "dggan search --resume" in "\n".join(stopped.lines())
    # After kill -9 nothing runs: what was in flight is pending (interrupted), never "running".
    assert stopped.counts["running"] == 0 and stopped.counts["pending"] == 3 and stopped.interrupted == 2
    assert "2 of the pending were in flight" in "\n".join(stopped.lines())
    # A candidate whose stats reached its budget is being scored, not waiting for a worker.
    scored = compute_status([rows[0], _row(9, 1, "running")], None, settings, locked=True,
                            progress={9: Progress({"iteration": 100, "images_per_s": 80.0}, mtime=200.0)})
    assert scored.scoring == [9] and scored.training == []
    assert "0 of the 1 running candidate(s), 1 being scored," in "\n".join(scored.lines())
    assert "wait for a worker" not in "\n".join(scored.lines())
    # While the baseline trains (no candidate yet): no "time left in step None".
    base = compute_status([], None, settings, locked=True, baseline_unfinished=1)
    assert base.phase == "ProgGAN baseline" and "step None" not in "\n".join(base.lines())
    assert "the ProgGAN baseline" in "\n".join(base.lines())
    assert compute_status([], None, settings).state == "empty"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of a run, with its size and time of change; but the lock, which a test writes itself, and
    SQLite's shared-memory index (ledger.sqlite-shm, where WAL readers take their read marks) and an empty
    write-ahead log (a reader may open one; a write would fill it)."""
    import gc

    gc.collect()  # close the ledger connections a finished in-process search leaves to the collector
    files = [p for p in folder.rglob("*") if p.is_file() and p.name not in (".lock", "ledger.sqlite-shm")
             and not (p.name == "ledger.sqlite-wal" and p.stat().st_size == 0)]
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


@pytest.mark.usefixtures("fake_checkpoints")
def test_status_command_reads_a_run_without_writing(tmp_path: Path) -> None:
    import fcntl

    from typer.testing import CliRunner

    from dggan.cli import app

    runner = CliRunner()
    run = tmp_path / "run"
    run_search(run, tiny(max_steps=1, final_iterations=2, tensorboard=False), executor=CurveExecutor(), progress=False)
    before = _snapshot(run)
    result = runner.invoke(app, ["status", str(run), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
    assert status["state"] == "finished" and status["final"] == "done"
    assert sum(status["counts"].values()) == len(rows) and status["counts"]["done"] == len(rows)
    best16 = min((r for r in rows if r.resolution == 16), key=lambda r: r.normalized_metric)
    assert next(b for b in status["best"] if b["resolution"] == 16)["candidate"] == best16.id
    text = runner.invoke(app, ["status", str(run), "--watch", "--interval", "0.1"])  # not running: one screen
    assert text.exit_code == 0 and "finished" in text.output and best16.genome.summary() in text.output
    with open(run / ".lock", "a+") as handle:  # a search holds the run
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.truncate(0)
        handle.write("4242")
        handle.flush()
        before = _snapshot(run)
        result = runner.invoke(app, ["status", str(run), "--json"])
        assert json.loads(result.output)["state"] == "running" and json.loads(result.output)["pid"] == 4242
    assert _snapshot(run) == before  # read-only: nothing written, nothing created
    missing = runner.invoke(app, ["status", str(tmp_path)])
    assert missing.exit_code == 2 and "not a search run folder" in missing.output


# ---------------------------------------------------------------------- the report of a running search
@pytest.mark.usefixtures("fake_checkpoints")
def test_report_of_a_running_search_is_a_dated_snapshot(tmp_path: Path) -> None:
    import fcntl
    import re

    from dggan.analysis import generate_report
    from dggan.analysis.report import read_run, snapshot_banner

    run = tmp_path / "run"
    run_search(run, tiny(max_steps=1, final_iterations=0, tensorboard=False), executor=CurveExecutor(),
               progress=False)
    with Ledger.open(run / "ledger.sqlite") as ledger:  # as in the middle of a step
        last = ledger.candidates()[-1].id
        ledger.update(last, status="running", metric=None, normalized_metric=None)
    before = _snapshot(run)
    with open(run / ".lock", "a+") as handle:  # the search holds the run while the report is built
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.truncate(0)
        handle.write("4242")
        handle.flush()
        result = generate_report(run, n_samples=4, replay_seeds=2)
    assert result.snapshot is not None and "running search (pid 4242)" in result.snapshot
    html = result.path.read_text()
    banner = re.search(r'<div class="snapshot" id="snapshot" role="status">([^<]*)</div>', html)
    assert banner and re.search(r"Snapshot of a running search \(pid 4242\), taken at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
                                banner.group(1))
    assert html.index('id="snapshot"') < html.index('<section id="result"')  # said first
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["snapshot"] == result.snapshot and summary["generated"] in result.snapshot
    after = {k: v for k, v in _snapshot(run).items() if not k.startswith("report/")}
    assert after == {k: v for k, v in before.items() if not k.startswith("report/")}  # the run is only read
    # Not running, but unfinished: still a snapshot, and the page says how to continue.
    stopped = snapshot_banner(read_run(run), locked=False, pid=None, taken="now")  # what generate_report shows
    assert stopped is not None and "unfinished search" in stopped and "--resume" in stopped
    with Ledger.open(run / "ledger.sqlite") as ledger:
        ledger.update(last, status="done")
    assert generate_report(run, n_samples=4, replay_seeds=2).snapshot is None  # finished: no banner
    assert 'id="snapshot"' not in (run / "report" / "index.html").read_text()


@pytest.mark.usefixtures("fake_checkpoints")
def test_the_baseline_folder_is_running_while_its_search_holds_the_lock(tmp_path: Path) -> None:
    import fcntl

    from dggan.search.watch import read_status

    run = tmp_path / "run"
    run_search(run, tiny(baseline="auto", max_steps=1, final_iterations=2, tensorboard=False),
               executor=CurveExecutor(), progress=False)
    assert read_status(run / "baseline").state == "finished"
    with open(run / ".lock", "a+") as handle:  # the search (not the baseline folder's own lock) holds the run
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.truncate(0)
        handle.write("4242")
        handle.flush()
        status = read_status(run / "baseline")
        assert (status.state, status.pid) == ("running", 4242)
