from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from dggan.cli import app

runner = CliRunner()

# Training flags, and the shape of the default base genome (refused beside --genome, --from and --parent).
TRAINING = ["train", "--data", "synthetic:n=64,res=16", "--iterations", "6", "--batch-size", "8", "--log-every", "2",
            "--no-progress"]
TRAIN = [*TRAINING, "--channels", "16", "--latent-size", "16", "--max-resolution", "16"]


def test_train_run_dir_is_the_run_folder_as_for_search(tmp_path: Path, monkeypatch) -> None:
    """--run-dir names the run folder itself (new or empty), as for search; without it runs are numbered under
    runs/; an existing folder with other things in it is read as before (a parent of numbered runs), with a
    warning, so old scripts keep working."""
    run = tmp_path / "mine"
    first = runner.invoke(app, [*TRAIN, "--run-dir", str(run)])
    assert first.exit_code == 0, first.output
    options = json.loads((run / "options.json").read_text())
    assert options["train"]["iterations"] == 6 and options["data"] == "synthetic:n=64,res=16"
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in stats] == [2, 4, 6]
    assert Image.open(run / "samples.png").size[0] > 64
    assert json.loads((run / "result.json").read_text())["status"] == "done"
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert runner.invoke(app, TRAIN).exit_code == 0
    numbered = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(numbered) == 2 and numbered[0].startswith("00000-train-") and numbered[1].startswith("00001-train-")
    old_style = runner.invoke(app, [*TRAIN, "--run-dir", "runs"])
    assert old_style.exit_code == 0 and "warning: --run-dir runs is not empty" in old_style.output
    assert len(list((tmp_path / "runs").iterdir())) == 3


def test_child_training_and_sampling(tmp_path: Path) -> None:
    assert runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path / "p")]).exit_code == 0
    parent = tmp_path / "p" / "checkpoint.safetensors"
    result = runner.invoke(app, [*TRAINING, "--run-dir", str(tmp_path / "c"), "--parent", str(parent),
                                 "--action", "grow_res"])
    assert result.exit_code == 0, result.output
    child_run = tmp_path / "c"
    report = json.loads((child_run / "inheritance.json").read_text())
    assert "layers.b16_conv0.weight" in {f["name"] for f in report["G"]["fresh"]}
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(child_run / "checkpoint.safetensors"), "--n", "9", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "16px" in result.output and Image.open(out).size == (3 * 64 + 8, 3 * 64 + 8)


def test_periodic_checkpoints_write_sample_grids(tmp_path: Path) -> None:
    result = runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path / "r"), "--checkpoint-every", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "r").glob("samples*.png")) == [
        "samples-000002.png", "samples-000004.png", "samples.png"]


def test_resume_from_checkpoint_continues(tmp_path: Path) -> None:
    assert runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path / "a")]).exit_code == 0
    ckpt = tmp_path / "a" / "checkpoint.safetensors"
    result = runner.invoke(app, [*TRAIN[:5], "--run-dir", str(tmp_path / "b"), "--from", str(ckpt), "--iterations",
                                 "8", "--no-progress"])
    assert result.exit_code == 0, result.output
    # It says what this run trained (2 iterations, 6 -> 8), not just where it ended (was: "after 8 iterations").
    assert "trained 2 iterations (6 -> 8)" in result.output
    assert json.loads((tmp_path / "b" / "options.json").read_text())["data"] == "synthetic:n=64,res=16"


def test_genome_commands(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    assert runner.invoke(app, ["genome", "base", "--channels", "32", "--out", str(base)]).exit_code == 0
    grown = tmp_path / "grown.json"
    result = runner.invoke(app, ["genome", "grow", str(base), "grow_g:k3:f64", "grow_res", "--out", str(grown)])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["genome", "show", str(grown)])
    assert "16px" in shown.output and "8[k3f64]" in shown.output


def test_bad_input_gets_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"latent_size": 8}')
    result = runner.invoke(app, [*TRAINING, "--run-dir", str(tmp_path / "r"), "--genome", str(bad)])
    assert result.exit_code == 2 and "bad.json" in result.output and "base_resolution" in result.output
    assert not (tmp_path / "r").exists()  # nothing was created for a rejected run
    result = runner.invoke(app, ["sample", str(tmp_path / "nope.safetensors")])
    assert result.exit_code == 2 and "no such checkpoint" in result.output
    result = runner.invoke(app, ["genome", "grow", str(bad), "grow_x"])
    assert result.exit_code == 2 and "error:" in result.output


def test_every_command_checks_its_own_flags(tmp_path: Path) -> None:
    import pytest

    cases = [
        (["genome", "base", "--channels", "0"], "--channels must be >= 1, got 0"),
        (["genome", "base", "--max-resolution", "12"], "--max-resolution must be a power of two, got 12"),
        (["train", "--new-layers", "bogus", "--run-dir", str(tmp_path / "r")], "--new-layers must be 'random' or"),
        (["train", "--iterations", "0", "--run-dir", str(tmp_path / "r")], "--iterations must be >= 1, got 0"),
        (["train", "--device", "cuda:x", "--run-dir", str(tmp_path / "r")],
         "--device must be auto, cpu, cuda or cuda:N"),
        (["export-lsun", str(tmp_path), str(tmp_path / "o.npy"), "--max-images", "0"], "--max-images must be >= 1"),
        (["ref", "--data", "synthetic", "--resolution", "12"], "--resolution must be a power of two"),
        (["ref", "--data", "synthetic", "--resolution", "16", "--metric", "fid99999999999"], "asks for"),
        (["report", str(tmp_path), "--samples", "5000"], "--samples must be <= 1,024"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        if result.exit_code != 2 or needle not in result.output or "Traceback" in result.output:
            pytest.fail(f"{args}: {result.output}")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------- one CLI: shared flags mean the same
def _commands() -> dict[str, object]:
    """Every command of the app (``genome base`` etc. by their full name) as click commands."""
    import typer

    out: dict[str, object] = {}

    def walk(cmd: object, name: str) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for sub_name, sub in subs.items():
                walk(sub, f"{name} {sub_name}".strip())
        else:
            out[name] = cmd

    walk(typer.main.get_command(app), "")
    return out


def test_every_shared_flag_means_the_same_in_every_command() -> None:
    """A flag that several commands take is one definition (dggan.cli.options.SHARED): the same help, type,
    default and metavar everywhere; any other flag that two commands share is listed, with why, in DIFFERENT."""
    from collections import defaultdict

    from dggan.cli.options import DIFFERENT, SHARED

    uses: dict[str, list[tuple[str, object]]] = defaultdict(list)
    for name, cmd in _commands().items():
        for param in cmd.params:  # type: ignore[attr-defined]
            if param.param_type_name == "option":
                for flag in param.opts:
                    uses[flag].append((name, param))
    shared = {flag: found for flag, found in uses.items() if len(found) > 1 and flag not in ("-h", "--help")}
    unexplained = sorted(set(shared) - set(SHARED) - set(DIFFERENT))
    assert not unexplained, f"flags shared without one definition or a reason: {unexplained}"
    for flag, found in shared.items():
        if flag not in SHARED:
            continue
        looks = {(p.help, p.default, p.bare_type(), p.metavar) for _, p in found}  # type: ignore[attr-defined]
        assert len(looks) == 1, f"{flag} differs between {[n for n, _ in found]}: {looks}"
    # The flags the issue named: one meaning each, on every command that trains or scores.
    for flag in ("--device", "--threads"):
        assert {"search", "baseline", "train", "eval", "ref"} <= {n for n, _ in uses[flag]}, flag
    assert {"search", "baseline", "compare", "tables"} <= {n for n, _ in uses["--threads"]}
    assert {"search", "train", "sample", "eval"} <= {n for n, _ in uses["--seed"]}
    assert {n for n, _ in uses["--run-dir"]} == {"search", "baseline", "train"}
    assert all(p.default is None for _, p in uses["--device"])  # type: ignore[attr-defined]  # auto everywhere


def test_usage_lines_name_arguments_and_the_command_list_is_not_cut() -> None:
    for name in _commands():
        result = runner.invoke(app, [*name.split(), "-h"])
        assert result.exit_code == 0, (name, result.output)
        usage = result.output.splitlines()[0]
        assert "{" not in usage and "}" not in usage, usage  # was: dggan compare [OPTIONS] {run}
    assert " compare [OPTIONS] RUN\n" in runner.invoke(app, ["compare", "-h"]).output
    assert " genome grow [OPTIONS] GENOME ACTION...\n" in runner.invoke(app, ["genome", "grow", "-h"]).output
    top = runner.invoke(app, ["-h"]).output
    assert "..." not in top.split("Commands:")[1], top  # click cut each description at the terminal's width
    assert "Is the final model better than ProgGAN?" in top


def test_search_takes_seed_and_threads_as_flags_and_a_list_setting_one_value() -> None:
    result = runner.invoke(app, ["search", "--print-config", "--seed", "7", "--threads", "2", "--set",
                                 "initial_channels=8"])
    assert result.exit_code == 0, result.output
    settings = json.loads(result.output)
    assert settings["seed"] == 7 and settings["threads"] == 2 and settings["initial_channels"] == [8]
    bad = runner.invoke(app, ["search", "--print-config", "--set", "initial_channels=wide"])
    assert bad.exit_code == 2 and "initial_channels must be a list of integers (e.g. [8, 16], 8,16 or 8)" in bad.output


def test_device_auto_is_the_default_of_every_command(monkeypatch) -> None:
    import torch

    from dggan.cli.options import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == "cuda" and resolve_device("cuda:1") == "cuda:1"
