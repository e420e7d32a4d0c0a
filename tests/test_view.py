"""One read-only view of a run (``search.view.RunView``): the ledger read once, the numbers it holds; sessions
recorded once (the heartbeats, ``completed`` when a session ran to its end), an old run's meta list still read.
Searches on an executor that trains nothing (tests/fixtures/fake_executor.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_executor import CurveExecutor, Interrupted

from dggan.search.algorithm import best_per_resolution
from dggan.search.config import SearchConfig, create_run
from dggan.search.cost import work_seconds
from dggan.search.driver import Search
from dggan.search.ledger import Ledger
from dggan.search.view import RunView, run_cost
from dggan.search.watch import final_training_curve, read_status

SETTINGS: dict[str, Any] = {
    "data": "synthetic:n=32,res=16", "metric": "swd32", "baseline": "auto", "initial_channels": [8],
    "latent_size": 8, "target_resolution": 16, "top_k": 2, "p": 0.5, "kernels": [3], "filters": [8],
    "max_steps": 2, "iterations": 10, "final_iterations": 40, "final_snapshots": 3, "tensorboard": False,
    "tables": False,
}


def search(run: Path, executor: CurveExecutor) -> Path:
    config = SearchConfig.from_dict(SETTINGS)
    if not run.exists():
        create_run(run, config)
    Search(run, config, executor, progress=False).run()  # type: ignore[arg-type]
    return run


@pytest.fixture
def finished(tmp_path: Path, fake_checkpoints: None) -> Path:
    return search(tmp_path / "run", CurveExecutor(penalty=0.2))


def test_the_view_holds_what_the_ledger_holds(finished: Path) -> None:
    view = RunView.read(finished)
    with Ledger.open(finished / "ledger.sqlite", readonly=True) as ledger:
        rows, final = ledger.candidates(), ledger.final()
        assert view.rows == rows and view.final == final and final is not None
        assert view.settings == ledger.settings() and view.rungs == ledger.rungs()
        assert view.final_scores == ledger.final_scores() and view.scores("point") == ledger.final_scores("point")
        assert view.sessions == ledger.sessions() and view.session_seconds() == ledger.session_seconds()
        assert view.get_meta("final_pick") == ledger.get_meta("final_pick") is not None
        assert view.get_meta("baseline") == ledger.get_meta("baseline")
        assert view.candidate(final.candidate) == ledger.get(final.candidate)
    assert view.work_seconds() == work_seconds(rows, final) and sum(view.work_seconds()) > 0
    assert view.best_per_resolution() == best_per_resolution(rows)
    assert view.completed and not view.locked and view.version == 2
    assert view.baseline is not None
    with Ledger.open(finished / "baseline" / "ledger.sqlite", readonly=True) as sub:
        assert view.baseline.rows == sub.candidates()
        assert view.baseline.work_seconds() == work_seconds(sub.candidates(), sub.final())
    assert view.cost() == run_cost(finished) and view.cost().split.baseline > 0
    assert final_training_curve(view) == final_training_curve(finished)


def test_reading_a_run_opens_its_ledger_once(finished: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Path] = []
    real = Ledger.open.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Ledger], path: str | Path, readonly: bool = False) -> Ledger:
        opened.append(Path(path).resolve())
        assert readonly, "a view never opens a ledger for writing"
        return real(cls, path, readonly)

    monkeypatch.setattr(Ledger, "open", classmethod(counting))
    view = RunView.read(finished)
    view.work_seconds(), view.session_seconds(), view.cost(), view.best_per_resolution(), final_training_curve(view)
    assert view.baseline is view.baseline  # read once, on first use
    run_ledger, base_ledger = (finished / "ledger.sqlite").resolve(), (finished / "baseline/ledger.sqlite").resolve()
    assert opened == [run_ledger, base_ledger]
    opened.clear()
    lines = read_status(finished).lines()  # dggan status: the run's ledger once, the baseline's once
    assert opened.count(run_ledger) == 1 and opened.count(base_ledger) == 1
    assert any(line.startswith("Cost:") for line in lines) and "finished" in lines[0]


def test_a_view_of_no_run_is_one_line(tmp_path: Path) -> None:
    from dggan.errors import LedgerError

    with pytest.raises(LedgerError, match="no ledger here"):
        RunView.read(tmp_path)
    assert run_cost(tmp_path) is None


# ---------------------------------------------------------------------- sessions, recorded once
@pytest.mark.usefixtures("fake_checkpoints")
def test_each_session_is_recorded_once_and_completed_only_when_it_ran_to_its_end(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        search(run, CurveExecutor(penalty=0.2, stop_after=3))
    (stopped,) = RunView.read(run).sessions
    assert stopped.ended and not stopped.completed  # closed (it raised), but did not run to its end
    assert read_status(run).state == "stopped"
    search(run, CurveExecutor(penalty=0.2))
    view = RunView.read(run)
    assert [s.completed for s in view.sessions] == [False, True] and view.completed
    assert len({s.session for s in view.sessions}) == 2
    assert "sessions" not in view.meta and "last_summary" not in view.meta  # the heartbeats are the one record
    assert read_status(run).state == "finished"


def test_an_old_run_with_only_the_meta_list_still_reads(finished: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(finished, old)
    with Ledger.open(old / "ledger.sqlite", readonly=True) as ledger:
        (session,) = ledger.sessions()
    conn = sqlite3.connect(old / "ledger.sqlite")
    with conn:  # as a run from before heartbeats: its completed session only in the driver's list
        conn.execute("DROP TABLE heartbeats")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('sessions', ?)",
                     (json.dumps([{"ended": session.last_seen, "wall_seconds": session.seconds}]),))
    conn.close()
    view = RunView.read(old)
    (listed,) = view.sessions
    assert listed.completed and listed.ended and listed.seconds == pytest.approx(session.seconds)
    assert view.completed and read_status(old).state == "finished"
    assert read_status(old).cost[0] == read_status(finished).cost[0]  # the same wall time, one session


def test_a_heartbeats_table_from_before_completed_reads_and_takes_the_column(finished: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(finished, old)
    conn = sqlite3.connect(old / "ledger.sqlite")
    with conn:  # heartbeats, but no `completed` column and no list: a session that never said it finished
        conn.execute("ALTER TABLE heartbeats DROP COLUMN completed")
    conn.close()
    (session,) = RunView.read(old).sessions  # a read-only open of the old table works
    assert not session.completed and session.ended
    assert read_status(old).state == "stopped"
    with Ledger.open(old / "ledger.sqlite") as ledger:  # a writer adds the column on its first beat
        ledger.note_session(session.session, session.started, session.last_seen, completed=True)
    assert RunView.read(old).completed
