"""Algorithm 1's rules, and the driver running them with a fake executor (no training: milliseconds)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dggan.analysis import analyses as A
from dggan.execution.state import Status
from dggan.execution.worker import CandidateResult, CandidateTask
from dggan.model.actions import Action, ActionSpace, GrowthLimits
from dggan.model.genome import Genome
from dggan.search.algorithm import Rules, best_candidate
from dggan.search.config import SearchConfig, create_run
from dggan.search.driver import Search
from dggan.search.ledger import Ledger

BASE = Genome.base(latent_size=8, channels={4: 8, 8: 8, 16: 8, 32: 8})
SPACE = ActionSpace(kernels=(3,), filters=(8, 16))  # 2 G + 2 D + grow_res = 5 actions


@dataclasses.dataclass(frozen=True)
class Cand:
    id: int
    genome: Genome
    normalized_metric: float | None = 1.0
    status: Status = Status.DONE

    @property
    def resolution(self) -> int:
        return self.genome.resolution


def rules(**overrides: Any) -> Rules:
    values: dict[str, Any] = {"top_k": 2, "p": 0.5, "seed": 0, "space": SPACE, "limits": GrowthLimits(32),
                              "max_steps": 3}
    values.update(overrides)
    return Rules(**values)


# ---------------------------------------------------------------------- the pure rules
def test_draws_depend_only_on_seed_and_step() -> None:
    parents = [Cand(1, BASE), Cand(2, BASE)]
    a = rules().children(1, parents)
    assert a == rules().children(1, parents)
    assert a != rules(seed=1).children(1, parents) or a != rules().children(2, parents)
    assert all(action in SPACE.actions() for _, action in a)


def test_fallback_grows_the_best_parent() -> None:
    best, other = Cand(7, BASE, 0.5), Cand(3, BASE, 0.9)
    for seed in range(20):  # p so small that nothing is drawn: one child, always of the first (best) parent
        (pair,) = rules(p=1e-9, seed=seed).children(1, [best, other])
        assert pair[0] is best
    # A best parent that cannot grow any more gives way to the next one.
    full = dataclasses.replace(best, genome=dataclasses.replace(BASE, resolution=32))
    stuck = rules(p=1e-9, space=ActionSpace(kernels=(3,), filters=(8,), grow_g=False, grow_d=False))
    (pair,) = stuck.children(1, [full, other])
    assert pair == (other, Action("grow_res"))


def test_past_max_steps_every_parent_gets_its_grow_res_child() -> None:
    parents = [Cand(1, BASE, 0.4), Cand(2, BASE, 0.6), Cand(3, dataclasses.replace(BASE, resolution=32), 0.8)]
    pairs = rules(max_steps=2).children(3, parents)
    assert pairs == [(parents[0], Action("grow_res")), (parents[1], Action("grow_res"))]  # 3 is at the target
    assert not rules(max_steps=2).forced(2) and rules(max_steps=None).children(3, parents)


def test_stopping_rule() -> None:
    at8, at32 = Cand(1, BASE), Cand(2, dataclasses.replace(BASE, resolution=32))
    assert not rules(max_steps=2).should_stop(2, [at8])  # the target is not reached yet: go on, forced
    assert rules(max_steps=2).should_stop(2, [at8, at32])
    assert not rules(max_steps=2).should_stop(1, [at32])
    assert rules().should_stop(0, [])
    nothing = rules(space=ActionSpace(kernels=(3,), filters=(8,), grow_g=False, grow_d=False))
    assert nothing.should_stop(0, [at32])  # grow_res only, at the target: nothing left to do


def test_selection_and_best() -> None:
    cands = [Cand(1, BASE, 0.9), Cand(2, BASE, 0.5), Cand(3, BASE, None), Cand(4, BASE, 0.5),
             Cand(5, BASE, 0.1, Status.DIVERGED), Cand(6, dataclasses.replace(BASE, resolution=16), 0.95)]
    assert [c.id for c in rules(top_k=3).select(cands, 1)] == [2, 4, 1]  # ties to the lower id
    assert [c.id for c in rules(top_k=1).select(cands, 0)] == [2, 4, 1, 6]  # step 0: every initial candidate
    assert best_candidate(cands, 16).id == 6  # at the target, however much better the 8px ones score
    assert best_candidate(cands, 32).id == 6  # none at 32px yet: the best at the highest resolution reached
    assert best_candidate(cands[:2], None).id == 2


def test_random_growth_keeps_k_finished_children_drawn_without_looking_at_scores() -> None:
    from dggan.search.algorithm import halve

    cands = [Cand(i, BASE, score) for i, score in enumerate([0.9, 0.5, 0.7, 0.3, 0.8, 0.6], start=1)]
    cands.append(Cand(7, BASE, 0.1, Status.DIVERGED))
    beam = rules(top_k=2)
    assert [c.id for c in beam.select(cands, 1)] == [4, 2]
    kept = {tuple(c.id for c in rules(top_k=2, selection="random", seed=s).select(cands, 1)) for s in range(40)}
    assert all(len(k) == 2 and 7 not in k for k in kept)  # K of the finished ones, never a diverged one
    assert len({frozenset(k) for k in kept}) > 5  # drawn, not ranked: many different pairs over seeds
    # The draw ignores the scores: the same ids with the scores reversed are kept alike.
    flipped = [dataclasses.replace(c, normalized_metric=1.5 - c.normalized_metric) for c in cands[:6]]
    for s in range(10):
        random_rules = rules(top_k=2, selection="random", seed=s)
        assert ({c.id for c in random_rules.select(cands, 1)} == {c.id for c in random_rules.select(flipped, 1)})
    assert [c.id for c in rules(selection="random").select(cands, 0)] == [4, 2, 6, 3, 5, 1]  # step 0: all
    # The pairs a step draws do not depend on the selection rule (their own stream).
    assert rules(selection="random").children(2, cands[:2]) == beam.children(2, cands[:2])
    # Halving's rungs under random growth: as many go on as under beam, drawn.
    score = {c.id: c.normalized_metric for c in cands}
    ranked, _ = halve(cands[:6], lambda c: score[c.id], eta=3, top_k=1)
    assert [c.id for c in ranked] == [4, 2]
    drawn = {tuple(c.id for c in halve(cands[:6], lambda c: score[c.id], 3, 1, rules(selection="random", seed=s)
                                       .rung_rng(1, 0))[0]) for s in range(30)}
    assert all(len(d) == 2 for d in drawn) and len(drawn) > 5
    assert beam.rung_rng(1, 0) is None
    with pytest.raises(ValueError, match="selection"):
        rules(selection="greedy")
    with pytest.raises(Exception, match="selection must be beam or random"):
        SearchConfig(selection="greedy")


# ---------------------------------------------------------------------- the driver, with a fake executor
class FakeExecutor:
    """Scores each candidate from its genome, without training: every grown G layer helps a little, a
    grown resolution costs a little."""

    name = "inprocess"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        self.batches.append([t.candidate_id for t in tasks])
        for task in tasks:
            genome = Genome.from_json(task.genome_json)
            metric = 1.0 - 0.05 * len(genome.g_layers) + 0.01 * len(genome.d_layers) \
                + 0.02 * (genome.resolution // 8) + 0.001 * task.candidate_id
            yield CandidateResult(task.candidate_id, Status.DONE, metric=metric, train_seconds=0.0,
                                  eval_seconds=0.0)

    def close(self) -> None:
        pass


def fake_search(tmp_path: Path, **overrides: Any) -> tuple[Path, list[Any]]:
    settings: dict[str, Any] = {
        "data": "synthetic:n=32,res=32", "metric": "swd32", "baseline": "none",
        "initial_channels": [8], "latent_size": 8, "target_resolution": 32, "top_k": 2, "p": 0.3,
        "kernels": [3], "filters": [8, 16], "max_steps": 3, "final_iterations": 0, "iterations": 4,
    }
    settings.update(overrides)
    config = SearchConfig.from_dict(settings)
    run = create_run(tmp_path / "run", config)
    Search(run, config, FakeExecutor(), progress=False).run()  # type: ignore[arg-type]
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        return run, ledger.candidates()


def steps_and_kept(run: Path, rows: list[Any]) -> tuple[dict[int, list[Any]], dict[int, list[int] | None]]:
    by_step: dict[int, list[Any]] = {}
    for r in rows:
        by_step.setdefault(r.step, []).append(r)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        return by_step, {s: ledger.kept(s) for s in by_step}


def test_driver_fallback_grows_the_best_parent(tmp_path: Path) -> None:
    run, rows = fake_search(tmp_path, p=1e-6, max_steps=4)
    by_step, kept = steps_and_kept(run, rows)
    for step in range(1, max(by_step) + 1):  # p draws nothing: one child per step, from the best parent
        assert len(by_step[step]) == 1 and by_step[step][0].parent == kept[step - 1][0]


def test_driver_forces_growth_of_every_kept_parent(tmp_path: Path) -> None:
    run, rows = fake_search(tmp_path, p=0.6, top_k=3, max_steps=1)
    by_step, kept = steps_and_kept(run, rows)
    assert len(kept[1]) == 3
    # Past max_steps: exactly one grow_res child for every kept parent, until the target is reached.
    for step in range(2, max(by_step) + 1):
        assert all(r.action == Action("grow_res") for r in by_step[step])
        assert sorted(r.parent for r in by_step[step]) == sorted(kept[step - 1])
    # It stops once a kept parent is at the target resolution (here the step after max_steps).
    assert max(r.resolution for r in rows) == 32 and any(r.resolution == 32 for r in by_step[max(by_step)])


def test_random_growth_keeps_what_the_draw_says_not_the_best(tmp_path: Path) -> None:
    run, rows = fake_search(tmp_path, p=0.6, top_k=2, max_steps=3, selection="random", seed=3)
    by_step, kept = steps_and_kept(run, rows)
    rules = SearchConfig.from_dict({"selection": "random", "top_k": 2, "seed": 3}).rules()
    not_top = 0
    for step in range(1, max(by_step)):
        done = [r for r in by_step[step] if r.status == Status.DONE]
        assert kept[step] == [r.id for r in rules.select(done, step)]
        top = [r.id for r in sorted(done, key=lambda r: (r.normalized_metric, r.id))[:2]]
        not_top += sorted(kept[step]) != sorted(top)
    assert not_top >= 1  # the fake scores rank the children; random growth kept others at least once


def test_driver_selects_top_k_and_replay_retraces_it(tmp_path: Path) -> None:
    run, rows = fake_search(tmp_path, p=0.4, top_k=2, max_steps=3)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        settings = ledger.settings()
        for step in range(max(r.step for r in rows) + 1):
            ranked = sorted((r for r in rows if r.step == step and r.status == Status.DONE),
                            key=lambda r: (r.normalized_metric, r.id))
            assert ledger.kept(step) == [r.id for r in ranked[:2]]
    # The K/p replay runs the same rules: with the run's own K, p and seed it visits every candidate.
    index = A.ReplayIndex(rows, settings=settings)
    replay = index.run(2, 0.4, seed=0)
    assert replay.cost == len(rows) and replay.best_id == index.actual().best_id
    assert index.run(1, 0.4, seed=0).cost < len(rows)


def test_rules_from_the_settings_match_the_config() -> None:
    config = SearchConfig.from_dict({"top_k": 3, "p": 0.25, "seed": 9, "kernels": [3], "filters": [16],
                                     "max_steps": 4, "target_resolution": 16, "max_g_layers": 2})
    assert Rules.from_settings(config.to_dict()) == config.rules()


@pytest.mark.parametrize("value,needle", [("abc", "p must be a number, got 'abc'"),
                                          ("Infinity", "p must be a number, got Infinity")])
def test_wrong_types_name_the_setting(value: str, needle: str) -> None:
    from dggan._util.settings import parse_assignment
    from dggan.errors import ConfigError

    key, parsed = parse_assignment(f"p={value}")
    with pytest.raises(ConfigError, match=needle):
        SearchConfig.from_dict({key: parsed})
    assert SearchConfig.from_dict(dict([parse_assignment("data=123")])).data == "123"
    assert SearchConfig.from_dict(dict([parse_assignment("lr=1")])).lr == 1.0


def test_every_training_knob_is_a_search_setting() -> None:
    from dggan.search.config import SEARCH_MANAGED
    from dggan.training.trainer import TrainConfig

    knobs = {f.name for f in dataclasses.fields(TrainConfig)} - SEARCH_MANAGED
    assert knobs <= {f.name for f in dataclasses.fields(SearchConfig)}
    config = SearchConfig.from_dict({"gp_lambda": 5, "drift": 0.01, "beta1": 0.5, "beta2": 0.9, "flip": True,
                                     "mbstd_group": 2, "divergence_threshold": 1e3, "check_every": 3})
    train = config.train_config(10, seed=4)
    assert (train.gp_lambda, train.drift, train.beta1, train.beta2, train.flip) == (5.0, 0.01, 0.5, 0.9, True)
    assert (train.mbstd_group, train.divergence_threshold, train.check_every, train.seed) == (2, 1e3, 3, 4)


def test_cli_set_with_a_wrong_type_names_the_field(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dggan.cli import app

    result = CliRunner().invoke(app, ["search", "--run-dir", str(tmp_path / "r"), "--set", "p=abc"])
    assert result.exit_code == 2 and "p must be a number, got 'abc'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


@pytest.mark.parametrize("eta,selection", [(1, "beam"), (3, "beam"), (3, "random")])
def test_a_replay_with_the_runs_own_settings_reproduces_its_kept_sets(tmp_path: Path, eta: int,
                                                                      selection: str) -> None:
    """The search and the report's replay run one loop (``algorithm.run_steps``) and one halving rule, so a
    replay with the run's own K, p, eta and seed keeps exactly what the search kept, step by step (random
    growth included: its draws are the rules' too)."""
    run, rows = fake_search(tmp_path, p=0.6, top_k=2, max_steps=3, halving_eta=eta, iterations=9,
                            selection=selection)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        settings, rungs = ledger.settings(), ledger.rungs()
        recorded = tuple(tuple(ledger.kept(s) or ()) for s in range(max(r.step for r in rows) + 1))
    assert eta == 1 or any(r.status == Status.PRUNED for r in rows)  # halving did prune
    index = A.ReplayIndex(rows, settings=settings, rungs=rungs)
    replay = index.run(2, 0.6, seed=settings["seed"], eta=eta)
    assert replay.kept == recorded
    # A plain replay of a halving run costs what a plain search costs: every child its whole budget.
    plain = index.run(2, 0.6, seed=settings["seed"], eta=1)
    children = [r for r in rows if r.parent is not None]
    assert plain.iterations == sum(9 for _ in children) + sum(int(r.iterations or 0) for r in rows if r.parent is None)
    if eta > 1:
        assert replay.iterations < plain.iterations
