"""The one-sentence result at the end of ``dggan search`` and the top of the report says what it measured."""

from __future__ import annotations

from pathlib import Path

from dggan.analysis.headline import Headline


def result(**changes: object) -> Headline:
    base = dict(metric="swd512", target_resolution=16, candidate=7, final_metric=12.5, final_normalized=0.87,
                route_iterations=4800, baseline_value=14.34, baseline_kind="auto", route="init 8px → res 16px",
                comparison=None, samples=None, run_dir="runs/demo")
    return Headline(**{**base, **changes})  # type: ignore[arg-type]


def test_an_equal_training_result_says_it_is_one_draw_until_compared() -> None:
    lines = result().lines()
    assert "0.87x, 13% better than ProgGAN at equal training" in lines[0]
    assert any("One evaluation draw" in line and "dggan compare runs/demo" in line for line in lines)
    worse = result(final_normalized=1.25, final_metric=17.9).lines()[0]
    assert "25% worse than ProgGAN at equal training" in worse


def test_a_compared_result_gives_the_spread_instead() -> None:
    scored = {"mean": 13.5, "std": 2.9, "route_iterations": 4800}
    comparison = {"eval_seeds": [0, 1, 2], "final": scored, "equal_training": {**scored, "mean": 14.4},
                  "equal_compute": {**scored, "route_iterations": 6200}, "final_vs_equal_training": "tie",
                  "final_vs_equal_compute": "tie"}  # a compare.json from before paired verdicts
    lines = result(comparison=comparison).lines()
    assert not any("One evaluation draw" in line for line in lines)
    assert any("Re-scored over 3 evaluation seeds: final 13.5 ± 2.9" in line and "(tie)" in line for line in lines)


def test_a_compared_result_gives_the_paired_verdict_and_the_floor() -> None:
    from dggan.evaluation.compare import Comparison, Scored

    def scored(name: str, scores: list[float]) -> Scored:
        return Scored(name, name, 4800, scores)

    floor = {"metric": "swd512", "method": "two disjoint halves", "sample": "a", "real": "b", "seeds": [1, 2, 3],
             "scores": [5.0, 6.0, 7.0], "mean": 6.0, "std": 1.0, "notes": []}
    c = Comparison("run", "swd512", 16, [1, 2, 3], scored("final", [92.2, 47.9, 53.0]),
                   scored("a", [47.9, 41.9, 43.8]), scored("b", [90.0, 50.0, 50.0]), 9000, floor=floor).to_dict()
    text = " ".join(result(comparison=c).lines())
    assert "Re-scored over 3 held-out evaluation seeds" in text
    assert "(worse: final better on 0 of 3 seeds, ProgGAN - final -19.8 ± 12 s.e.)" in text
    assert "(within noise: final better on 1 of 3 seeds" in text
    assert "Real-vs-real floor (two disjoint halves, swd512): 6 ± 1." in text


def test_the_proggan_route_as_final_model_is_said_plainly() -> None:
    line = result(proggan_route=True, final_normalized=1.0, final_metric=14.34).lines()[0]
    assert line.startswith("No grown architecture beat ProgGAN at equal training: the final model (candidate 7,"
                           " 16px) is the ProgGAN route itself")
    assert "0% worse" not in line and "1.00x" not in line
    # Not the ProgGAN route, but level with it: no "0% worse".
    assert "1.00x, level with ProgGAN" in result(final_normalized=1.001).lines()[0]


def test_the_cost_lines_follow_the_result() -> None:
    lines = result(cost=["Cost: 0.1 CPU core-hours of training and scoring"]).lines()
    assert lines[2] == "One evaluation draw each: `dggan compare runs/demo` re-scores both over several seeds" \
        " before a difference is trusted." and lines[3].startswith("Cost: 0.1 CPU core-hours")


def test_a_fixed_baseline_is_not_called_equal_training() -> None:
    lines = result(baseline_kind="fixed", baseline_value=20.0, final_normalized=0.625).lines()
    assert "not measured at equal training" in lines[0]
    assert not any("One evaluation draw" in line for line in lines)


def test_a_run_that_kept_the_proggan_route_says_so_with_its_cost(tmp_path: Path) -> None:
    from searches import tiny

    from dggan.analysis.headline import headline
    from dggan.search.driver import run_search

    run = tmp_path / "run"  # no layer may be added: the only route to 16 px is ProgGAN's
    run_search(run, tiny(baseline="auto", max_steps=1, final_iterations=2, max_g_layers=0, max_d_layers=0),
               progress=False)
    lines = headline(run).lines()
    assert lines[0].startswith("No grown architecture beat ProgGAN at equal training"), lines[0]
    cost = next(line for line in lines if line.startswith("Cost:"))
    assert "CPU core-hours (1 torch thread x" in cost and "over 1 session(s)" in cost
    assert any(line.startswith("Where it went: candidates") for line in lines)


def test_route_text_of_the_proggan_route_in_the_pick() -> None:
    """The ProgGAN route's model in the final pick hangs on the search's root without an action: every doubling
    between them is a grow_res (it read 'init 8px → init' before)."""
    from types import SimpleNamespace

    from dggan.analysis.headline import route_text
    from dggan.model.actions import Action

    root, route32 = SimpleNamespace(resolution=8, action=None), SimpleNamespace(resolution=32, action=None)
    grown = SimpleNamespace(resolution=8, action=Action("grow_g", 3, 32))
    assert route_text([root, route32]) == "init 8px → res 16px → res 32px"  # type: ignore[list-item]
    assert route_text([root, grown, SimpleNamespace(resolution=8, action=None)]) == \
        "init 8px → G k3 f32 → trained on"  # type: ignore[list-item]
