"""Each setting is defined once: its default, type, range and choices are its dataclass field (``setting(...)``
metadata), checked by the one validator (``check_fields``), read by the CLI's flags for it, and the search's
training settings are TrainConfig's own fields (``settings_of``), never copies."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dggan._util.settings import SPEC_KEY, Spec, check_fields, field_types, setting, settings_of, spec_of
from dggan.cli import app
from dggan.cli import options as opts
from dggan.errors import ConfigError
from dggan.search.algorithm import seed_for
from dggan.search.config import PRESETS, SEARCH_MANAGED, SearchConfig, preset
from dggan.training.config import BUDGET, TrainConfig

runner = CliRunner()


def default_of(f: dataclasses.Field) -> object:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


# ---------------------------------------------------------------------- one definition of each training knob
def test_every_train_config_field_is_a_search_setting_with_the_same_definition() -> None:
    search = {f.name: f for f in dataclasses.fields(SearchConfig)}
    for f in dataclasses.fields(TrainConfig):
        if f.name in SEARCH_MANAGED:
            continue
        assert f.name in search, f"TrainConfig.{f.name} is no search setting"
        mine = search[f.name]
        assert default_of(mine) == default_of(f), f.name
        assert field_types(SearchConfig)[f.name] == field_types(TrainConfig)[f.name], f.name
        assert mine.metadata.get(SPEC_KEY) == f.metadata.get(SPEC_KEY), f.name
    # The settings the search sets per candidate are its own: the 32-bit seed users type, whose candidates' seeds
    # (seed x 100,003 + id) TrainConfig must hold; a candidate's budget, where a TrainConfig's total adds the final
    # training's iterations.
    assert spec_of(SearchConfig, "seed").range() == (0, 2**32 - 1) and spec_of(TrainConfig, "seed").range()[0] == 0
    assert TrainConfig(seed=seed_for(2**32 - 1, 10**6)).seed > 2**32
    assert spec_of(SearchConfig, "iterations").range() == (1, BUDGET)
    assert SearchConfig().train_config(7, seed=3).to_dict() == {
        **TrainConfig().to_dict(), "iterations": 7, "seed": 3, "log_every": 7}


def test_a_search_config_spells_no_train_config_field_twice() -> None:
    with pytest.raises(TypeError, match=r"declares \['lr'\], fields of TrainConfig"):
        @settings_of(TrainConfig, exclude=SEARCH_MANAGED)
        class Twice:
            lr: float = 0.1
    with pytest.raises(TypeError, match=r"has no field\(s\) \['nope'\] to exclude"):
        settings_of(TrainConfig, exclude={"nope"})(type("Other", (), {}))


@dataclass(frozen=True)
class WarmTrain(TrainConfig):
    warmup: int = setting(0, low=0, high=BUDGET)  # a knob a researcher adds


@dataclass(frozen=True)
@settings_of(WarmTrain, exclude=SEARCH_MANAGED)
class WarmSearch(SearchConfig):
    pass


def test_a_field_added_to_a_train_config_subclass_is_a_search_setting_with_nothing_copied() -> None:
    names = [f.name for f in dataclasses.fields(WarmSearch)]
    assert "warmup" in names and names.count("lr") == 1
    config = WarmSearch.from_dict({"warmup": 50, "lr": 2e-3})
    assert config.warmup == 50 and config.to_dict()["warmup"] == 50
    train = config.train_config(100, seed=1)
    assert isinstance(train, WarmTrain) and (train.warmup, train.lr) == (50, 2e-3)
    with pytest.raises(ConfigError, match=r"^search config: warmup must be >= 0, got -1$"):
        WarmSearch.from_dict({"warmup": -1})
    with pytest.raises(ConfigError, match=r"warmup must be an integer, got 'soon'"):
        WarmSearch.from_dict({"warmup": "soon"})
    assert WarmSearch.from_dict(config.to_dict()) == config


# ---------------------------------------------------------------------- the flat format runs on disk store
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_flat_settings_round_trip(name: str) -> None:
    config = preset(name)
    flat = config.to_dict()
    assert set(flat) == {f.name for f in dataclasses.fields(SearchConfig)}
    nested = {k for k, v in flat.items() if isinstance(v, dict)}
    assert nested <= {"loss_options", "slurm_extra", "baseline"}  # maps by their own types; no TrainConfig nested
    assert SearchConfig.from_dict(json.loads(json.dumps(flat))) == config


# ---------------------------------------------------------------------- the one validator
@dataclass(frozen=True)
class Knobs:
    count: int = setting(1, low=1, high=10)
    rate: float = setting(0.5, above=0, below=1)
    share: float = setting(0.5, above=0, high=1)
    cap: float | None = setting(None, above=0, note="(GiB)", null="no cap")
    kind: str = setting("a", choices=("a", "b", "c"))
    size: int = setting(8, low=4, power_of_two=True)
    widths: tuple[int, ...] = setting((8,), low=8)


@pytest.mark.parametrize("change,message", [
    ({"count": 0}, "count must be >= 1, got 0"),
    ({"count": 11}, "count must be <= 10, got 11"),
    ({"rate": 1.0}, "rate must be in (0, 1), got 1.0"),
    ({"share": 0.0}, "share must be in (0, 1], got 0.0"),
    ({"cap": 0.0}, "cap must be > 0 (GiB) or null (no cap), got 0.0"),
    ({"kind": "d"}, "kind must be a, b or c, got 'd'"),
    ({"size": 12}, "size must be a power of two, got 12"),
    ({"size": 2}, "size must be >= 4, got 2"),
    ({"widths": (8, 4)}, "widths must be >= 8, got 4"),
])
def test_the_validator_reads_every_fields_metadata(change: dict, message: str) -> None:
    check_fields(Knobs(), "knobs")  # the defaults pass
    check_fields(Knobs(cap=None, widths=()), "knobs")  # null where the type allows it; no items, nothing to check
    with pytest.raises(ConfigError) as refused:
        check_fields(Knobs(**change), "knobs")
    assert str(refused.value) == f"knobs: {message}"


# ---------------------------------------------------------------------- a range, enforced wherever it enters
@pytest.mark.parametrize("name,bad,needle", [
    ("seed", -1, "seed must be >= 0, got -1"),
    ("batch_size", 1, "batch_size must be >= 2, got 1"),
    ("lr", 0, "lr must be > 0, got 0.0"),
    ("fade_fraction", 1.5, "fade_fraction must be in (0, 1], got 1.5"),
    ("check_every", BUDGET + 1, "check_every must be <= 1,000,000,000,000"),
])
def test_a_training_range_is_enforced_by_both_configs_and_from_dict(name: str, bad: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=f"^train config: {re.escape(needle)}"):
        TrainConfig(**{name: bad})
    with pytest.raises(ConfigError, match=f"^search config: {re.escape(needle)}"):
        SearchConfig.from_dict({name: bad})


def test_the_flags_read_the_settings_metadata() -> None:
    assert opts.setting_range("seed") == spec_of(SearchConfig, "seed").range() == (0, 2**32 - 1)
    assert opts.setting_range("iterations") == (1, BUDGET)
    assert opts.setting_range("batch_size") == spec_of(TrainConfig, "batch_size").range()
    assert opts.setting_range("log_every") == (1, BUDGET)  # TrainConfig's alone
    assert opts.setting_range("threads") == spec_of(SearchConfig, "threads").range()
    assert opts.setting_choices("new_layer_init") == ("random", "identity")
    assert opts.setting_choices("executor")[:4] == ("inprocess", "local", "ray", "slurm")  # the registry's, now
    with pytest.raises(ConfigError, match=r"^--new-layers must be 'random' or 'identity', got 'x'$"):
        opts.setting_flag("x", "--new-layers", "new_layer_init")
    with pytest.raises(ConfigError, match=r"^--max-resolution must be a power of two, got 24$"):
        opts.resolution(24, "--max-resolution")
    with pytest.raises(ConfigError, match=r"^--resolution must be <= 65,536, got 131,072$"):
        opts.resolution(2**17)


def test_a_flag_follows_its_setting_not_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Narrow a setting's range in its field's metadata: the flag follows it at once."""
    seed = {f.name: f for f in dataclasses.fields(SearchConfig)}["seed"]
    monkeypatch.setattr(seed, "metadata", {SPEC_KEY: Spec(low=0, high=99)})
    assert opts.seed(99) == 99
    with pytest.raises(ConfigError, match=r"^--seed must be <= 99, got 100$"):
        opts.seed(100)
    batch = {f.name: f for f in dataclasses.fields(SearchConfig)}["batch_size"]
    monkeypatch.setattr(batch, "metadata", {SPEC_KEY: Spec(low=4, high=8)})
    with pytest.raises(ConfigError, match=r"^--batch-size must be >= 4, got 2$"):
        opts.setting_flag(2, "--batch-size", "batch_size")


def test_seed_out_of_range_is_refused_alike_by_search_and_train(tmp_path: Path) -> None:
    """`dggan search --seed -1`, `--set seed=-1` and `dggan train --seed -1` say the same range, each naming
    what was given, in one line, before any work."""
    said = []
    for args in (["search", "--preset", "demo", "--print-config", "--seed", "-1"],
                 ["search", "--preset", "demo", "--print-config", "--set", "seed=-1"],
                 ["train", "--seed", "-1", "--no-progress", "--run-dir", str(tmp_path / "r")],
                 ["sample", str(tmp_path / "none.safetensors"), "--seed", "-1"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)
        said.append(result.output.strip())
    assert all("must be >= 0, got -1" in line for line in said), said
    assert "search config: seed must be >= 0, got -1" in said[0] and said[0] == said[1]
    assert "--seed must be >= 0, got -1" in said[2] and said[2] == said[3]
    assert not (tmp_path / "r").exists()
