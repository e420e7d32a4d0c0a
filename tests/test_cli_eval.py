"""``dggan eval`` and ``dggan ref`` with a stand-in checkpoint loader."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import typer
from typer.testing import CliRunner

import dggan.cli.eval as cli_eval
from dggan.cli import app as dggan_app


class _TinyGenerator(torch.nn.Module):
    """A stand-in with the real Generator's interface: a ``genome`` and latents in, images out."""

    def __init__(self, latent: int, res: int, genome: object = None):
        super().__init__()
        self.res = res
        self.genome = genome
        self.fc = torch.nn.Linear(latent, 3 * res * res)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)).view(-1, 3, self.res, self.res)


@pytest.fixture
def app(monkeypatch) -> typer.Typer:
    genome = SimpleNamespace(latent_size=8, resolution=16, image_channels=3, key=lambda: "g16")
    loaded = []

    def fake_load(path, device="cpu"):
        loaded.append((str(path), device))
        torch.manual_seed(0)
        return genome, _TinyGenerator(8, 16, genome).eval()

    monkeypatch.setattr(cli_eval, "load_generator", fake_load)
    monkeypatch.setattr(cli_eval, "recorded_data", lambda path: None)
    dggan_app.loaded = loaded  # type: ignore[attr-defined]
    return dggan_app


def test_eval_prints_and_appends_metrics_jsonl(app, tmp_path):
    ckpt = tmp_path / "run" / "final.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"")
    args = ["eval", str(ckpt), "--metric", "swd32", "--data", "synthetic:n=64,res=16", "--no-progress",
            "--cache-dir", str(tmp_path / "cache")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "swd32 @16px" in first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    lines = (ckpt.parent / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert records[0]["metric"] == "swd32" and records[0]["genome_key"] == "g16"
    assert records[0]["data"] == "synthetic:n=64,res=16" and set(records[0]["swd_levels"]) == {"16"}
    assert records[0]["value"] == records[1]["value"] > 0  # seeded latents and SWD sampling
    assert app.loaded == [(str(ckpt), "cpu")] * 2


def test_eval_errors_exit_with_a_message(app, tmp_path, monkeypatch):
    ckpt = tmp_path / "c.safetensors"
    result = CliRunner().invoke(app, ["eval", str(ckpt), "--metric", "fid10k"])
    assert result.exit_code == 2 and "no such checkpoint file or folder" in result.output  # not "pass --data"
    ckpt.write_bytes(b"")  # exists; the stand-in loader says it records no dataset
    result = CliRunner().invoke(app, ["eval", str(ckpt), "--metric", "fid10k"])
    assert result.exit_code == 2 and "--data" in result.output
    result = CliRunner().invoke(app, ["eval", str(ckpt), "--metric", "bogus", "--data", "synthetic"])
    assert result.exit_code == 2 and "unknown metric" in result.output
    monkeypatch.delenv("DGGAN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    result = CliRunner().invoke(app, ["eval", str(ckpt), "--metric", "fid20", "--data", "synthetic:n=64,res=16",
                                      "--no-progress"])
    assert result.exit_code == 2 and "weights-inception-2015-12-05-6726825d.pth" in result.output
    assert not (tmp_path / "metrics.jsonl").exists()


def test_ref_command(app, tmp_path, monkeypatch):
    result = CliRunner().invoke(app, ["ref", "--data", "synthetic:n=64,res=16", "--resolution", "16",
                                      "--metric", "swd1k"])
    assert result.exit_code == 0 and "nothing to precompute" in result.output

    class Extractor:
        key = "fake"

        def __call__(self, images):
            return {"2048": images.float().mean(dim=(2, 3)), "logits_unbiased": images.float().mean(dim=(2, 3))}

    monkeypatch.setattr("dggan.metrics.get_inception", lambda weights=None, device="cpu": Extractor())
    result = CliRunner().invoke(app, ["ref", "--data", "synthetic:n=64,res=16", "--resolution", "8",
                                      "--metric", "fid32", "--cache-dir", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "refstats").iterdir()
    assert "8px-32" in path.name and str(path) in result.output
    # KID's reference is the real images' features themselves, cached beside FID's statistics.
    result = CliRunner().invoke(app, ["ref", "--data", "synthetic:n=64,res=16", "--resolution", "8",
                                      "--metric", "kid32", "--cache-dir", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    (features,) = (p for p in (tmp_path / "refstats").iterdir() if p != path)
    assert "features" in features.name and str(features) in result.output and "(32 images)" in result.output
    is_ = CliRunner().invoke(app, ["ref", "--data", "synthetic:n=64,res=16", "--resolution", "8", "--metric", "is50"])
    assert is_.exit_code == 0 and "nothing to precompute (it uses no real data)" in is_.output


def test_eval_of_a_real_checkpoint(tmp_path):
    from dggan.cli import app as main_app
    from dggan.data import SyntheticShapes
    from dggan.model.genome import Genome, constant_channels
    from dggan.training.trainer import TrainConfig, Trainer

    genome = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    trainer = Trainer(genome, TrainConfig(iterations=2, batch_size=8), SyntheticShapes(32, 16))
    trainer.train(progress=False)
    ckpt = trainer.save(tmp_path / "checkpoint.safetensors")
    result = CliRunner().invoke(main_app, ["eval", str(ckpt), "--metric", "swd16", "--data", "synthetic:n=32,res=16",
                                           "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["resolution"] == 8 and record["genome_key"] == genome.key() and record["value"] > 0


def test_metric_warnings_are_one_line(tmp_path):
    import subprocess
    import sys

    from dggan.data import SyntheticShapes
    from dggan.model.genome import Genome, constant_channels
    from dggan.training.trainer import TrainConfig, Trainer

    genome = Genome.base(latent_size=8, channels=constant_channels(16, 8))
    ckpt = Trainer(genome, TrainConfig(iterations=2, batch_size=8), SyntheticShapes(32, 16)).save(tmp_path / "c.st")
    result = subprocess.run([sys.executable, "-m", "dggan", "eval", str(ckpt), "--metric", "swd64", "--data",
                             "synthetic:n=16,res=16", "--no-progress", "--cache-dir", str(tmp_path / "cache")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "fewer than the 64" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: swd64:")
    assert "warnings.warn" not in result.stderr  # not the warning's source line
