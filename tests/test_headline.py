"""The one-sentence result at the end of ``dggan search`` and the top of the report says what it measured."""

from __future__ import annotations

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
                  "final_vs_equal_compute": "tie"}
    lines = result(comparison=comparison).lines()
    assert not any("One evaluation draw" in line for line in lines)
    assert any("Re-scored over 3 evaluation seeds: final 13.5 ± 2.9" in line and "(tie)" in line for line in lines)


def test_a_fixed_baseline_is_not_called_equal_training() -> None:
    lines = result(baseline_kind="fixed", baseline_value=20.0, final_normalized=0.625).lines()
    assert "not measured at equal training" in lines[0]
    assert not any("One evaluation draw" in line for line in lines)
