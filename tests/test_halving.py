"""Successive halving inside every growing step: rungs, verdicts, storage and exact resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_executor import CurveExecutor
from searches import tiny

from dggan.errors import ConfigError, SearchError
from dggan.execution import worker as worker_module
from dggan.execution.state import Status
from dggan.search.algorithm import halving_keep
from dggan.search.config import SearchConfig
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger

HALVING: dict[str, Any] = {
    "rung_metric": "swd16", "baseline": "auto", "p": 0.6, "iterations": 9, "checkpoint_every": 3,
    "halving_eta": 3, "halving_min_fraction": 1 / 9,
}


def halving(**overrides: Any) -> SearchConfig:
    return tiny(**{**HALVING, **overrides})


def test_rungs_and_the_keep_rule() -> None:
    assert halving().rung_fractions() == pytest.approx([1 / 9, 1 / 3, 1.0])
    assert halving().rungs(9) == [(1, "swd16"), (3, "swd16"), (9, "swd32")]
    assert halving(halving_eta=1).rungs(9) == [(9, "swd32")]  # off: one rung, the whole budget
    assert halving(rung_metric=None).rungs(90)[0] == (10, "swd32")
    assert [halving_keep(n, 3, 2) for n in (1, 2, 3, 6, 9, 10)] == [1, 2, 2, 2, 3, 4]  # never fewer than K
    assert halving_keep(9, 1, 2) == 9 and halving_keep(9, 3, None) == 9
    with pytest.raises(ConfigError, match="rung_metric 'fid1k' must be a cheaper budget"):
        halving(rung_metric="fid1k")
    with pytest.raises(ConfigError, match="halving_eta must be >= 1"):
        halving(halving_eta=0)


def rows_and_rungs(run: Path) -> tuple[list[Any], list[Any], Ledger]:
    ledger = Ledger.open(run / "ledger.sqlite", readonly=True)
    return ledger.candidates(), ledger.rungs(), ledger


def test_a_search_with_successive_halving(tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = run_search(run, halving(), progress=False)
    assert summary.ok
    rows, rungs, ledger = rows_and_rungs(run)
    by_id = {r.id: r for r in rows}
    scores: dict[int, dict[int, Any]] = {}
    for g in rungs:
        scores.setdefault(g.candidate, {})[g.rung] = g
    for step in sorted({r.step for r in rows if r.step > 0}):
        children = [r for r in rows if r.step == step and not r.extra.get("proggan_route")]  # (not a child)
        assert all(0 in scores[c.id] for c in children)  # every child was scored at the first rung
        alive = children
        for rung in (0, 1):
            assert ledger.pruned_at(step, rung) is not None
            ranked = sorted(alive, key=lambda r: (scores[r.id][rung].normalized_metric, r.id))
            keep = halving_keep(len(ranked), 3, 2)
            assert sorted(ledger.pruned_at(step, rung) or []) == sorted(r.id for r in ranked[keep:])
            alive = ranked[:keep]
        # Survivors trained the whole budget and were scored with the search metric; the kept are among them.
        assert {r.id for r in children if r.status == Status.DONE} == {r.id for r in alive}
        assert set(ledger.kept(step) or []) <= {r.id for r in alive}
        for c in children:
            if c.status == Status.PRUNED:
                last = max(scores[c.id])
                assert c.iterations == scores[c.id][last].iterations < 9 and c.metric is None
                assert c.route_iterations == by_id[c.parent].route_iterations + c.iterations
                assert scores[c.id][last].extra["metric"] == "swd16"
            else:
                assert scores[c.id][2].extra["metric"] == "swd32" and scores[c.id][2].metric == c.metric
    assert any(r.status == Status.PRUNED for r in rows)
    # The baseline was trained in the same rungs, so early scores are compared at equal training too.
    base_rungs = Ledger.open(run / "baseline" / "ledger.sqlite", readonly=True).rungs()
    assert {g.rung for g in base_rungs} == {0, 1, 2}
    ledger.close()


def test_a_search_killed_mid_rung_resumes_with_nothing_retrained(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = halving(baseline={8: 100.0, 16: 100.0})  # rungs resume alike with any baseline: no ProgGAN to train
    reference = tmp_path / "reference"
    run_search(reference, config, progress=False)
    calls = {"n": 0}
    real_run = worker_module._run
    trained: list[tuple[int, int | None]] = []

    def interrupted(task: worker_module.CandidateTask) -> worker_module.CandidateResult:
        calls["n"] += 1
        if calls["n"] == 14:  # mid-search, in some rung of some step
            raise OSError(5, "Input/output error")
        trained.append((task.candidate_id, task.until))
        return real_run(task)

    monkeypatch.setattr(worker_module, "_run", interrupted)
    run = tmp_path / "run"
    with pytest.raises(SearchError, match="Input/output error"):
        run_search(run, config, progress=False)
    before = {g.candidate: g for g in Ledger.open(run / "ledger.sqlite", readonly=True).rungs()}
    assert before and calls["n"] == 14  # stopped mid-search, with rungs already scored
    trained.clear()
    run_search(run, resume=True, progress=False)
    rows, rungs, ledger = rows_and_rungs(run)
    ref_rows, ref_rungs, ref = rows_and_rungs(reference)

    def shape(rs: list[Any]) -> list[tuple[Any, ...]]:
        return [(r.id, r.parent, r.status.value, r.genome.key(), r.iterations,
                 None if r.metric is None else round(r.metric, 6)) for r in rs]

    assert shape(rows) == shape(ref_rows)
    assert [(g.candidate, g.rung, round(g.metric, 6)) for g in rungs] == \
        [(g.candidate, g.rung, round(g.metric, 6)) for g in ref_rungs]
    # No rung that was scored before the stop was trained again.
    assert not any(cid in before and until is not None and until <= before[cid].iterations for cid, until in trained)
    ledger.close()
    ref.close()


@pytest.mark.usefixtures("fake_checkpoints")
def test_ls_and_report_show_pruned_candidates(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dggan.analysis.report import generate_report
    from dggan.cli import app

    run = tmp_path / "run"
    run_search(run, halving(), executor=CurveExecutor(), progress=False)
    result = CliRunner().invoke(app, ["ls", str(run), "--json"])
    statuses = {r["status"] for r in json.loads(result.output)}
    assert "pruned" in statuses
    text = generate_report(run, replay_seeds=2).path.read_text()
    assert "Is an early score predictive?" in text and "Spearman" in text


@pytest.mark.slow
def test_rungs_run_in_parallel_on_the_local_executor(tmp_path: Path) -> None:
    from dggan.execution.executors import InProcessExecutor, make_executor

    config = halving(max_steps=1, final_iterations=0, tables=False)
    run_search(tmp_path / "inprocess", config, executor=InProcessExecutor("cpu"), progress=False)
    executor = make_executor("local", workers=2, device="cpu", threads=1)
    try:
        run_search(tmp_path / "local", config, executor=executor, progress=False)
    finally:
        executor.close()

    def shape(run: Path) -> list[tuple[Any, ...]]:
        rows, rungs, ledger = rows_and_rungs(run)
        ledger.close()
        candidates = [(r.id, r.status.value, r.iterations, None if r.metric is None else round(r.metric, 6))
                      for r in rows]
        return candidates + [(g.candidate, g.rung, round(g.metric, 6)) for g in rungs]

    assert shape(tmp_path / "local") == shape(tmp_path / "inprocess")
