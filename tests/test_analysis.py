"""The analyses on a small hand-made ledger with answers computed by hand, and on synthetic ledgers."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from fixtures.synthetic_ledger import write_synthetic_run

from dggan.analysis import analyses as A
from dggan.model.actions import Action, GrowthLimits, apply_action
from dggan.model.genome import Genome
from dggan.search.algorithm import best_candidate, route, search_result
from dggan.search.ledger import CandidateRow, Ledger

LIMITS = GrowthLimits(target_resolution=32)
BASE = Genome.base(channels={4: 64, 8: 64, 16: 64, 32: 64})

# id: (parent, action, status, normalized metric). Ids follow insertion order, so they are the ledger's ids.
#
#   1 init 1.0 ──┬─ 3 G k3 f32 0.9 ── 11 G k3 f32 0.85
#                ├─ 4 D k7 f32 1.2
#                └─ 5 res diverged (no metric)
#   2 init 0.8 ──┬─ 6 G k3 f32 0.96
#                ├─ 7 D k7 f32 0.4 ──┬─ 9 res 0.6 (16px)
#                │                   └─ 10 G k3 f32 0.36
#                └─ 8 G k7 f64 failed
HAND: dict[int, tuple[int | None, str | None, str, float | None]] = {
    1: (None, None, "done", 1.0),
    2: (None, None, "done", 0.8),
    3: (1, "grow_g:k3:f32", "done", 0.9),
    4: (1, "grow_d:k7:f32", "done", 1.2),
    5: (1, "grow_res", "diverged", None),
    6: (2, "grow_g:k3:f32", "done", 0.96),
    7: (2, "grow_d:k7:f32", "done", 0.4),
    8: (2, "grow_g:k7:f64", "failed", None),
    9: (7, "grow_res", "done", 0.6),
    10: (7, "grow_g:k3:f32", "done", 0.36),
    11: (3, "grow_g:k3:f32", "done", 0.85),
}
STEP = {1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 2, 10: 2, 11: 2}
KEPT = {0: [2, 1], 1: [7, 3]}


def write_hand_ledger(path: Path, settings: dict | None = None) -> Path:
    genomes: dict[int, Genome] = {}
    with Ledger.create(path, settings if settings is not None else {"top_k": 2, "p": 0.4}) as ledger:
        for cid, (parent, action, status, norm) in HAND.items():
            act = None if action is None else Action.parse(action)
            genome = BASE if parent is None else apply_action(genomes[parent], act, LIMITS)
            genomes[cid] = genome
            got = ledger.add_candidate(step=STEP[cid], genome=genome, parent=parent,
                                       action=act, seed=cid)
            assert got == cid
            fields = {"status": status, "train_seconds": 10.0}
            if norm is not None:
                fields.update(metric=norm * 4.0, normalized_metric=norm)
            if status == "failed":
                fields["error"] = "RuntimeError: out of memory"
            ledger.update(cid, **fields)
        for step, ids in KEPT.items():
            ledger.set_kept(step, ids)
    return path


@pytest.fixture
def hand(tmp_path: Path) -> list[CandidateRow]:
    with Ledger.open(write_hand_ledger(tmp_path / "ledger.sqlite"), readonly=True) as ledger:
        return ledger.candidates()


def test_labels() -> None:
    assert A.action_label(None) == "init"
    assert A.action_label(Action("grow_res")) == "res"
    assert A.action_label(Action("grow_g", 3, 256)) == "G k3 f256"
    assert A.action_label(Action("grow_d", 7, 32)) == "D k7 f32"
    assert Action.parse("G k3 f256") == Action("grow_g", 3, 256) and Action.parse("res") == Action("grow_res")


def test_best_is_lowest_at_the_highest_resolution_and_its_route(hand: list[CandidateRow]) -> None:
    # 10 (0.36) is lower but only 8px; 9 is the one 16px model.
    best = best_candidate(hand)
    assert best is not None and best.id == 9 and best.resolution == 16
    assert [r.id for r in route(hand, 9)] == [2, 7, 9]
    assert search_result(hand, 10).id == 10  # the search's own pick wins
    assert A.score_key(hand) == "normalized_metric"


def test_action_effects_by_hand(hand: list[CandidateRow]) -> None:
    effects = {e.label: e for e in A.action_effects(hand)}
    assert list(effects) == ["G k3 f32", "D k7 f32", "res"]  # G, then D, then res
    g = effects["G k3 f32"]  # ratios 0.9 (3/1), 1.2 (6/2), 0.9 (10/7), 0.85/0.9 (11/3); 8 failed: left out
    ratios = [0.9, 1.2, 0.9, 0.85 / 0.9]
    assert (g.n_children, g.n_improved, g.n_diverged) == (4, 3, 0)
    assert g.improved_share == pytest.approx(0.75)
    mean = sum(ratios) / 4
    assert g.mean_ratio == pytest.approx(mean)
    assert g.std_ratio == pytest.approx(math.sqrt(sum((r - mean) ** 2 for r in ratios) / 4))
    d = effects["D k7 f32"]  # 1.2 (4/1), 0.5 (7/2)
    assert (d.n_children, d.n_improved, d.improved_share) == (2, 1, 0.5)
    assert d.mean_ratio == pytest.approx(0.85) and d.std_ratio == pytest.approx(0.35)
    res = effects["res"]  # 5 diverged (counts, not improved, no ratio), 9: 0.6 / 0.4
    assert (res.n_children, res.n_improved, res.n_diverged, res.improved_share) == (2, 0, 1, 0.0)
    assert res.mean_ratio == pytest.approx(1.5) and res.std_ratio == pytest.approx(0.0)


def test_pruning_risk_by_hand(hand: list[CandidateRow]) -> None:
    risk = {r.threshold: r for r in A.pruning_risk(hand, thresholds=[0.5, 0.85, 1.0])}
    # t=0.85: good parents 2 (0.8) and 7 (0.4): children 6 no, 7 yes, 9 yes, 10 yes (8 failed: out).
    # Sub-optimal parents 1 (1.0) and 3 (0.9): children 3 no, 4 no, 5 diverged = no, 11 (0.85, not < 0.85) no.
    r = risk[0.85]
    assert (r.good_parents, r.good_parent_children, r.good_parent_good_children) == (2, 4, 3)
    assert r.p_good_given_good_parent == pytest.approx(0.75)
    assert (r.suboptimal_parents, r.suboptimal_parent_children, r.suboptimal_parent_good_children) == (2, 4, 0)
    assert r.p_good_given_suboptimal_parent == 0.0
    # t=0.5: only 7 is good (children 9 no, 10 yes); of the 6 children of the sub-optimal 1, 2, 3 only 7 is good.
    r = risk[0.5]
    assert (r.good_parents, r.good_parent_children, r.p_good_given_good_parent) == (1, 2, 0.5)
    assert (r.suboptimal_parents, r.suboptimal_parent_children) == (3, 6)
    assert r.p_good_given_suboptimal_parent == pytest.approx(1 / 6)
    # t=1.0: 1.0 itself is not good (strictly below); 2, 3 and 7 are, and all 5 of their children are too.
    r = risk[1.0]
    assert (r.good_parents, r.good_parent_good_children, r.good_parent_children) == (3, 5, 5)
    assert (r.suboptimal_parents, r.suboptimal_parent_good_children, r.suboptimal_parent_children) == (1, 1, 3)
    assert [x.threshold for x in A.pruning_risk(hand)] == pytest.approx([0.5 + 0.05 * i for i in range(11)])


def test_pruning_thresholds(hand: list[CandidateRow]) -> None:
    import dataclasses

    thresholds, paper = A.pruning_thresholds(hand)
    assert paper and thresholds == pytest.approx([0.5 + 0.05 * i for i in range(11)])
    # Every parent worse than the baseline: the paper's window says nothing, so span the parents' scores.
    worse = [dataclasses.replace(r, normalized_metric=r.normalized_metric + 1.0) if r.normalized_metric else r
             for r in hand]
    thresholds, paper = A.pruning_thresholds(worse)
    parent_scores = [1.4, 1.9, 2.0, 1.8]  # parents 7, 3, 1, 2
    assert not paper and len(thresholds) == 11
    assert min(parent_scores) <= thresholds[0] < thresholds[-1] <= max(parent_scores)
    risks = A.pruning_risk(worse, thresholds=thresholds)
    assert any(r.good_parents > 0 for r in risks) and any(r.suboptimal_parents > 0 for r in risks)


def test_capacity_by_hand(hand: list[CandidateRow]) -> None:
    cap = A.capacity(hand, zoom_threshold=1.2, best_id=9)
    by_id = {p.id: p for p in cap.points}
    assert sorted(by_id) == [1, 2, 3, 4, 6, 7, 9, 10, 11]  # 5 diverged without a metric, 8 failed
    assert cap.route == [2, 7, 9]
    assert [p.id for p in cap.points if p.on_route] == [2, 7, 9]
    for r in hand:
        if r.id in by_id:
            assert by_id[r.id].g2d_ratio == pytest.approx(r.g_params / r.d_params)
    assert by_id[4].g2d_ratio < by_id[1].g2d_ratio  # growing D lowers the ratio
    better = [by_id[i].g2d_ratio for i in (2, 3, 6, 7, 9, 10, 11)]  # score < 1
    assert cap.ratio_range_better_than_baseline == pytest.approx((min(better), max(better)))


def test_replay_by_hand(hand: list[CandidateRow]) -> None:
    index = A.ReplayIndex(hand)
    assert index.target_resolution == 16 and [r.id for r in index.initial] == [1, 2]
    full = index.run(None, 1.0)
    assert (full.best_id, full.cost) == (9, 11)  # every trained candidate, failed 8 included
    assert index.actual() == A.ReplayRun(None, 1.0, -1, 0.6, 9, 11)
    # K=1: both initial candidates are expanded (Algorithm 1 keeps them all), then only 7: 11 is never reached.
    k1 = index.run(1, 1.0)
    assert (k1.best_id, k1.cost) == (9, 10)
    # p=0: only the initial candidates; 16px is never reached.
    none = index.run(2, 0.0)
    assert (none.best_score, none.best_id, none.cost) == (None, None, 2)
    # Same seed, same replay; costs lie between.
    half = [index.run(2, 0.5, seed=s) for s in range(20)]
    assert half[3] == index.run(2, 0.5, seed=3)
    assert all(2 <= r.cost <= 11 for r in half) and len({r.cost for r in half}) > 1
    cells = A.replay_grid(hand, [1, 2], [0.0, 1.0], seeds=3)
    cell = {(c.k, c.p): c for c in cells}
    assert cell[(2, 1.0)].best_mean == pytest.approx(0.6) and cell[(2, 1.0)].reached == 3
    assert cell[(2, 1.0)].cost_mean == 11 and cell[(1, 1.0)].cost_mean == 10
    assert cell[(1, 0.0)].reached == 0 and cell[(1, 0.0)].best_mean is None


def test_search_hyperparameters(hand: list[CandidateRow]) -> None:
    assert A.search_hyperparameters(hand, {"top_k": 20, "p": 0.4}) == (20, 0.4)
    k, p = A.search_hyperparameters(hand, {})  # estimated: K from kept sets, p from children per parent-action
    assert k == 2
    assert p == pytest.approx(9 / (4 * 4))  # 9 children, parents {1, 2, 3, 7}, 4 distinct actions


def test_raw_metric_when_no_baseline(hand: list[CandidateRow]) -> None:
    import dataclasses

    raw = [dataclasses.replace(r, normalized_metric=None) for r in hand]
    assert A.score_key(raw) == "metric"
    effects = {e.label: e for e in A.action_effects(raw, "metric")}
    assert effects["D k7 f32"].mean_ratio == pytest.approx(0.85)  # metric = 4 x normalized: same ratios


def test_synthetic_ledger_is_realistic(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", 300, seed=1, top_k=5, p=0.3)
    assert (run / "options.json").is_file()
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
        kept = {s: ledger.kept(s) for s in range(max(r.step for r in ledger.candidates()) + 1)}
        final = ledger.final()
    assert len(rows) == 300
    by_id = {r.id: r for r in rows}
    initial = [r for r in rows if r.parent is None]
    assert len(initial) == 3 and all(r.step == 0 and r.action is None for r in initial)
    statuses = Counter(r.status for r in rows)
    assert statuses["done"] > 250 and statuses["diverged"] + statuses["failed"] > 0
    labels = {A.action_label(r.action) for r in rows if r.action is not None}
    assert "res" in labels and labels <= {f"{w} k{k} f{f}" for w in "GD" for k in (3, 7)
                                          for f in (32, 64, 128, 256, 512, 1024)} | {"res"}
    for r in rows:
        if r.parent is not None:  # the child's genome is its parent's plus the action
            parent = by_id[r.parent]
            assert r.step == parent.step + 1 and parent.kept
            assert r.genome == apply_action(parent.genome, r.action, LIMITS)
    for step, ids in kept.items():  # kept = the step's top-K by normalized metric
        done = sorted((r for r in rows if r.step == step and A.score(r) is not None),
                      key=lambda r: (r.normalized_metric, r.id))
        assert ids == [r.id for r in done[:5]]
    assert max(r.resolution for r in rows) == 32
    assert final is not None and final.candidate == best_candidate(rows).id


def test_replay_with_full_k_and_p1_reproduces_the_real_search(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run", 600, seed=2, top_k=6, p=0.4)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
        settings = ledger.settings()
    real_best = best_candidate(rows)
    k, p = A.search_hyperparameters(rows, settings)
    assert (k, p) == (6, 0.4)
    index = A.ReplayIndex(rows)
    for kk in (None, k):  # no pruning at all, or the run's own K: both retrace the whole recorded search
        run_ = index.run(kk, 1.0, seed=0)
        assert run_.best_id == real_best.id and run_.best_score == pytest.approx(real_best.normalized_metric)
        assert run_.cost == len(rows)
    smaller = index.run(2, 1.0)
    assert smaller.cost < len(rows)
    assert smaller.best_score is None or smaller.best_score >= real_best.normalized_metric
