"""One training driver and one device decision (#29, points 7 and 8).

``dggan train`` and a search's candidates build their trainer (fresh, as a child, continued), describe the model,
log stats.jsonl, checkpoint and sample through ``dggan.training.run``; which device ``auto`` (or no device) means is
``dggan.training.devices.resolve_device``'s answer everywhere it is asked. A candidate's task carries its settings
as a frozen TrainConfig.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import dggan.execution.worker as worker_module
import dggan.training.run as driver
from dggan.cli import app
from dggan.cli import options as cli_options
from dggan.errors import ConfigError
from dggan.execution.executors import LocalExecutor
from dggan.execution.worker import CandidateTask, run_candidate
from dggan.model.actions import Action, apply_action
from dggan.model.genome import Genome, constant_channels
from dggan.search.config import SearchConfig
from dggan.training import devices
from dggan.training.config import TrainConfig

runner = CliRunner()
DATA = "synthetic:n=64,res=16"
SMALL = ["--batch-size", "8", "--log-every", "2", "--no-progress", "--data", DATA]


def spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, calls: list[tuple[str, Any]],
        note: Callable[..., Any]) -> None:
    """Replace ``owner.name`` by a wrapper that records ``(name, note(*args, **kwargs))``, then calls the original."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append((name, note(*args, **kwargs)))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def start_of(*args: Any, parent: Any = None, resume: Any = None, **kwargs: Any) -> str:
    return "continued" if resume is not None else "child" if parent is not None else "fresh"


def task(tmp_path: Path, cid: int, genome: Genome, **fields: Any) -> CandidateTask:
    return CandidateTask(**{"candidate_id": cid, "genome_json": genome.to_json(), "parent_checkpoint": None,
                            "out_dir": str(tmp_path / f"c{cid:05d}"),
                            "train": TrainConfig(iterations=4, batch_size=8, log_every=2, device="cpu"), "data": DATA,
                            "metric": "swd16", "sample_grid": 4, "eval_options": {"batch_size": 16}, **fields})


def test_dggan_train_and_a_candidate_go_through_the_one_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    assert worker_module.model_run is driver and worker_module.ModelRun is driver.ModelRun
    spy(monkeypatch, driver, "build_trainer", calls, start_of)
    for method in ("begin", "train_kwargs", "log", "save", "save_samples"):
        spy(monkeypatch, driver.ModelRun, method, calls, lambda run, *a, **k: run.folder.root.name)

    # dggan train: from scratch, as a child, continued.
    cli = tmp_path / "cli"
    shape = ["--channels", "8", "--latent-size", "8", "--max-resolution", "16"]
    for args in ([*shape, "--iterations", "4", "--checkpoint-every", "2", "--run-dir", str(cli / "new")],
                 ["--parent", str(cli / "new" / "checkpoint.safetensors"), "--action", "grow_g:k3:f32",
                  "--iterations", "4", "--run-dir", str(cli / "grown")],
                 ["--from", str(cli / "new" / "checkpoint.safetensors"), "--iterations", "6",
                  "--run-dir", str(cli / "more")]):
        result = runner.invoke(app, ["train", *SMALL, *args])
        assert result.exit_code == 0, result.output
    by_cli = list(calls)
    assert [n for name, n in by_cli if name == "build_trainer"] == ["fresh", "child", "continued"]
    for folder in ("new", "grown", "more"):
        assert {name for name, n in by_cli if n == folder} == {"begin", "train_kwargs", "log", "save", "save_samples"}
    assert sorted(p.name for p in (cli / "new").glob("samples*.png")) == ["samples-000002.png", "samples.png"]
    assert (cli / "grown" / "inheritance.json").is_file()

    # A search's candidates: from scratch, as a child of the first, continuing the first (the final training).
    calls.clear()
    genome = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    first = run_candidate(task(tmp_path, 1, genome))
    child = apply_action(genome, Action("grow_d", kernel=3, filters=32))
    second = run_candidate(task(tmp_path, 2, child, parent_checkpoint=first.checkpoint))
    third = run_candidate(dataclasses.replace(task(tmp_path, 3, genome, continue_from=first.checkpoint),
                                              train=TrainConfig(iterations=6, batch_size=8, log_every=2)))
    assert [r.status.value for r in (first, second, third)] == ["done"] * 3, [r.error for r in (first, second, third)]
    assert [n for name, n in calls if name == "build_trainer"] == ["fresh", "child", "continued"]
    for folder in ("c00001", "c00002", "c00003"):
        assert {name for name, n in calls if n == folder} == {"begin", "train_kwargs", "log", "save", "save_samples"}
    assert (tmp_path / "c00002" / "inheritance.json").is_file()
    lines = [json.loads(line) for line in (tmp_path / "c00001" / "stats.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [2, 4] and "graphs" in lines[0] and "graphs" not in lines[1]


def test_resolve_device_is_the_one_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.cuda.is_available():  # this machine: auto is the CPU
        assert devices.resolve_device("auto") == devices.resolve_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == devices.resolve_device() == "cpu"
    assert [devices.resolve_device(n) for n in ("cpu", "cuda", "cuda:1")] == ["cpu", "cuda", "cuda:1"]  # names stay
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == devices.resolve_device(None) == "cuda"
    for bad in ("tpu", "cuda:x", "CPU", "", 3):
        with pytest.raises(ConfigError, match=r"^device must be auto, cpu, cuda or cuda:N, got "):
            devices.resolve_device(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^--device must be auto, cpu, cuda or cuda:N, got 'tpu'$"):
        cli_options.resolve_device("tpu")


def test_every_place_that_needs_a_device_asks_resolve_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Any] = []
    monkeypatch.setattr(devices, "resolve_device", lambda name=None, field="device": asked.append(name) or "cpu")
    assert SearchConfig.from_dict({"device": "auto"}).resolved_device() == "cpu"  # the search, its executors
    assert cli_options.resolve_device(None) == "cpu"  # every command's --device
    assert LocalExecutor(workers=1, device="auto").devices == ["cpu"]
    assert asked == ["auto", None, "auto"]
    pytest.importorskip("submitit")
    from dggan.execution.slurm import SlurmExecutor

    assert SlurmExecutor(tmp_path / "jobs", cluster="local", device="auto").gpus == 0
    assert asked[-1] == "auto"
    # A worker its executor did not place (a SLURM job) trains where resolve_device says.
    asked.clear()
    monkeypatch.setattr(worker_module, "_WORKER_DEVICE", None)
    genome = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    placed = run_candidate(task(tmp_path, 1, genome, worker_device=True))
    assert placed.status.value == "done" and placed.extra["device"] == "cpu" and asked == [None]
    monkeypatch.setattr(worker_module, "_WORKER_DEVICE", "cpu")  # placed by its executor: not asked again
    assert run_candidate(task(tmp_path, 2, genome, worker_device=True)).status.value == "done" and asked == [None]


def test_a_task_carries_a_frozen_train_config_and_keeps_its_slurm_key(tmp_path: Path) -> None:
    from dggan.execution.slurm import task_key

    genome = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    placed = task(tmp_path, 7, genome, worker_device=True)
    assert isinstance(placed.train, TrainConfig) and pickle.loads(pickle.dumps(placed)) == placed
    with pytest.raises(dataclasses.FrozenInstanceError):
        placed.train.iterations = 5  # type: ignore[misc]
    # The key a SLURM job is kept under is the one it had when tasks carried their settings as a dict (the device
    # "worker" standing for the worker's own): a driver started before this change finds its jobs again.
    old = dataclasses.asdict(placed)
    del old["worker_device"]
    old["train"] = {**placed.train.to_dict(), "device": "worker"}
    text = json.dumps(old, sort_keys=True, default=str)
    assert task_key(placed) == hashlib.sha1(text.encode()).hexdigest()[:20]
    assert task_key(dataclasses.replace(placed, worker_device=False)) != task_key(placed)
    # A task pickled before (its settings a dict, "worker" for the worker's device) still runs: a requeued job's.
    before = dataclasses.replace(placed, train={**placed.train.to_dict(), "device": "worker"}, worker_device=False)
    result = run_candidate(pickle.loads(pickle.dumps(before)))
    assert result.status.value == "done" and result.extra["device"] == "cpu", result.error
