"""A candidate's graphed training that fails retries once without graphs (in the worker), and how every
candidate ran reaches its stats.jsonl, the ledger and ``dggan status``. On the CPU: graphs are switched on by
monkeypatching, and run through ``EmulatedBackend``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from searches import tiny

import dggan.training.trainer as trainer_mod
from dggan.execution.state import Status
from dggan.execution.worker import CandidateTask, run_candidate, run_candidates
from dggan.model.genome import Genome
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger
from dggan.search.watch import graphs_line, read_status
from dggan.training.cuda_graphs import EmulatedBackend
from dggan.training.trainer import TrainConfig, Trainer

STICKY = "CUDA error: an illegal memory access was encountered (simulated)"


pytestmark = pytest.mark.usefixtures("graphs_allowed_again")  # tests/conftest.py


def task(tmp_path: Path, genome: Genome, cid: int = 1, **train: Any) -> CandidateTask:
    return CandidateTask(candidate_id=cid, genome_json=genome.to_json(), parent_checkpoint=None,
                         out_dir=str(tmp_path / f"c{cid:05d}"),
                         train=TrainConfig(**{"iterations": 6, "batch_size": 8, "log_every": 3, "device": "cpu",
                                              **train}),
                         data="synthetic:n=64,res=16", metric="swd32", sample_grid=0,
                         eval_options={"batch_size": 32})


@pytest.fixture
def graphs_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Graphs "on" on the CPU, and an iteration that raises a sticky CUDA error only while graphed."""
    monkeypatch.setattr(trainer_mod, "graphs_enabled", lambda device_type, flag: flag)
    step = Trainer._step

    def failing(self: Trainer) -> torch.Tensor:
        if self.graphed:
            raise RuntimeError(STICKY)
        return step(self)

    monkeypatch.setattr(Trainer, "_step", failing)


def test_a_graphed_training_error_retries_once_without_graphs(tmp_path: Path, tiny_genome: Genome,
                                                              graphs_fail: None) -> None:
    result = run_candidate(task(tmp_path, tiny_genome, cuda_graphs=True))
    assert result.status == Status.DONE and not result.retry, result.error
    graphs = result.extra["graphs"]
    assert graphs["mode"] == "retried eagerly" and graphs["why"] == f"graphed training failed: RuntimeError: {STICKY}"
    out = tmp_path / "c00001"
    assert STICKY in (out / "graphs_error.txt").read_text()
    lines = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [3, 6] and lines[0]["graphs"]["mode"] == "retried eagerly"
    assert all("graphs" not in line for line in lines[1:])  # only when it changes


def test_an_eager_retry_that_fails_too_stops_with_both_errors(tmp_path: Path, tiny_genome: Genome,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_mod, "graphs_enabled", lambda device_type, flag: flag)
    calls = []

    def always(self: Trainer) -> torch.Tensor:
        calls.append(self.graphed)
        raise RuntimeError("CUDA error: unspecified launch failure" if self.graphed else "disk on fire")

    monkeypatch.setattr(Trainer, "_step", always)
    result = run_candidate(task(tmp_path, tiny_genome, cuda_graphs=True))
    assert calls == [True, False]  # once graphed, once eager, no more
    assert result.retry and result.status == Status.FAILED
    assert result.error == ("RuntimeError: disk on fire (retried without CUDA graphs after graphed training failed:"
                            " RuntimeError: CUDA error: unspecified launch failure)")
    assert result.extra["graphs"]["mode"] == "retried eagerly"


def test_out_of_memory_and_eager_errors_are_not_retried(tmp_path: Path, tiny_genome: Genome,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_mod, "graphs_enabled", lambda device_type, flag: flag)
    calls = []

    def oom(self: Trainer) -> torch.Tensor:
        calls.append(self.graphed)
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(Trainer, "_step", oom)
    result = run_candidate(task(tmp_path, tiny_genome, cid=1, cuda_graphs=True))
    assert result.status == Status.FAILED and not result.retry and calls == [True]
    calls.clear()
    result = run_candidate(task(tmp_path, tiny_genome, cid=2, cuda_graphs=False))
    assert result.status == Status.FAILED and not result.retry and calls == [False]


def test_candidates_trained_together_retry_alone(tmp_path: Path, tiny_genome: Genome, graphs_fail: None) -> None:
    results = run_candidates([task(tmp_path, tiny_genome, 1, cuda_graphs=True),
                              task(tmp_path, tiny_genome, 2, cuda_graphs=False)])
    assert [r.status for r in results] == [Status.DONE, Status.DONE], [r.error for r in results]
    assert results[0].extra["graphs"]["mode"] == "retried eagerly"
    assert results[1].extra["graphs"] == {"mode": "eager", "captures": 0, "self_checks_passed": 0,
                                          "self_check": False, "why": "CUDA graphs are CUDA only"}


def test_how_candidates_ran_reaches_the_ledger_and_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole tiny search "graphed" through the emulated backend, in one process: the second candidate's replays
    fail after the first (retried eagerly), the third's capture fails (it falls back, and graphs go off for the
    process: every later candidate falls back before any capture), the first runs graphed."""
    monkeypatch.setattr(trainer_mod, "graphs_enabled", lambda device_type, flag: flag)
    made: list[Trainer] = []

    def graphed_step(self: Trainer, backend: Any = None) -> Any:
        backend = EmulatedBackend(self.graph_state)
        made.append(self)
        if len(made) == 3:
            backend.fail_end = RuntimeError("operation not permitted when stream is capturing")
        if len(made) == 2:
            replays = iter(range(10**6))
            original = backend.new_graph

            def new_graph() -> Any:
                graph = original()
                replay = graph.replay

                def flaky() -> None:
                    if next(replays) >= 1:  # the self-check's replay works, the next one does not
                        raise RuntimeError(STICKY)
                    replay()

                graph.replay = flaky  # type: ignore[method-assign]
                return graph

            backend.new_graph = new_graph  # type: ignore[method-assign]
        return GraphedStep(self.device, self._release_grads,
                           check=SelfCheck(self.graph_state) if self.config.graph_self_check else None,
                           backend=backend)

    from dggan.training.cuda_graphs import GraphedStep, SelfCheck

    monkeypatch.setattr(Trainer, "graphed_step", graphed_step)
    run = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="capture failed"):
        run_search(run, tiny(iterations=8, max_steps=1, baseline="none", final_iterations=0), progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = sorted(ledger.candidates(), key=lambda r: r.id)
    assert len(rows) >= 4 and all(r.status == Status.DONE for r in rows)
    graphs = [r.extra["graphs"] for r in rows]
    capture = "capture failed: RuntimeError: operation not permitted when stream is capturing"
    assert [g["mode"] for g in graphs] == ["graphed", "retried eagerly"] + ["fell back"] * (len(rows) - 2)
    assert graphs[2]["why"] == capture
    assert all(g["why"] == f"CUDA graphs are off in this process: {capture}" and g["captures"] == 0
               for g in graphs[3:])
    line = graphs_line(rows)
    why = f"graphed training failed: RuntimeError: {STICKY}"[:100]
    assert line is not None and line.startswith(f"graphs: {len(rows) - 2} fell back, 1 graphed, 1 retried eagerly"
                                                f" (c{rows[1].id:05d}: {why}; c{rows[2].id:05d}: {capture}"), line
    assert line in read_status(run).lines()


def test_graphs_line_is_quiet_without_graphs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_search(run, tiny(max_steps=1, baseline="none", final_iterations=0), progress=False)
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
    assert {r.extra["graphs"]["why"] for r in rows} == {"CUDA graphs are CUDA only"}  # recorded all the same
    assert graphs_line(rows) is None and not any(line.startswith("graphs:") for line in read_status(run).lines())


def test_graphs_line_names_the_first_three_and_counts_the_rest() -> None:
    from types import SimpleNamespace

    def row(cid: int, mode: str, why: str = "") -> Any:
        return SimpleNamespace(id=cid, extra={"graphs": {"mode": mode, "why": why}})

    rows = [row(1, "graphed"), row(2, "graphed"), row(3, "eager", "no capture yet (warm-up)"), row(4, "graphed")]
    rows += [row(10 + i, "fell back", "capture failed: RuntimeError: " + "x" * 200) for i in range(5)]
    rows.append(SimpleNamespace(id=20, extra={}))  # recorded before graphs were: not counted
    line = graphs_line(rows)
    assert line is not None and line.startswith("graphs: 5 fell back, 3 graphed, 1 eager (c00010: capture failed")
    assert line.endswith("; 2 more)") and line.count("c000") == 3 and "x" * 71 not in line


def test_a_resumed_candidate_logs_each_iteration_once(tmp_path: Path, tiny_genome: Genome) -> None:
    """What a run killed past its checkpoint at 4 leaves: lines for 5 and 6, and one cut short. The resumed
    run retrains 5 and 6; its stats.jsonl reads as one uninterrupted run."""
    import dataclasses

    first = dataclasses.replace(task(tmp_path, tiny_genome, log_every=1), checkpoint_every=2)
    assert run_candidate(dataclasses.replace(first, until=4)).status == Status.DONE
    stats = tmp_path / "c00001" / "stats.jsonl"
    logged = stats.read_text()
    stats.write_text(logged + '{"iteration": 5, "loss_d": 9.0}\n{"iteration": 6, "loss_d": 9.0}\n{"itera')
    assert run_candidate(first).status == Status.DONE
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert stats.read_text().startswith(logged) and all(line.get("loss_d") != 9.0 for line in lines)
