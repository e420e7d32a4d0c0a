"""The final pick and the final training (#19): the ProgGAN route in the race, the multi-seed pick, the best
snapshot. Bookkeeping with an executor that trains nothing (milliseconds); one real tiny search."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_executor import CurveExecutor, Interrupted, fake_load, read_iteration
from searches import tiny

from dggan.analysis.report import render
from dggan.analysis.report.render import Page
from dggan.execution.state import Status
from dggan.execution.worker import CandidateTask
from dggan.metrics.seeds import selection_seed
from dggan.search.algorithm import final_points, pick_by_mean
from dggan.search.config import SearchConfig, create_run
from dggan.search.driver import Search, run_search
from dggan.search.final import FinalTraining
from dggan.search.ledger import Ledger
from dggan.search.watch import final_training_curve, read_status


# ---------------------------------------------------------------------- the pure parts
def test_final_points_start_end_and_the_proggan_grid() -> None:
    assert final_points(2400, 6) == [0, 480, 960, 1440, 1920, 2400]
    assert final_points(2400, 6, grid=[600, 1200, 1800, 2400, 3000]) == [0, 600, 1200, 1800, 2400]
    assert final_points(2400, 1) == [2400] and final_points(0, 6) == [0]
    assert final_points(2, 6) == [0, 1, 2]


def test_pick_by_mean_and_selection_seeds() -> None:
    assert pick_by_mean({3: [1.0, 0.8, 0.9], 2: [0.7, 1.2, 1.0], 5: [0.1, math.nan]}) == 3  # 0.9 < 0.967
    assert pick_by_mean({4: [1.0], 2: [1.0]}) == 2 and pick_by_mean({}) is None
    for seed in (0, 1, 12345):
        family = {selection_seed(seed, i) for i in range(5)}
        assert len(family) == 5 and not family & set(range(seed, seed + 1000))  # apart from search and compare


SETTINGS: dict[str, Any] = {
    "data": "synthetic:n=32,res=16", "metric": "swd32", "baseline": "auto", "initial_channels": [8],
    "latent_size": 8, "target_resolution": 16, "top_k": 2, "p": 0.5, "kernels": [3], "filters": [8],
    "max_steps": 2, "iterations": 10, "final_iterations": 40, "final_snapshots": 5, "tensorboard": False,
    "tables": False,
}


def search(run: Path, executor: CurveExecutor, **overrides: Any) -> Path:
    config = SearchConfig.from_dict({**SETTINGS, **overrides})
    if not run.exists():
        create_run(run, config)
    Search(run, config, executor, progress=False).run()  # type: ignore[arg-type]
    return run


def ledger_of(run: Path) -> Ledger:
    return Ledger.open(run / "ledger.sqlite", readonly=True)


def hump(iteration: int) -> float:
    """The final training's score: best 20 iterations in, worse after (a GAN that degrades)."""
    return 0.5 + ((iteration - 30) / 40) ** 2


# ---------------------------------------------------------------------- the ProgGAN route in the race
@pytest.mark.usefixtures("fake_checkpoints")
def test_the_proggan_route_wins_when_every_grown_candidate_is_worse(tmp_path: Path) -> None:
    run = search(tmp_path / "run", CurveExecutor(penalty=0.5), final_snapshots=1)
    with ledger_of(run) as ledger:
        rows, final = ledger.candidates(), ledger.final()
        base = {r.id: r for r in Ledger.open(run / "baseline" / "ledger.sqlite", readonly=True).candidates()}
    (route,) = [r for r in rows if r.extra.get("proggan_route")]
    assert route.status == Status.DONE and route.normalized_metric == pytest.approx(1.0)
    best_grown = min((r for r in rows if r.resolution == 16 and r.id != route.id), key=lambda r: r.normalized_metric)
    assert route.route_iterations == best_grown.route_iterations  # at equal training
    twin = base[int(route.extra["reused"].split()[-1])]
    assert route.checkpoint == f"baseline/{twin.checkpoint}" and twin.resolution == 16
    assert route.extra["trained_iterations"] == 0 and route.parent is not None and route.action is None
    assert final is not None and final.status == Status.DONE
    assert final.candidate == route.id and final.extra["proggan_route"] is True
    assert final.extra["source"] == route.checkpoint  # continued from the baseline's checkpoint: not trained twice
    # One point, at the end: the status counts its 40 final iterations from the picked model, not from itself.
    (point,) = final_training_curve(run)
    assert point["final_iterations"] == 40 and point["route_iterations"] == route.route_iterations + 40
    assert any("40 of them final" in line for line in read_status(run).lines())


@pytest.mark.usefixtures("fake_checkpoints")
def test_the_proggan_routes_final_training_is_the_baselines_own(tmp_path: Path) -> None:
    executor = CurveExecutor(penalty=0.5)
    run = search(tmp_path / "run", executor)
    with ledger_of(run) as ledger:
        final, points = ledger.final(), ledger.final_scores("point")
    assert final is not None and final.extra["proggan_route"] is True and len(points) == 5
    best_tasks = [t for t in executor.tasks if Path(t.out_dir).name == "best"]
    assert best_tasks and all(t.until == t.train.iterations - 1 for t in best_tasks)  # nothing trained twice
    assert all(g.extra["checkpoint"].startswith("baseline/") for g in points[1:])
    last = run / "best" / "last" / "checkpoint.safetensors"
    assert read_iteration(last) == read_iteration(run / points[-1].extra["checkpoint"])
    assert final.train_seconds == 0.0


@pytest.mark.usefixtures("fake_checkpoints")
def test_grown_candidates_that_beat_it_keep_the_race_and_a_fixed_baseline_has_no_proggan_route(
        tmp_path: Path) -> None:
    run = search(tmp_path / "auto", CurveExecutor(penalty=-0.5), final_snapshots=1)
    with ledger_of(run) as ledger:
        final, rows = ledger.final(), ledger.candidates()
    assert final is not None and final.extra["proggan_route"] is False
    assert any(r.extra.get("proggan_route") for r in rows)  # it ran, and lost
    fixed = search(tmp_path / "fixed", CurveExecutor(penalty=0.5), baseline={"8": 1.0, "16": 1.0},
                   final_snapshots=1)
    with ledger_of(fixed) as ledger:
        assert not any(r.extra.get("proggan_route") for r in ledger.candidates())
        final = ledger.final()
    assert final is not None and final.extra["proggan_route"] is False and not (fixed / "baseline").exists()


# ---------------------------------------------------------------------- the multi-seed pick
@pytest.mark.usefixtures("fake_checkpoints")
def test_the_pick_is_the_best_mean_over_selection_seeds_and_records_the_spread(tmp_path: Path) -> None:
    executor = CurveExecutor(penalty=0.5)
    run = search(tmp_path / "run", executor, final_pick_candidates=3, final_pick_seeds=3, final_snapshots=1)
    with ledger_of(run) as ledger:
        picks, final = ledger.final_scores("pick"), ledger.final()
        pick = json.loads(ledger.get_meta("final_pick") or "{}")
    assert final is not None and len(pick["candidates"]) == 3 and len(picks) == 9
    seeds = {selection_seed(0, i) for i in range(3)}
    assert {g.seed for g in picks} == seeds
    for c in pick["candidates"]:
        mine = [g.normalized_metric for g in picks if g.candidate == c["id"]]
        assert c["scores"] == pytest.approx(mine) and c["mean"] == pytest.approx(sum(mine) / 3)
        assert c["std"] == pytest.approx(0.0, abs=1e-12) or c["std"] > 0  # the spread is recorded
    best = min(pick["candidates"], key=lambda c: (c["mean"], c["id"]))
    assert pick["candidate"] == best["id"] == final.candidate and final.extra["pick"] == pick
    scoring = [t for t in executor.tasks if int(t.eval_options["seed"]) in seeds]
    assert scoring and all(t.until == t.train.iterations - 1 for t in scoring)  # they only score


# ---------------------------------------------------------------------- the best snapshot
@pytest.mark.usefixtures("fake_checkpoints")
def test_final_training_keeps_the_best_and_the_last_snapshot_and_records_every_point(tmp_path: Path) -> None:
    executor = CurveExecutor(penalty=-0.5, final=hump)  # a grown candidate wins: its final training is trained
    run = search(tmp_path / "run", executor, final_pick_candidates=1)
    with ledger_of(run) as ledger:
        points, final = ledger.final_scores("point"), ledger.final()
        source = ledger.get(final.candidate) if final else None
    assert final is not None and source is not None and final.status == Status.DONE
    start = fake_load(run / final.extra["source"]).state["iteration"]
    # 40 final iterations, 5 points snapped to the ProgGAN route's points (every 10 iterations).
    assert [g.iterations - start for g in points] == [0, 10, 20, 30, 40]
    assert {g.seed for g in points} == {selection_seed(0, 0)}
    chosen = min(points, key=lambda g: g.metric)
    assert final.extra["snapshot"]["point"] == chosen.index and final.iterations == chosen.iterations
    assert read_iteration(run / "best" / "checkpoint.safetensors") == chosen.iterations  # the best snapshot ...
    assert read_iteration(run / "best" / "last" / "checkpoint.safetensors") == start + 40  # ... and the last beside it
    assert not (run / "best" / "best-snapshot.safetensors").exists()
    # Reported: the chosen snapshot scored once with the search's seed, at its own training.
    assert final.metric == pytest.approx(hump(chosen.iterations))
    assert final.extra["route_iterations"] == chosen.route_iterations == source.route_iterations + 20
    stats = [json.loads(line) for line in (run / "best" / "stats.jsonl").read_text().splitlines()]
    assert [s["final_point"] for s in stats if "final_point" in s] == [0, 1, 2, 3, 4]
    curve = final_training_curve(run)
    assert [p["chosen"] for p in curve] == [False, False, True, False, False] and curve[-1]["last"]
    assert all(p["proggan"] is not None for p in curve)
    assert any("best: point 3" in line for line in read_status(run).lines())
    # The report plots that curve beside ProgGAN's and lists it, saying which seed scored what.
    page = Page(tmp_path / "report")
    page.out.mkdir()
    html = render._final_curve_html(page, run, "swd32")
    assert "selection seed" in html and "the search's seed" in html
    assert (page.out / "final_training.png").read_bytes().startswith(b"\x89PNG")
    with (page.out / "final_training.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["kept"] for r in table] == ["", "", "RUN/best", "", "RUN/best/last"]
    assert [float(r["metric"]) for r in table] == pytest.approx([p["metric"] for p in curve])
    assert [float(r["ProgGAN (same route iterations, same seed)"]) for r in table] == pytest.approx(
        [p["proggan"] for p in curve])


# ---------------------------------------------------------------------- one number for one network
@pytest.mark.usefixtures("fake_checkpoints")
def test_the_proggan_route_is_one_network_with_one_number(tmp_path: Path) -> None:
    """When the final model is the ProgGAN route, every number of it (the pick, each point of the final training,
    its stats, the curve the report plots, the headline) is 1.000 of ProgGAN: each selection-seed score is divided
    by ProgGAN scored with that same seed, and here ProgGAN is the very model scored."""
    # RUN/best then holds the baseline's checkpoint: the fake scores it as it scores the baseline's 16 px model.
    same_as_baseline = CurveExecutor(penalty=0.5, final=lambda iteration: 1.0 + 0.2 * 16 / 32 - 0.001 * iteration)
    run = search(tmp_path / "run", same_as_baseline, final_pick_candidates=3, final_pick_seeds=3)
    with ledger_of(run) as ledger:
        final, picks, points = ledger.final(), ledger.final_scores("pick"), ledger.final_scores("point")
        pick = json.loads(ledger.get_meta("final_pick") or "{}")
    assert final is not None and final.extra["proggan_route"] is True
    route = next(c for c in pick["candidates"] if c["proggan_route"])
    assert route["scores"] == pytest.approx([1.0] * 3) and route["std"] == 0.0  # the seeds' offsets cancel
    assert len({g.seed for g in picks}) == 3 and all(g.extra["baseline_same_seed"] for g in picks)
    assert len(points) == 5 and all(g.normalized_metric == pytest.approx(1.0) for g in points)
    assert all(g.extra["baseline"] == g.metric and g.extra["baseline_seed"] == g.seed for g in points)
    assert final.normalized_metric == pytest.approx(1.0)
    curve = final_training_curve(run)
    assert all(p["proggan"] == p["metric"] and p["proggan_same_seed"] for p in curve)
    stats = [json.loads(line) for line in (run / "best" / "stats.jsonl").read_text().splitlines()]
    assert [s["normalized"] for s in stats if "final_point" in s] == pytest.approx([1.0] * 5)
    # One iteration count: the log gives every point in route iterations, as the headline does.
    log = (run / "log.txt").read_text()
    assert "final training point 5/5 (80 route iterations, 40 of 40 final iterations)" in log
    assert "(iteration " not in log
    from dggan.analysis.headline import headline

    line = headline(run).lines()[0]
    assert "is the ProgGAN route itself" in line and "80 route iterations, 40 of them the final training" in line
    assert "1.000 of ProgGAN trained as long, being the same network" in line and "the search's seed 0" in line


@pytest.mark.usefixtures("fake_checkpoints")
def test_a_grown_final_model_is_normalised_by_proggan_on_the_same_seed(tmp_path: Path) -> None:
    """A grown pick's selection-seed scores are divided by ProgGAN at the same route iterations scored with the
    same seed (the baseline's checkpoint there, scored once more), not by the baseline curve (the search's seed)."""
    from dggan.search.baseline import BaselineCurve

    executor = CurveExecutor(penalty=-0.5, final=hump)
    run = search(tmp_path / "run", executor, final_pick_candidates=3, final_pick_seeds=2)
    with ledger_of(run) as ledger:
        final, points, picks = ledger.final(), ledger.final_scores("point"), ledger.final_scores("pick")
        curve = BaselineCurve.from_json(ledger.get_meta("baseline") or "")
    assert final is not None and final.extra["proggan_route"] is False
    for g in [*picks, *points]:
        searched = curve.value(16, g.route_iterations)[0]  # the curve: the search's seed 0
        assert g.extra["baseline_seed"] == g.seed and g.extra["baseline_same_seed"] is True
        # CurveExecutor's draws differ by 0.01 x (seed mod 7): the same-seed ProgGAN carries the point's offset.
        assert g.extra["baseline"] == pytest.approx(searched + 0.01 * (g.seed % 7))
        assert g.normalized_metric == pytest.approx(g.metric / g.extra["baseline"])
    proggan_tasks = [t for t in executor.tasks if "baseline" in Path(t.out_dir).parts and t.until is not None
                     and int(t.eval_options["seed"]) != 0]
    assert proggan_tasks and all(t.until == t.train.iterations - 1 for t in proggan_tasks)  # scored, not trained


def _is_final(task: CandidateTask) -> bool:
    return Path(task.out_dir).name == "best" or int(task.eval_options["seed"]) != 0


@pytest.mark.usefixtures("fake_checkpoints")
@pytest.mark.parametrize("more", [2, 10, 12])  # tasks into the pick (9 of them), after 1 and 3 points
@pytest.mark.parametrize("penalty", [-0.5, 0.5])  # a grown candidate wins (trained), the ProgGAN route (reused)
def test_a_killed_final_training_resumes_to_the_same_result(tmp_path: Path, more: int, penalty: float) -> None:
    whole_executor = CurveExecutor(penalty=penalty, final=hump)
    whole = search(tmp_path / "whole", whole_executor)
    with ledger_of(whole) as ledger:
        expected = (ledger.final(), ledger.final_scores())
    first_final = next(i for i, t in enumerate(whole_executor.tasks) if _is_final(t))
    # The final training's start is the pick itself, scored with the same seed by the pick: no task for it.
    start = next(g for g in expected[1] if g.kind == "point" and g.index == 0)
    assert start.extra["reused"] == "final pick"
    assert not any(Path(t.out_dir).name == "best" and t.until == start.iterations for t in whole_executor.tasks)
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        search(run, CurveExecutor(penalty=penalty, final=hump, stop_after=first_final + more))
    with ledger_of(run) as ledger:
        assert ledger.final() is None  # stopped before its end
    again = CurveExecutor(penalty=penalty, final=hump)
    search(run, again)
    assert not any(t.until is None and Path(t.out_dir).name == "best" for t in again.tasks)
    with ledger_of(run) as ledger:
        got = (ledger.final(), ledger.final_scores())
    assert got[0] is not None and expected[0] is not None
    assert (got[0].candidate, got[0].metric, got[0].iterations) == (expected[0].candidate, expected[0].metric,
                                                                      expected[0].iterations)
    assert [(g.kind, g.candidate, g.index, g.iterations, g.metric) for g in got[1]] == [
        (g.kind, g.candidate, g.index, g.iterations, g.metric) for g in expected[1]]
    for name in ("checkpoint.safetensors", "last/checkpoint.safetensors"):
        assert read_iteration(run / "best" / name) == read_iteration(whole / "best" / name)


# ---------------------------------------------------------------------- a real tiny search
def test_a_real_final_training_killed_between_segments_resumes_exactly(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny(max_steps=1, final_iterations=4, final_snapshots=3, final_pick_candidates=1, tensorboard=False)
    run_search(tmp_path / "whole", config, progress=False)
    calls = {"n": 0}
    real = FinalTraining._log_point

    def stop_after_first_point(self: FinalTraining, score: Any, count: int, start_route: int) -> None:
        real(self, score, count, start_route)
        calls["n"] += 1
        if calls["n"] == 2:
            raise Interrupted  # after the second point is recorded, before the next segment

    monkeypatch.setattr(FinalTraining, "_log_point", stop_after_first_point)
    with pytest.raises(Interrupted):
        run_search(tmp_path / "run", config, progress=False)
    monkeypatch.setattr(FinalTraining, "_log_point", real)
    run_search(tmp_path / "run", resume=True, progress=False)
    runs = []
    for name in ("whole", "run"):
        with ledger_of(tmp_path / name) as ledger:
            final = ledger.final()
            assert final is not None
            runs.append((final.candidate, round(final.metric or 0, 6), final.iterations,
                         [(g.index, g.iterations, round(g.metric or 0, 6)) for g in ledger.final_scores("point")]))
    assert runs[0] == runs[1] and len(runs[0][3]) == 3
    assert (tmp_path / "run" / "best" / "last" / "checkpoint.safetensors").exists()


# ---------------------------------------------------------------------- the ProgGAN route stays unless beaten
def test_against_the_proggan_route_is_paired_seed_by_seed() -> None:
    from dggan.search.final import against_proggan_route

    scores = {9: [1.0, 1.0, 1.0], 4: [0.8, 0.9, 0.85], 5: [0.7, 1.2, 0.75], 6: [1.1, 1.2, 1.05],
              7: [0.9, math.nan, 0.8]}
    assert against_proggan_route(scores, 9) == {4: "better", 5: "within noise", 6: "worse", 7: "not comparable"}
    assert against_proggan_route({9: [1.0], 4: [0.5]}, 9) == {}  # one seed: no spread, the mean decides
    assert against_proggan_route({9: [1.0, math.nan], 4: [0.5, 0.5]}, 9) == {}  # the route unscored: the mean
    assert against_proggan_route(scores, None) == {}  # a fixed baseline: no route in the race


class NoisyDraws(CurveExecutor):
    """The search's candidates' selection draws swing by ``swing[i]`` on selection seed i (the ProgGAN route's
    do not): better than the route on the mean, not seed by seed."""

    def __init__(self, swing: list[float], **kwargs: Any):
        super().__init__(**kwargs)
        self.swing = {selection_seed(0, i): s for i, s in enumerate(swing)}

    def score(self, task: CandidateTask, iteration: int) -> float:
        value = super().score(task, iteration)
        if "baseline" not in Path(task.out_dir).parts:
            value += self.swing.get(int(task.eval_options["seed"]), 0.0)
        return value


@pytest.mark.usefixtures("fake_checkpoints")
@pytest.mark.parametrize("swing,route_stays", [([-0.6, 0.5, -0.6], True), ([-0.5, -0.45, -0.55], False)])
def test_a_grown_candidate_must_beat_the_proggan_route_seed_by_seed(tmp_path: Path, swing: list[float],
                                                                   route_stays: bool) -> None:
    run = search(tmp_path / "run", NoisyDraws(swing, penalty=0.0), final_snapshots=1)
    with ledger_of(run) as ledger:
        final = ledger.final()
        pick = json.loads(ledger.get_meta("final_pick") or "{}")
    route = next(c for c in pick["candidates"] if c["proggan_route"])
    best_grown = min((c for c in pick["candidates"] if not c["proggan_route"]), key=lambda c: c["mean"])
    assert best_grown["mean"] < route["mean"]  # ahead on the mean in both cases ...
    assert final is not None and pick["candidate"] == final.candidate and "rule" in pick
    if route_stays:  # ... but within the noise: the ProgGAN route is handed back
        assert best_grown["vs_proggan_route"] == "within noise"
        assert final.candidate == route["id"] and final.extra["proggan_route"] is True
    else:  # ... and seed by seed: the grown candidate wins the pick
        assert best_grown["vs_proggan_route"] == "better" and final.candidate == best_grown["id"]
