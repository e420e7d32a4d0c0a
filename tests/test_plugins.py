"""Extending dggan from outside the package (issue #29): an executor registered by name, and the ``plugins`` setting,
the modules that the driver and every worker import before anything is checked or run."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from searches import tiny
from typer.testing import CliRunner

import dggan.execution.executors as executors
import dggan.model.actions as action_registry
import dggan.training.loss as loss_registry
from dggan._util.plugins import import_plugins
from dggan.cli import app
from dggan.errors import ConfigError, LedgerError, SearchError
from dggan.execution.executors import (
    BUILTIN_EXECUTORS,
    InProcessExecutor,
    executor_for,
    executor_names,
    make_executor,
    register_executor,
)
from dggan.execution.state import Status
from dggan.execution.worker import CandidateResult, CandidateTask, run_candidate
from dggan.search.config import EXECUTORS, SearchConfig, create_run, load_run_config
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger
from dggan.search.preflight import validate_new_search
from dggan.training.config import TrainConfig

runner = CliRunner()


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test registers (executors, losses) is gone afterwards: the registries are put back."""
    monkeypatch.setattr(executors, "_EXECUTORS", dict(executors._EXECUTORS))
    monkeypatch.setattr(loss_registry, "_LOSSES", dict(loss_registry._LOSSES))
    monkeypatch.setattr(action_registry, "_ACTIONS", dict(action_registry._ACTIONS))


def ledger_statuses(run: Path) -> list[Status]:
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        return [row.status for row in ledger.candidates()]


# ---------------------------------------------------------------------- an executor of one's own
class CountingExecutor(InProcessExecutor):
    """The in-process executor, counting the tasks it runs (the example of docs/extending.md, "An executor")."""

    name = "counting"
    made: list[CountingExecutor] = []

    def __init__(self, device: str = "cpu"):
        super().__init__(device)
        self.tasks = 0
        CountingExecutor.made.append(self)

    def run(self, tasks: list[CandidateTask]) -> Iterator[CandidateResult]:
        self.tasks += len(tasks)
        yield from super().run(tasks)


def counting(settings: Any, run_dir: Path | None) -> CountingExecutor:
    return CountingExecutor(settings.resolved_device())


@pytest.fixture
def registered(registries: None) -> Iterator[None]:
    CountingExecutor.made.clear()
    register_executor("counting", help="in this process, counted")(counting)
    yield
    CountingExecutor.made.clear()


def test_a_registered_executor_runs_the_candidates_of_a_search(registered: None, tmp_path: Path) -> None:
    config = tiny(executor="counting", max_steps=1, final_iterations=0)
    summary = run_search(tmp_path / "run", config, progress=False)
    (made,) = CountingExecutor.made
    statuses = ledger_statuses(tmp_path / "run")
    assert made.tasks >= len(statuses) > 2 and set(statuses) == {Status.DONE}
    assert summary.candidates == len(statuses)
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", readonly=True) as ledger:
        sessions = ledger.sessions()
    assert [s.completed for s in sessions] == [True]  # one session, recorded once, run to its end
    assert made.in_process  # its candidates train with the driver's device and threads
    assert "torch threads: 1" in (tmp_path / "run" / "log.txt").read_text()


def test_a_registered_name_works_wherever_a_built_in_one_does(registered: None, tmp_path: Path) -> None:
    assert executor_names() == (*BUILTIN_EXECUTORS, "counting") and EXECUTORS == BUILTIN_EXECUTORS
    assert isinstance(make_executor("counting"), CountingExecutor)
    assert isinstance(executor_for(tiny(), tmp_path, executor="counting"), CountingExecutor)
    with pytest.raises(ConfigError, match=r"executor must be inprocess, local, ray, slurm or counting, got 'foo'"):
        SearchConfig(executor="foo")
    with pytest.raises(ConfigError, match=r"^--executor must be inprocess, local, ray, slurm or counting, got 'foo'$"):
        executor_for(tiny(), tmp_path, executor="foo")
    result = runner.invoke(app, ["search", "--executor", "foo", "--run-dir", str(tmp_path / "r"), "--print-config"])
    assert result.exit_code == 2 and "executor must be inprocess, local, ray, slurm or counting, got 'foo'" in \
        result.output and "Traceback" not in result.output


def test_an_unknown_executor_is_refused_with_the_registered_names() -> None:
    with pytest.raises(ConfigError, match=r"search config: executor must be inprocess, local, ray or slurm, got 'x'"):
        tiny(executor="x")
    assert "counting" not in executor_names()  # the fixture took it out again


def test_a_registration_can_check_before_any_work_and_names_are_its_own(registered: None, tmp_path: Path) -> None:
    def refuse(settings: Any) -> None:
        raise SearchError(f"counting needs workers >= 2, got {settings.workers}")

    register_executor("picky", help="refuses", check=refuse)(counting)
    with pytest.raises(SearchError, match="counting needs workers >= 2, got 1"):
        validate_new_search(tiny(executor="picky"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    validate_new_search(tiny(executor="counting"), tmp_path / "run")  # no check registered: nothing refused
    with pytest.raises(ValueError, match="'local' is already registered"):
        register_executor("local", help="another")(counting)
    with pytest.raises(ValueError, match="not a name for --executor"):
        register_executor("two words", help="x")


def test_naming_an_executor_loads_neither_torch_nor_an_engine() -> None:
    import subprocess

    code = ("import sys\nfrom dggan.search.config import SearchConfig\nSearchConfig(executor='slurm')\n"
            "from dggan.execution.executors import executor_names\nprint(executor_names())\n"
            "print(sorted(m for m in ('torch', 'ray', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["('inprocess', 'local', 'ray', 'slurm')", "[]"]


# ---------------------------------------------------------------------- plugins: modules imported first
PLUGIN = '''"""A user's module: the hinge loss of docs/extending.md, an executor and a growth action."""
import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from dggan.execution.executors import InProcessExecutor, register_executor
from dggan.model.actions import register_action
from dggan.model.genome import ConvLayer
from dggan.training.loss import Loss, Terms, register_loss


@register_loss("hinge")
@dataclass(frozen=True)
class Hinge(Loss):
    margin: float = 1.0
    stats: ClassVar[tuple[str, ...]] = ("d_real", "d_fake")

    def critic(self, D, real, fake, eps, autocast, one_pass=True):
        with autocast():
            d_real, d_fake = D(real).float(), D(fake).float()
        loss = F.relu(self.margin - d_real).mean() + F.relu(self.margin + d_fake).mean()
        return Terms(loss, {"d_real": d_real.mean(), "d_fake": d_fake.mean()})

    def generator(self, D, fake, autocast):
        with autocast():
            return -D(fake).float().mean()


@register_executor("plugged", help="in this process")
def plugged(settings, run_dir):
    return InProcessExecutor(settings.resolved_device())


@register_action("grow_twice", label="G2", conv=True)
def grow_twice(genome, action, limits):
    layer = ConvLayer(kernel=action.kernel, filters=action.filters, resolution=genome.resolution)
    return dataclasses.replace(genome, g_layers=genome.g_layers + (layer, layer))
'''
PLUGIN_NAME = "dggan_test_my_losses"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registries: None) -> Iterator[str]:
    """The module, written to a folder of its own that is on PYTHONPATH (for new processes) and on this process's
    sys.path; not imported yet. Afterwards it is forgotten and what it registered is gone."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{PLUGIN_NAME}.py").write_text(PLUGIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(PLUGIN_NAME, None)
    importlib.invalidate_caches()
    yield PLUGIN_NAME
    sys.modules.pop(PLUGIN_NAME, None)


def test_plugins_are_imported_before_the_settings_they_name_are_checked(plugin: str) -> None:
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        tiny(loss="hinge")
    assert plugin not in sys.modules
    config = tiny(plugins=[plugin], loss="hinge", loss_options={"margin": 0.5}, executor="plugged")
    assert plugin in sys.modules and config.plugins == (plugin,)
    train = config.train_config(4)  # what a worker's task carries: the list travels with the loss
    assert train.plugins == (plugin,) and train.make_loss().margin == 0.5  # type: ignore[attr-defined]
    assert SearchConfig.from_dict({"plugins": plugin}).plugins == (plugin,)  # --set plugins=NAME: a list of one


def test_a_plugin_that_cannot_be_imported_is_one_line_naming_it(tmp_path: Path, plugin: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SearchConfig.from_dict({"plugins": ["no_such_plugin_mod"], "loss": "hinge"})
    message = str(caught.value)
    assert message == ("search config: plugins: cannot import the plugin module 'no_such_plugin_mod' (No module named"
                       " 'no_such_plugin_mod'); put the folder that holds it on PYTHONPATH, or install it")
    with pytest.raises(ConfigError, match="'my plugin' is not a module name"):
        import_plugins(["my plugin"])
    with pytest.raises(ConfigError, match="train config: plugins: cannot import the plugin module 'gone.sub'"):
        TrainConfig(plugins=("gone.sub",))
    # A module the plugin itself imports is missing: the plugin's own error (its traceback says where).
    (tmp_path / "plugins" / "dggan_test_broken.py").write_text("import no_such_dependency_mod\n")
    importlib.invalidate_caches()
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_mod"):
        import_plugins(["dggan_test_broken"])
    sys.modules.pop("dggan_test_broken", None)


def test_the_command_line_names_a_missing_plugin_in_one_line(tmp_path: Path) -> None:
    for args in (["search", "--set", 'plugins=["no_such_plugin_mod"]', "--set", "loss=hinge",
                  "--run-dir", str(tmp_path / "run")],
                 ["train", "--plugin", "no_such_plugin_mod", "--loss", "hinge", "--run-dir", str(tmp_path / "run")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "cannot import the plugin module 'no_such_plugin_mod'" in result.output and "PYTHONPATH" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "run").exists()


def test_the_command_line_and_a_resume_import_the_plugins_first(tmp_path: Path, plugin: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["search", "--preset", "demo", "--set", f"plugins=[\"{plugin}\"]", "--set",
                                 "loss=hinge", "--executor", "plugged", "--print-config"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["plugins"] == [plugin] and printed["loss"] == "hinge"
    create_run(tmp_path / "run", SearchConfig.from_dict(printed))
    # As a new process would: the module not imported, its names not registered; the ledger's settings bring both.
    sys.modules.pop(plugin)
    monkeypatch.setattr(loss_registry, "_LOSSES", {k: v for k, v in loss_registry._LOSSES.items() if k != "hinge"})
    monkeypatch.setattr(executors, "_EXECUTORS", {k: v for k, v in executors._EXECUTORS.items() if k != "plugged"})
    resumed = load_run_config(tmp_path / "run")
    assert (resumed.loss, resumed.executor) == ("hinge", "plugged") and "plugged" in executor_names()


def test_train_takes_a_plugin_and_its_checkpoint_records_it(tmp_path: Path, plugin: str) -> None:
    args = ["train", "--iterations", "2", "--batch-size", "8", "--channels", "8", "--latent-size", "8",
            "--max-resolution", "8", "--loss", "hinge", "--no-progress"]
    result = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "without")])
    assert result.exit_code == 2 and "unknown loss 'hinge'" in result.output, result.output
    result = runner.invoke(app, [*args, "--plugin", plugin, "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    train = json.loads((tmp_path / "r" / "options.json").read_text())["train"]
    assert train["loss"] == "hinge" and train["plugins"] == [plugin]


def arrived(**fields: object) -> TrainConfig:
    """A task's settings as a worker process unpickles them: no check runs, its plugins are not imported yet."""
    config = TrainConfig()
    for name, value in fields.items():
        object.__setattr__(config, name, value)
    return config


def test_a_worker_imports_the_plugins_its_task_names(tmp_path: Path, plugin: str) -> None:
    """What every worker runs first (local pool processes, Ray tasks, SLURM jobs): the task's plugins."""
    task = CandidateTask(candidate_id=3, genome_json="{}", parent_checkpoint=None, out_dir=str(tmp_path / "c3"),
                         train=arrived(plugins=("no_such_plugin_mod",)), data="synthetic", metric="swd32")
    result = run_candidate(task)
    assert result.retry and "candidate 3: plugins: cannot import the plugin module 'no_such_plugin_mod'" in \
        (result.error or "")  # not the candidate's fault: the search stops with this, the candidate stays pending
    assert plugin not in sys.modules
    import dataclasses

    result = run_candidate(dataclasses.replace(task, train=arrived(plugins=(plugin,))))
    assert plugin in sys.modules and "hinge" in loss_registry._LOSSES  # imported, then the next step failed
    assert "plugins" not in (result.error or "")


@pytest.mark.slow
def test_local_workers_train_with_a_plugin_loss(tmp_path: Path, plugin: str) -> None:
    """A search on the local executor (worker processes forked from a server that may have started long before)
    trains with a loss that only the plugin registers."""
    workers_train_with_the_plugin_loss(tmp_path, tiny(executor="local", workers=1, plugins=[plugin], loss="hinge",
                                                      max_steps=1, final_iterations=0))


@pytest.mark.slow
def test_ray_workers_train_with_a_plugin_loss(tmp_path: Path, plugin: str, ray_instance: object | None) -> None:
    """Ray's workers were started (with the suite's Ray instance) before the plugin's folder existed: the driver's
    module search path travels with each task, so they find it on this machine."""
    if ray_instance is None:
        pytest.skip("Ray is not installed")
    workers_train_with_the_plugin_loss(tmp_path, tiny(executor="ray", workers=2, plugins=[plugin], loss="hinge",
                                                      max_steps=1, final_iterations=0))


def workers_train_with_the_plugin_loss(tmp_path: Path, config: SearchConfig) -> None:
    run_search(tmp_path / "run", config, progress=False)
    statuses = ledger_statuses(tmp_path / "run")
    assert len(statuses) > 2 and set(statuses) == {Status.DONE}
    rows = [json.loads(line) for path in (tmp_path / "run").rglob("stats.jsonl")
            for line in path.read_text().splitlines()]
    trained = [row for row in rows if "loss_d" in row]  # (scores are logged there too)
    assert trained and all("d_real" in row for row in trained)  # the hinge loss's own stats: the workers used it


def test_a_run_that_grew_with_a_plugin_action_reads_back_where_its_plugins_import(
        tmp_path: Path, plugin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    config = tiny(plugins=[plugin], actions=["grow_twice"], grow_g=False, grow_d=False, p=1.0, max_steps=1,
                  final_iterations=0)
    run_search(run, config, progress=False)
    builtin = {k: v for k, v in action_registry._ACTIONS.items() if k != "grow_twice"}

    def forget() -> None:  # as a fresh process: the module not imported, its action unknown
        sys.modules.pop(plugin, None)
        monkeypatch.setattr(action_registry, "_ACTIONS", dict(builtin))

    forget()
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:  # the run's plugins are imported at open
        grown = [r for r in ledger.candidates() if r.action is not None and r.action.kind == "grow_twice"]
    assert grown and all(len(r.genome.g_layers) == 2 for r in grown)
    forget()
    result = runner.invoke(app, ["status", str(run)])
    assert result.exit_code == 0 and "G2 k" in runner.invoke(app, ["ls", str(run)]).output
    forget()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path / "plugins")])
    importlib.invalidate_caches()
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger, pytest.raises(
            LedgerError, match=r"took a growth action that no imported module registers.*put the modules of its"
                               r" `plugins` setting on PYTHONPATH"):
        ledger.candidates()
