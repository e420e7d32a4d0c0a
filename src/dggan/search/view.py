"""One read-only look at a run folder: ``RunView.read(run_dir)`` opens the ledger once, read-only (safe while the
search runs, on a read-only filesystem too), reads in one go what the views of a run need (settings, candidates,
rungs, the final row and scores, sessions, meta) and closes it. ``dggan status``, ``ls``, the cost, the headline,
the report, compare and the tables read a run through it; the writers (runner, driver, final training, baseline)
keep their ``Ledger``.

What several views compute is computed here once: the recorded work seconds (``search.cost.work_seconds``),
the wall time over every session, whether a session ran to its end, the best per resolution, the cost.
The auto baseline's own view (``RUN/baseline``) is read on first use.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import LedgerError
from ..runs import RunLayout, search_lock
from .algorithm import best_per_resolution
from .cost import RunCost, after, cost_split, device_hours, work_seconds
from .ledger import CandidateRow, FinalRow, FinalScore, Ledger, RungRow, SessionRow


@dataclass(frozen=True)
class RunView:
    """A run folder's ledger as it was when read: plain data, nothing written."""

    layout: RunLayout
    version: int  # the ledger's schema version
    settings: dict[str, Any]
    rows: list[CandidateRow]  # every candidate, by id
    rungs: list[RungRow]
    final: FinalRow | None
    final_scores: list[FinalScore]  # the final pick's ("pick") and the final training's ("point") scores
    sessions: list[SessionRow]  # oldest first
    meta: dict[str, str] = field(default_factory=dict)  # every meta key (final_pick, baseline, baseline_rungs, ...)
    locked: bool = False  # a search held the run's lock when it was read
    pid: int | None = None  # that search's process

    @classmethod
    def read(cls, run_dir: str | Path) -> RunView:
        """Read the run in ``run_dir``; LedgerError (one line) without a readable ledger there."""
        layout = RunLayout(run_dir)
        locked, pid = search_lock(layout.root)
        with Ledger.open(layout.ledger, readonly=True) as ledger:
            return cls(layout=layout, version=ledger.version, settings=ledger.settings(), rows=ledger.candidates(),
                       rungs=ledger.rungs(), final=ledger.final(), final_scores=ledger.final_scores(),
                       sessions=ledger.sessions(), meta=ledger.meta(), locked=locked, pid=pid)

    @property
    def root(self) -> Path:
        return self.layout.root

    # ---------------------------------------------------------------- what the ledger says
    def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    def meta_json(self, key: str, default: Any = None) -> Any:
        """A meta value that holds JSON (``final_pick``, the executor's waiting message), or ``default``."""
        raw = self.meta.get(key)
        try:
            return json.loads(raw) if raw else default
        except json.JSONDecodeError:
            return default

    def candidate(self, candidate: int) -> CandidateRow:
        found = self._by_id.get(candidate)
        if found is None:
            raise LedgerError(f"{self.layout.ledger}: no candidate {candidate}")
        return found

    @cached_property
    def _by_id(self) -> dict[int, CandidateRow]:
        return {r.id: r for r in self.rows}

    def scores(self, kind: str) -> list[FinalScore]:
        """The final scores of one kind ("pick" or "point"), in order."""
        return [s for s in self.final_scores if s.kind == kind]

    # ---------------------------------------------------------------- what several views compute
    def work_seconds(self) -> tuple[float, float]:
        """(training, scoring) seconds recorded in this ledger (``search.cost.work_seconds``)."""
        return work_seconds(self.rows, self.final)

    def session_seconds(self) -> float:
        """Wall seconds of every session of this run, a killed one up to its last heartbeat."""
        return sum(s.seconds for s in self.sessions)

    @property
    def completed(self) -> bool:
        """Whether a search session ran to its end (its heartbeat row's ``completed``, or an old run's list)."""
        return any(s.completed for s in self.sessions)

    def best_per_resolution(self, key: str = "normalized_metric") -> dict[int, CandidateRow]:
        return best_per_resolution(self.rows, key)

    @cached_property
    def baseline(self) -> RunView | None:
        """The auto baseline's own view (``RUN/baseline``), read on first use; None when it has no ledger."""
        if not self.layout.baseline.ledger.is_file():
            return None
        return RunView.read(self.layout.baseline.root)

    def cost(self) -> RunCost:
        """Device-hours, wall time over every session and where the work went (``search.cost``), the auto baseline
        included; LedgerError when the baseline's ledger cannot be read."""
        base = self.baseline
        base_rows = base.rows if base is not None else []
        base_final = base.final if base is not None else None
        # Once no search runs, baseline rows recorded after its last session are dggan compare's, not the search's.
        sessions = self.sessions
        until = None if self.locked or not sessions else max(s.last_seen for s in sessions) + 5.0
        return RunCost(split=cost_split(self.rows, self.final, base_rows, base_final, until),
                       device_hours=device_hours(self.rows, self.final, self.settings, sessions,
                                                 after(base_rows, until)[0], base_final),
                       wall_seconds=self.session_seconds(), sessions=len(sessions),
                       unfinished_sessions=sum(not s.ended for s in sessions))


def run_cost(run_dir: str | Path | RunView) -> RunCost | None:
    """The cost of a run (a folder or its view), read-only (safe while it runs); None without a readable ledger."""
    try:
        view = run_dir if isinstance(run_dir, RunView) else RunView.read(run_dir)
        return view.cost()
    except (LedgerError, sqlite3.Error, ValueError):
        return None
