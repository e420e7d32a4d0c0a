"""`dggan compare` decides from paired differences on held-out seeds, next to the real-vs-real floor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.fake_executor import CurveExecutor
from searches import tiny
from typer.testing import CliRunner

from dggan.cli import app
from dggan.evaluation.compare import Comparison, Scored, score_checkpoint
from dggan.metrics.floor import data_floor, halves, held_out
from dggan.metrics.seeds import HELDOUT_BASE, Paired, heldout_seeds, paired_verdict, selection_seed
from dggan.search.algorithm import seed_for
from dggan.search.config import load_run_config
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger

runner = CliRunner()


def test_worse_on_every_seed_is_worse_not_a_tie() -> None:
    # Issue #19: the final model against ProgGAN at equal training on three evaluation seeds.
    final, proggan = [92.2, 47.9, 53.0], [47.9, 41.9, 43.8]
    paired = Paired.of(final, proggan)
    assert paired.differences == pytest.approx([-44.3, -6.0, -9.2])
    assert paired.losses == 3 and paired.wins == 0 and paired.verdict == "worse"
    assert paired_verdict(proggan, final) == "better"
    # The old rule (means apart by more than both spreads) called this a tie: the spread of the final model's
    # scores is mostly the seed's, which pairing removes.


def test_mixed_signs_are_within_noise_and_one_seed_decides_nothing() -> None:
    assert paired_verdict([10.0, 12.0, 11.0], [10.5, 11.0, 11.2]) == "within noise"
    assert paired_verdict([10.0], [30.0]) == "within noise"
    assert paired_verdict([10.0, 11.0], [10.5, 11.4]) == "better"  # 2 seeds: by the standard error alone (9 s.e.)
    # A large consistent gain with one small reversal is decided by the mean (beyond 2 standard errors).
    assert paired_verdict([10.0] * 6, [15.0, 15.2, 14.8, 15.1, 14.9, 9.9]) == "better"
    # Higher is better (IS): the same scores reverse.
    assert paired_verdict([9.0, 9.1, 9.2], [8.0, 8.1, 8.2], lower_is_better=False) == "better"
    identical = Paired.of([5.0, 6.0, 7.0], [5.0, 6.0, 7.0])
    assert identical.verdict == "within noise" and identical.p_value is None


def test_comparison_carries_paired_numbers_and_the_floor() -> None:
    def scored(name: str, scores: list[float]) -> Scored:
        return Scored(name, f"{name}.safetensors", 4800, scores)

    floor = {"metric": "swd512", "method": "two disjoint halves", "sample": "a", "real": "b", "seeds": [1, 2, 3],
             "scores": [5.0, 6.0, 7.0], "mean": 6.0, "std": 1.0, "notes": []}
    c = Comparison("run", "swd512", 16, [1, 2, 3], scored("final", [92.2, 47.9, 53.0]),
                   scored("a", [47.9, 41.9, 43.8]), scored("b", [90.0, 50.0, 50.0]), 9000, floor=floor,
                   search_draw=92.18)
    d = c.to_dict()
    assert d["final_vs_equal_training"] == "worse" and d["paired_equal_training"]["losses"] == 3
    assert d["paired_equal_training"]["mean"] == pytest.approx(-(44.3 + 6.0 + 9.2) / 3)
    assert d["final_vs_equal_compute"] == "within noise"  # -2.2, +2.1, -3.0: mixed signs
    assert d["floor"]["method"] == "two disjoint halves" and "verdict_rule" in d
    md = c.markdown()
    assert "| worse |" in md and "Real-vs-real floor (two disjoint halves" in md and "92.18" in md
    assert "sits a little high" not in md
    small = Comparison("run", "swd512", 16, [1, 2, 3], c.final, c.equal_training, c.equal_compute, 9000,
                       floor={**floor, "metric": "swd359"})  # the digits' 359 held-out images
    assert "It uses swd359, fewer images than the models' swd512" in small.markdown()


def test_held_out_evaluation_seeds_are_none_the_search_uses() -> None:
    for run_seed in (0, 1, 7, 123_456, 8_000_000):
        held = heldout_seeds(run_seed, 5)
        assert len(set(held)) == 5 and min(held) >= HELDOUT_BASE
        used = {run_seed, *(selection_seed(run_seed, i) for i in range(100)),  # scoring: the search's, the pick's
                *(seed_for(run_seed, k) for k in range(1000))}  # the candidates' training seeds
        assert not used & set(held) and max(used) < HELDOUT_BASE
    assert not set(heldout_seeds(0, 5)) & set(heldout_seeds(1, 5))  # each run its own draws
    assert heldout_seeds(3, 2) == heldout_seeds(3, 5)[:2]  # more seeds extend the same stream


def test_floor_of_an_array_without_held_out_split_uses_disjoint_halves(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(81, 3, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "patches.npy", array)
    spec = f"npz:{tmp_path / 'patches.npy'}"
    assert held_out(spec) is None
    from dggan.data import open_dataset

    a, b = halves(open_dataset(spec))
    assert len(a) == len(b) == 40 and not set(a.indices) & set(b.indices)
    assert a.fingerprint() != b.fingerprint()
    floor = data_floor("swd32", spec, 16, [11, 12], progress=False)
    assert floor.method == "two disjoint halves" and floor.metric == "swd32"
    assert len(floor.scores) == 2 and all(s > 0 for s in floor.scores)
    # A half smaller than the metric's sample count: the floor says which metric it used instead.
    short = data_floor("swd64", spec, 16, [11], progress=False)
    assert short.metric == "swd40" and "fewer than the 64" in short.notes[0]


def test_floor_of_digits_is_its_training_split_against_the_held_out_one() -> None:
    pytest.importorskip("sklearn")
    floor = data_floor("swd64", "digits", 16, [1], progress=False)
    assert floor.method == "held-out split" and "test" in floor.sample and "train" in floor.real
    assert held_out("digits:split=test") is None  # no held-out part of the held-out part
    short = data_floor("swd512", "digits", 16, [1], progress=False)  # 359 held-out digits
    assert short.metric == "swd359" and "fewer than the 512" in short.notes[0]


def test_compare_against_proggan_at_equal_training_and_equal_compute(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_search(run, tiny(baseline="auto", max_steps=1, final_iterations=2), progress=False)
    result = runner.invoke(app, ["compare", str(run), "--eval-seeds", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "compare.json").read_text())
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        final, rows = ledger.final(), ledger.candidates()
    assert final is not None
    # The final model is the final training's best snapshot: its route iterations are where that snapshot was.
    route = next(r for r in rows if r.id == final.candidate).route_iterations or 0
    route += final.extra["snapshot"]["final_iterations"]
    assert final.extra["route_iterations"] == route
    # (a) the ProgGAN model with the final model's route iterations, (b) one with the search's whole compute.
    assert report["final"]["route_iterations"] == report["equal_training"]["route_iterations"] == route
    compute = sum(r.iterations or 0 for r in rows if not r.extra.get("proggan_route")) + 2  # the baseline's own
    assert report["search_iterations"] == compute == report["equal_compute"]["route_iterations"]
    assert all(len(report[k]["scores"]) == 3 for k in ("final", "equal_training", "equal_compute"))
    # Scored on draws the search never used, paired seed by seed; the search's own draw is reported, not
    # re-used; the search normalised its final model by exactly that equal-training ProgGAN, with its own seed.
    assert report["eval_seeds"] == heldout_seeds(0, 3) and report["search_draw"] == final.metric
    assert report["search_draw"] not in report["final"]["scores"]
    paired = report["paired_equal_training"]
    pairs = zip(report["final"]["scores"], report["equal_training"]["scores"], strict=True)
    assert paired["differences"] == pytest.approx([a - f for f, a in pairs])
    assert report["final_vs_equal_training"] == paired["verdict"] in ("better", "worse", "within noise")
    proggan = score_checkpoint(run / report["equal_training"]["checkpoint"], load_run_config(run), 0)
    assert final.normalized_metric == pytest.approx(final.metric / proggan["value"], rel=1e-4)
    assert report["floor"]["method"] == "two disjoint halves" and len(report["floor"]["scores"]) == 3
    assert "(a) ProgGAN, equal training" in (run / "compare.md").read_text()
    again = runner.invoke(app, ["compare", str(run), "--eval-seeds", "3", "--no-progress"])
    assert again.exit_code == 0 and json.loads((run / "compare.json").read_text()) == report  # nothing retrained
    # The report shows the paired numbers, the floor and the cost.
    from dggan.analysis.report import generate_report

    text = generate_report(run, replay_seeds=2).path.read_text()
    assert "ProgGAN - final (mean ± s.e.)" in text and "held-out evaluation seeds" in text
    assert "Real-vs-real floor (two disjoint halves" in text and "Verdict rule:" in text
    assert "Device-hours (training and scoring, baseline included)" in text and "CPU core-hours" in text
    assert "Where the training went" in text


@pytest.mark.usefixtures("fake_checkpoints")
def test_compare_needs_a_finished_search(tmp_path: Path) -> None:
    unfinished = tmp_path / "unfinished"
    run_search(unfinished, tiny(baseline="none", max_steps=1, final_iterations=0), executor=CurveExecutor(),
               progress=False)
    result = runner.invoke(app, ["compare", str(unfinished), "--no-progress"])
    assert result.exit_code == 2 and "has no final model yet" in result.output


def test_compare_says_when_the_search_kept_the_proggan_route(tmp_path: Path) -> None:
    run = tmp_path / "run"  # no layer may be added: the only route to 16 px is ProgGAN's
    run_search(run, tiny(baseline="auto", max_steps=1, final_iterations=2, max_g_layers=0, max_d_layers=0),
               progress=False)
    result = runner.invoke(app, ["compare", str(run), "--eval-seeds", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    notes = json.loads((run / "compare.json").read_text())["notes"]
    assert any("ProgGAN's own architecture" in n for n in notes), notes
    assert "ProgGAN's own architecture" in (run / "compare.md").read_text()
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    assert "own architecture: no grown layer beat" in (run / "report" / "index.html").read_text()


def test_compare_against_another_search_pairs_both_final_models_on_held_out_seeds(tmp_path: Path) -> None:
    beam, rand = tmp_path / "beam", tmp_path / "random"
    run_search(beam, tiny(max_steps=1, final_iterations=2), progress=False)
    run_search(rand, tiny(max_steps=1, final_iterations=2, selection="random"), progress=False)
    result = runner.invoke(app, ["compare", str(beam), "--against", str(rand), "--eval-seeds", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads((beam / "compare-against" / "random.json").read_text())
    assert report["eval_seeds"] == heldout_seeds(0, 3) and report["differs"] == {"selection": ["beam", "random"]}
    config = load_run_config(beam)
    for key, run in (("final", beam), ("other_final", rand)):  # each score is that run's final model's, on that seed
        with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
            final = ledger.final()
        assert final is not None and report[key]["checkpoint"] == str(run / final.checkpoint)
        assert report[key]["name"].startswith(f"candidate {final.candidate}")
        assert report[key]["scores"] == [pytest.approx(score_checkpoint(run / final.checkpoint, config, s)["value"])
                                         for s in heldout_seeds(0, 3)]
    pairs = zip(report["final"]["scores"], report["other_final"]["scores"], strict=True)
    assert report["paired"]["differences"] == pytest.approx([o - f for f, o in pairs])
    assert report["verdict"] == Paired(report["paired"]["differences"]).verdict
    assert "final model is **" in (beam / "compare-against" / "random.md").read_text()
    other = tmp_path / "other-metric"
    run_search(other, tiny(max_steps=1, final_iterations=2, metric="swd16"), progress=False)
    clash = runner.invoke(app, ["compare", str(beam), "--against", str(other)])
    assert clash.exit_code == 2 and "differ in metric ('swd32' against 'swd16')" in clash.output


def test_compare_chooses_its_threads_reuses_what_the_search_trained_and_caps_equal_compute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare once ran with one torch/BLAS thread per core (the search picks them from the free cores) and was
    19x slower on a busy machine; it scored (a) again when (a) is the final model's own checkpoint; and (b) at
    paper scale trains as long as the whole search: above --equal-compute-limit it is left out, and says so."""
    from dggan.evaluation import compare as compare_module

    run = tmp_path / "run"  # no layer may be added: the final model is the ProgGAN route's snapshot
    run_search(run, tiny(baseline="auto", max_steps=1, final_iterations=4, max_g_layers=0, max_d_layers=0,
                         threads=None, final_pick_candidates=3, final_pick_seeds=2, final_snapshots=2,
                         initial_channels=[8, 16], halving_eta=3),  # more compute than the route: (b) trains
               progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        final = ledger.final()
    assert final is not None and final.extra["proggan_route"] is True
    asked: list[int | None] = []
    real = compare_module.set_threads
    monkeypatch.setattr(compare_module, "set_threads", lambda n=None: asked.append(n) or real(n))
    with Ledger.open(run / "baseline" / "ledger.sqlite", readonly=True) as ledger:
        before = len(ledger.candidates())
    result = runner.invoke(app, ["compare", str(run), "--eval-seeds", "2", "--equal-compute-limit", "1",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert asked == [None]  # chosen from the free cores, as the search does (the run sets no threads)
    report = json.loads((run / "compare.json").read_text())
    assert report["equal_compute"] is None and report["final_vs_equal_compute"] is None
    assert "(b) left out" in report["equal_compute_skipped"] and "--equal-compute-limit" in result.output
    assert report["equal_training"]["scores"] == report["final"]["scores"]  # one network, one number
    assert any("not scored twice" in n for n in report["notes"])
    with Ledger.open(run / "baseline" / "ledger.sqlite", readonly=True) as ledger:
        assert len(ledger.candidates()) == before  # (a) was the search's own: nothing trained
    from dggan.analysis.headline import comparison_text

    assert "left out" in comparison_text(report)
    # Without the limit (b) continues the baseline from its last point in one task, scored once.
    again = runner.invoke(app, ["compare", str(run), "--eval-seeds", "2", "--threads", "1", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert asked[-1] == 1
    report = json.loads((run / "compare.json").read_text())
    with Ledger.open(run / "baseline" / "ledger.sqlite", readonly=True) as ledger:
        rows, rungs = ledger.candidates(), ledger.rungs()
    added = rows[before:]
    assert len(added) == 1 and added[0].route_iterations == report["search_iterations"]
    assert len([g for g in rungs if g.candidate == added[0].id]) == 1  # no halving rungs: only its end point
    assert "trains ProgGAN" in again.output and "scorings" in again.output


def test_the_report_shows_a_compare_that_left_equal_compute_out() -> None:
    from dggan.analysis.report.render import _compare_html

    c = Comparison("run", "swd512", 16, [1, 2], Scored("final", "f", 4800, [1.0, 2.0]),
                   Scored("a", "a", 4800, [1.0, 2.0]), None, 2 * 10**8,
                   equal_compute_skipped="(b) left out: ProgGAN with the search's whole compute would train ...")
    text = _compare_html(c.to_dict())
    assert "left out" in text and "200,000,000" in text and "(b) left out: ProgGAN" in text
    assert "(b) ProgGAN, the search's whole compute | 200,000,000 | left out" in c.markdown()
