from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from dggan.cli import app

runner = CliRunner()

TRAIN = ["train", "--data", "synthetic:n=64,res=16", "--iterations", "6", "--batch-size", "8", "--channels", "16",
         "--latent-size", "16", "--max-resolution", "16", "--log-every", "2", "--no-progress"]


def test_train_writes_a_new_run_folder_each_time(tmp_path: Path) -> None:
    first = runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path)])
    assert second.exit_code == 0, second.output
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert len(runs) == 2 and runs[0].startswith("00000-train-") and runs[1].startswith("00001-train-")
    run = tmp_path / runs[0]
    options = json.loads((run / "options.json").read_text())
    assert options["train"]["iterations"] == 6 and options["data"] == "synthetic:n=64,res=16"
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in stats] == [2, 4, 6]
    assert Image.open(run / "samples.png").size[0] > 64
    assert json.loads((run / "result.json").read_text())["status"] == "done"


def test_child_training_and_sampling(tmp_path: Path) -> None:
    assert runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path / "p")]).exit_code == 0
    parent = next((tmp_path / "p").iterdir()) / "checkpoint.safetensors"
    result = runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path / "c"), "--parent", str(parent),
                                 "--action", "grow_res"])
    assert result.exit_code == 0, result.output
    child_run = next((tmp_path / "c").iterdir())
    report = json.loads((child_run / "inheritance.json").read_text())
    assert "layers.b16_conv0.weight" in {f["name"] for f in report["G"]["fresh"]}
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(child_run / "checkpoint.safetensors"), "--n", "9", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "16px" in result.output and Image.open(out).size == (3 * 64 + 8, 3 * 64 + 8)


def test_periodic_checkpoints_write_sample_grids(tmp_path: Path) -> None:
    result = runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path), "--checkpoint-every", "2"])
    assert result.exit_code == 0, result.output
    run = next(tmp_path.iterdir())
    assert sorted(p.name for p in run.glob("samples*.png")) == ["samples-000002.png", "samples-000004.png",
                                                                 "samples.png"]


def test_resume_from_checkpoint_continues(tmp_path: Path) -> None:
    assert runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path)]).exit_code == 0
    ckpt = next(tmp_path.iterdir()) / "checkpoint.safetensors"
    result = runner.invoke(app, [*TRAIN[:5], "--run-dir", str(tmp_path), "--from", str(ckpt), "--iterations", "8",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    # It says what this run trained (2 iterations, 6 -> 8), not just where it ended (was: "after 8 iterations").
    assert "trained 2 iterations (6 -> 8)" in result.output
    resumed = next(p for p in tmp_path.iterdir() if p.name.endswith("-resumed"))
    assert json.loads((resumed / "options.json").read_text())["data"] == "synthetic:n=64,res=16"


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
    result = runner.invoke(app, [*TRAIN, "--run-dir", str(tmp_path / "r"), "--genome", str(bad)])
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
        (["train", "--device", "cuda:x", "--run-dir", str(tmp_path / "r")], "--device must be cpu, cuda or cuda:N"),
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
