"""A run's cost: wall time over every session (a killed one included), device-hours, and the baseline's share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dggan.execution.state import Status
from dggan.model.genome import Genome
from dggan.search.cost import CPU, GPU, cost_split, device_hours
from dggan.search.ledger import FinalRow, Heartbeat, Ledger, SessionRow
from dggan.search.view import run_cost

GENOME = Genome.base(latent_size=8, channels={4: 8, 8: 8, 16: 8})


def ledger_with(path: Path, seconds: list[tuple[float, float]], settings: dict | None = None) -> Ledger:
    """A ledger whose candidates trained and scored for the given (train, eval) seconds, all done now."""
    ledger = Ledger.create(path, settings or {"target_resolution": 16})
    ids = ledger.add_candidates([{"step": 0, "genome": GENOME, "parent": None, "seed": i} for i in range(len(seconds))])
    for cid, (train, evals) in zip(ids, seconds, strict=True):
        ledger.update(cid, status=Status.DONE, train_seconds=train, eval_seconds=evals)
    return ledger


def test_wall_time_counts_every_session_including_a_killed_one(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "ledger.sqlite", {}) as ledger:
        # Before heartbeats: a session that ran to its end is only in the driver's `sessions` list.
        # Then A: beats, closes cleanly, and the driver also lists it (71 s by its own clock); B: beats, then
        # kill -9, so no clean close and no list entry.
        ledger.set_meta("sessions", json.dumps([{"ended": 500.0, "wall_seconds": 100.0},
                                                {"ended": 1071.0, "wall_seconds": 71.0}]))
        for t in (1000.0, 1030.0, 1060.0):
            ledger.note_session("A", 1000.0, t, device="cpu", threads=2)
        ledger.note_session("A", 1000.0, 1070.0, ended=True)
        for t in (2000.0, 2030.0, 2060.0):
            ledger.note_session("B", 2000.0, t, device="cpu", threads=2)
        ledger.note_session("B", 2000.0, 2010.0)  # a late, out-of-order beat never moves the clock back
        sessions = ledger.sessions()
        assert [s.seconds for s in sessions] == [100.0, 71.0, 60.0]
        assert [s.ended for s in sessions] == [True, True, False]
        assert sessions[1].threads == 2  # a session keeps what its heartbeat said about it
        assert ledger.session_seconds() == 231.0
    with Ledger.open(tmp_path / "ledger.sqlite", readonly=True) as ro:  # what `dggan status` sees
        assert ro.session_seconds() == 231.0


def test_a_ledger_without_heartbeats_reads_its_listed_sessions(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "ledger.sqlite", {}) as ledger:
        assert ledger.sessions() == [] and ledger.session_seconds() == 0.0
        ledger.set_meta("sessions", json.dumps([{"ended": 50.0, "wall_seconds": 20.0}]))
    with Ledger.open(tmp_path / "ledger.sqlite", readonly=True) as ro:
        assert ro.sessions() == [SessionRow("meta:0", 30.0, 50.0, True, completed=True)]


def test_heartbeat_records_a_clean_session(tmp_path: Path) -> None:
    Ledger.create(tmp_path / "ledger.sqlite", {}).close()
    with Heartbeat(tmp_path / "ledger.sqlite", every=0.02, device="cpu", threads=3):
        with Ledger.open(tmp_path / "ledger.sqlite", readonly=True) as ro:
            (running,) = ro.sessions()  # on record before any work
        assert not running.ended and running.device == "cpu"
        time.sleep(0.2)
    with Ledger.open(tmp_path / "ledger.sqlite", readonly=True) as ro:
        (done,) = ro.sessions()
    assert done.ended and done.threads == 3 and done.seconds >= 0.2


def test_a_session_killed_with_sigkill_keeps_its_time_up_to_its_last_beat(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger.create(path, {}).close()
    code = ("import sys, time; from dggan.search.ledger import Heartbeat\n"
            "with Heartbeat(sys.argv[1], every=0.05, device='cpu', threads=1):\n"
            "    print('up', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        time.sleep(0.6)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Ledger.open(path, readonly=True) as ro:
        (killed,) = ro.sessions()
        assert not killed.ended and 0.4 <= killed.seconds <= 5.0
        assert ro.session_seconds() == killed.seconds


def test_device_hours_are_gpu_hours_on_cuda_and_core_hours_on_a_cpu(tmp_path: Path) -> None:
    with ledger_with(tmp_path / "ledger.sqlite", [(3000.0, 600.0), (1800.0, 0.0)]) as ledger:
        rows = ledger.candidates()
    now = time.time()
    cpu = [SessionRow("s", now - 3600, now + 3600, False, "cpu", 4)]
    hours = device_hours(rows, None, {}, cpu)
    assert hours.hours == {CPU: pytest.approx(4 * 5400 / 3600)} and hours.assumed == 0
    assert "4 torch threads x 1.5 h" in hours.text()
    gpu = [SessionRow("s", now - 3600, now + 3600, False, "cuda", 8)]
    assert device_hours(rows, None, {}, gpu).hours == {GPU: pytest.approx(1.5)}
    # Nothing recorded about the device: the settings say, or one CPU thread is assumed and the text says so.
    assert device_hours(rows, None, {"device": "cpu", "threads": 2}).hours == {CPU: pytest.approx(3.0)}
    unknown = device_hours(rows, None, {"device": "auto"})
    assert unknown.hours == {CPU: pytest.approx(1.5)} and "is not recorded: counted as CPU" in unknown.text()
    # A candidate's own record wins (a worker on another machine).
    final = FinalRow(1, Status.DONE, 1.0, 1.0, {"eval_seconds": 60.0, "device": "cuda"}, 10, 3540.0, "c", None)
    assert device_hours(rows, final, {}, cpu).hours == {CPU: pytest.approx(6.0), GPU: pytest.approx(1.0)}


def test_the_split_says_what_share_the_baseline_took(tmp_path: Path) -> None:
    with ledger_with(tmp_path / "ledger.sqlite", [(100.0, 20.0), (80.0, 20.0)]) as ledger:
        rows = ledger.candidates()
    with ledger_with(tmp_path / "base.sqlite", [(150.0, 30.0)]) as ledger:
        base = ledger.candidates()
    final = FinalRow(1, Status.DONE, 1.0, 1.0, {"eval_seconds": 10.0}, 10, 90.0, "c", None)
    split = cost_split(rows, final, base)
    assert (split.candidates, split.baseline, split.final) == (220.0, 180.0, 100.0)
    assert split.share(split.baseline) == pytest.approx(0.36)
    assert split.text() == "candidates 3.7 min (44%), ProgGAN baseline 3.0 min (36%), final training 1.7 min (20%)"


def test_run_cost_reads_a_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "baseline").mkdir()
    base = ledger_with(run / "baseline" / "ledger.sqlite", [(60.0, 0.0)])
    now = time.time()
    with ledger_with(run / "ledger.sqlite", [(100.0, 20.0)], {"device": "cpu", "threads": 1}) as ledger:
        ledger.note_session("x", now - 300.0, now)  # killed: never closed
    time.sleep(5.1)  # later: dggan compare extends the baseline after the search
    (later,) = base.add_candidates([{"step": 9, "genome": GENOME, "parent": None, "seed": 9}])
    base.update(later, status=Status.DONE, train_seconds=500.0, eval_seconds=0.0)
    base.close()
    cost = run_cost(run)
    assert cost is not None and cost.wall_seconds == pytest.approx(300.0) and cost.unfinished_sessions == 1
    assert (cost.split.baseline, cost.split.later) == (60.0, 500.0)
    assert cost.device_hours.hours == {CPU: pytest.approx(180 / 3600)}  # compare's training is not the search's
    text = " ".join(cost.lines())
    assert "CPU core-hours" in text and "5.0 min over 1 session(s), 1 of them running or ended without" in text
    assert "ProgGAN baseline 60 s (33%)" in text and "1/K of a step" in text
    assert "not counted: 8.3 min of ProgGAN training after the search (dggan compare)" in text
    assert run_cost(tmp_path / "nothing") is None


def test_status_shows_device_hours_and_counts_a_killed_session(tmp_path: Path) -> None:
    from searches import tiny

    from dggan.search.driver import run_search
    from dggan.search.watch import read_status

    run = tmp_path / "run"
    run_search(run, tiny(max_steps=1, final_iterations=2, tensorboard=False), progress=False)
    before = read_status(run)
    cost = next(line for line in before.lines() if line.startswith("Cost:"))
    assert "CPU core-hours (1 torch thread x" in cost and "over 1 session(s)" in cost
    with Ledger.open(run / "ledger.sqlite") as ledger:  # a later session, killed after 10 minutes
        ledger.note_session("killed", 10.0, 610.0, device="cpu", threads=1)
    after = next(line for line in read_status(run).lines() if line.startswith("Cost:"))
    assert "over 2 session(s), 1 of them running or ended without a clean close" in after
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        assert ledger.session_seconds() == pytest.approx(600.0 + ledger.sessions()[1].seconds)


def test_a_row_recorded_since_the_running_sessions_last_heartbeat_is_not_unrecorded() -> None:
    """A fresh run's `dggan status` said "the device of 2 record(s) is not recorded": rows written after the
    running session's last heartbeat (up to 30 s old) fell outside every session. A session that has not ended
    lasts until the next one starts."""
    from dggan.search.cost import where_it_ran

    running = [SessionRow("s", 100.0, 130.0, False, "cpu", 1)]
    assert where_it_ran({}, 150.0, running, {"device": "auto"}) == ("cpu", 1, False)
    # A killed session is followed by another: rows of the second are the second's, not the killed one's.
    both = [SessionRow("a", 100.0, 130.0, False, "cpu", 1), SessionRow("b", 200.0, 260.0, True, "cuda", 1)]
    assert where_it_ran({}, 150.0, both, {}) == ("cpu", 1, False)
    assert where_it_ran({}, 250.0, both, {}) == ("cuda", 1, False)
    assert where_it_ran({}, 400.0, both, {})[2] is True  # after a session that ended: not known
