"""What the report shows, computed from a run folder without writing anything: the ledger's rows and
settings, the best candidate and its route, and the paper's four analyses."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...errors import GenomeError, LedgerError, ReportError
from ...runs import LEDGER_NAME, RunLayout
from ...search.algorithm import route, search_result
from ...search.baseline import BaselineCurve
from ...search.ledger import CandidateRow, FinalRow, RungRow
from ...search.view import RunView
from .. import analyses

T = TypeVar("T")


@dataclass
class RunData:
    """One run as the report sees it."""

    layout: RunLayout
    rows: list[CandidateRow]
    settings: dict[str, Any]
    final: FinalRow | None
    key: str  # the score the analyses rank by: normalized_metric, or metric without a baseline
    statuses: Counter[str]
    done: list[CandidateRow]
    best: CandidateRow | None
    route: list[CandidateRow]
    k: int
    p: float
    curve: BaselineCurve | None = None  # the baseline the search normalised by
    rungs: list[RungRow] = field(default_factory=list)  # successive halving's rung scores
    baseline_seconds: float | None = None  # the auto baseline's training and scoring
    wall_seconds: float | None = None  # every session of the search, start to end
    view: RunView | None = None  # the run as read (search.view): the ledger read once

    @property
    def run(self) -> Path:
        return self.layout.root

    @property
    def target_resolution(self) -> int | None:
        target = self.settings.get("target_resolution")
        return int(target) if isinstance(target, int) else None


@dataclass
class Analyses:
    """The paper's analyses (Fig. 3) of one run; a missing one failed and says why in ``errors``."""

    capacity: analyses.Capacity | None = None
    action_effects: list[analyses.ActionEffect] | None = None
    pruning_thresholds: tuple[list[float], bool] | None = None
    pruning_risk: list[analyses.PruningRisk] | None = None
    replay: dict[str, Any] | None = None
    rung_predictiveness: list[analyses.RungPredictiveness] | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self, data: RunData) -> dict[str, Any]:
        out: dict[str, Any] = {"score_key": data.key, "K": data.k, "p": data.p,
                               "best": None if data.best is None else data.best.id,
                               "route": [r.id for r in data.route]}
        for name in ("capacity", "action_effects", "pruning_risk", "replay", "rung_predictiveness"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def read_run(run_dir: str | Path) -> RunData:
    """Read a run folder; ``ReportError`` when there is nothing to report on."""
    layout = RunLayout(run_dir)
    run = layout.root
    if not run.is_dir():
        raise ReportError(
            f"{run}: no such run folder; pass the folder a `dggan search` run wrote (it holds {LEDGER_NAME})"
        )
    if not layout.ledger.is_file():
        hint = ""
        nested = sorted(p.parent.name for p in run.glob(f"*/{LEDGER_NAME}"))
        if nested:
            hint = f"; did you mean one of the runs inside it: {', '.join(nested[:5])}?"
        raise ReportError(
            f"{run}: no {LEDGER_NAME} here, so this is not a search run folder (or the search"
            f" crashed before it started){hint}"
        )
    view, curve = _read_view(layout)
    rows, settings, final, rungs = view.rows, view.settings, view.final, view.rungs
    if not settings:
        settings = read_json(layout.options) or {}
    key = analyses.score_key(rows)
    done = analyses.finished(rows, key)
    target = settings.get("target_resolution")
    best = (search_result(rows, final.candidate if final is not None else None,
                          target if isinstance(target, int) else None, key) if done else None)
    k, p = analyses.search_hyperparameters(rows, settings) if rows else (0, 0.0)
    return RunData(layout, rows, settings, final, key, Counter(r.status.value for r in rows), done, best,
                   route(rows, best.id) if best is not None else [], k, p, curve, rungs,
                   *_run_seconds(view), view=view)


def _run_seconds(view: RunView) -> tuple[float | None, float | None]:
    """(the auto baseline's training and scoring seconds, the search's wall seconds over all sessions, a killed
    one up to its last heartbeat)."""
    baseline = None
    try:
        if view.baseline is not None:
            baseline = sum(view.baseline.work_seconds())
    except (LedgerError, ValueError, sqlite3.Error):
        pass
    return baseline, view.session_seconds() or None


def _read_view(layout: RunLayout) -> tuple[RunView, BaselineCurve | None]:
    """The run's view and the baseline curve it normalised by; ReportError when the ledger cannot be read."""
    fix = "; rebuild the report with the dggan release that wrote this run, or check that the file is the run's ledger"
    try:
        view = RunView.read(layout.root)
    except LedgerError as exc:  # says what is wrong with the file, and what to do
        raise ReportError(f"cannot read the run's ledger: {exc}") from None
    except (sqlite3.Error, GenomeError, json.JSONDecodeError, ValueError) as exc:
        raise ReportError(f"{layout.ledger}: the ledger is unreadable ({exc}){fix}") from None
    try:
        stored = view.get_meta("baseline")  # the baseline the search resolved and used
        curve = BaselineCurve.from_json(stored) if stored else None
    except (GenomeError, json.JSONDecodeError, ValueError) as exc:
        raise ReportError(f"{layout.ledger}: the ledger is unreadable ({exc}){fix}") from None
    return view, curve


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def compute_analyses(data: RunData, zoom_threshold: float = 1.2, replay_seeds: int = 10) -> Analyses:
    """Every analysis that the run's finished candidates allow; one that fails costs only itself."""
    out = Analyses()
    if not data.done:
        return out
    rows, key = data.rows, data.key

    def attempt(name: str, compute: Callable[[], T]) -> T | None:
        try:
            return compute()
        except Exception as exc:  # one broken analysis must not cost the whole report
            out.errors[name] = f"{type(exc).__name__}: {exc}"
            return None

    out.capacity = attempt("capacity", lambda: analyses.capacity(rows, key, zoom_threshold,
                                                          data.best.id if data.best is not None else None))
    out.action_effects = attempt("action_effects", lambda: analyses.action_effects(rows, key))
    out.pruning_thresholds = attempt("pruning_risk", lambda: analyses.pruning_thresholds(rows, key))
    if out.pruning_thresholds is not None:
        out.pruning_risk = attempt("pruning_risk", lambda: analyses.pruning_risk(rows, key, out.pruning_thresholds[0]))
    out.replay = attempt("replay", lambda: _replay(data, replay_seeds))
    if data.rungs and int(data.settings.get("halving_eta") or 1) > 1:
        out.rung_predictiveness = attempt("rung_predictiveness", lambda: analyses.rung_predictiveness(rows, data.rungs))
    return out


def _replay(data: RunData, seeds: int) -> dict[str, Any]:
    index = analyses.ReplayIndex(data.rows, data.key, settings=data.settings, rungs=data.rungs)
    ks, ps = analyses.default_grid(data.k, data.p)
    eta = int(data.settings.get("halving_eta") or 1)
    etas = [1, eta] if eta > 1 and data.rungs else [1]  # halving can only be replayed where rung scores exist
    cells = analyses.replay_grid(data.rows, ks, ps, seeds, data.key, index, etas=etas)
    route = index.proggan_route()
    proggan = None if route is None else {"id": route.id, "score": analyses.score(route, data.key)}
    return {"target_resolution": index.target_resolution, "seeds": seeds, "actual": index.actual(), "cells": cells,
            "etas": etas, "proggan_route": proggan}
