"""One short script for a GPU machine: the CUDA paths that CPU tests cannot reach.

    python benchmarks/gpu_check.py --out results_gpu.json     # a few minutes on one GPU

Checks, each reported as pass/fail with timings:
1. training on cuda (fp32 and bf16 autocast) runs, stays finite, and resumes exactly in fp32;
2. a child inherits on cuda and its fade-in at alpha = 0 preserves G and D (as the CPU test does);
3. training throughput at 8/16/32 px, 128 and 512 channels, fp32 vs bf16 (images/s, peak memory);
4. a tiny search on the local executor (one worker per GPU, two workers sharing one GPU);
5. the Ray executor with fractional GPUs (0.5 per candidate), when Ray is installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dggan.actions import Action, apply_action
from dggan.checkpoint import load_checkpoint
from dggan.data import SyntheticShapes
from dggan.genome import Genome, constant_channels
from dggan.inherit import inherit_weights
from dggan.networks import Discriminator, Generator
from dggan.search.config import SearchConfig
from dggan.search.driver import run_search
from dggan.search.executors import make_executor
from dggan.train import TrainConfig, Trainer

RESULTS: dict[str, Any] = {}


def check(name: str) -> Callable[[Callable[[], Any]], Callable[[], None]]:
    def wrap(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            start = time.perf_counter()
            try:
                RESULTS[name] = {"ok": True, "result": fn()}
            except Exception:  # noqa: BLE001 (report every check, whatever fails)
                RESULTS[name] = {"ok": False, "error": traceback.format_exc(limit=4)}
            RESULTS[name]["seconds"] = round(time.perf_counter() - start, 2)
            print(name, "ok" if RESULTS[name]["ok"] else "FAILED", RESULTS[name]["seconds"], "s", flush=True)
        return run
    return wrap


DATA = SyntheticShapes(2048, 32)
GENOME = Genome.base(latent_size=128, channels=constant_channels(32, 128))


@check("train_resume_cuda")
def train_resume() -> dict[str, Any]:
    out = {}
    for bf16 in (False, True):
        cfg = TrainConfig(iterations=40, device="cuda", bf16=bf16, seed=1)
        trainer = Trainer(GENOME, cfg, DATA)
        result = trainer.train(progress=False)
        assert result.status == "done", result
        out[f"bf16={bf16}"] = result.stats
    cfg = TrainConfig(iterations=20, device="cuda", seed=2)
    trainer = Trainer(GENOME, cfg, DATA)
    trainer.train(until=10, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer.save(Path(tmp) / "c.safetensors")
        torch.backends.cudnn.deterministic = True
        expected = [trainer.step().tolist() for _ in range(3)]
        resumed = Trainer.resume(load_checkpoint(Path(tmp) / "c.safetensors"), DATA)
        got = [resumed.step().tolist() for _ in range(3)]
    out["resume_max_abs_diff"] = max(abs(a - b) for ra, rb in zip(expected, got, strict=True)
                                     for a, b in zip(ra, rb, strict=True))
    return out


@check("fade_in_identity_cuda")
def fade_in() -> float:
    child_genome = apply_action(GENOME, Action("grow_res"))
    g_parent, d_parent = Generator(GENOME).cuda().eval(), Discriminator(GENOME).cuda().eval()
    g_child, d_child = Generator(child_genome, fade_in=True).cuda(), Discriminator(child_genome, fade_in=True).cuda()
    inherit_weights(g_child, g_parent.state_dict())
    inherit_weights(d_child, d_parent.state_dict())
    g_child.set_alpha(0.0)
    d_child.set_alpha(0.0)
    z, x = torch.randn(16, 128, device="cuda"), torch.randn(16, 3, 16, 16, device="cuda")
    with torch.no_grad():
        err_g = (g_child(z) - F.interpolate(g_parent(z), scale_factor=2.0)).abs().max().item()
        err_d = (d_child(x) - d_parent(F.avg_pool2d(x, 2))).abs().max().item()
    assert max(err_g, err_d) < 1e-3, (err_g, err_d)
    return max(err_g, err_d)


@check("throughput_cuda")
def throughput() -> list[dict[str, Any]]:
    rows = []
    for channels in (128, 512):
        genome = Genome.base(latent_size=128, channels=constant_channels(32, channels))
        while True:
            for bf16 in (False, True):
                trainer = Trainer(genome, TrainConfig(iterations=10_000, device="cuda", bf16=bf16), DATA)
                for _ in range(10):
                    trainer.step()
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start, steps = time.perf_counter(), 50
                for _ in range(steps):
                    trainer.step()
                torch.cuda.synchronize()
                rows.append({"channels": channels, "res": genome.resolution, "bf16": bf16,
                             "img_per_s": round(steps * 16 / (time.perf_counter() - start), 1),
                             "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20)})
                print(rows[-1], flush=True)
            if genome.resolution == 32:
                break
            genome = apply_action(genome, Action("grow_res"))
    return rows


def tiny_search(executor: str, workers: int, gpus: float) -> dict[str, Any]:
    config = SearchConfig.from_dict({
        "data": "synthetic:n=512,res=16", "metric": "swd256", "baseline": {8: 100.0, 16: 100.0},
        "initial_channels": [32], "latent_size": 32, "target_resolution": 16, "top_k": 2, "p": 0.3,
        "filters": [16, 32, 64], "iterations": 100, "final_iterations": 50, "max_steps": 2,
        "device": "cuda", "executor": executor, "workers": workers, "gpus_per_candidate": gpus})
    ex = make_executor(executor, workers, "cuda", gpus)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = run_search(Path(tmp) / "run", config, executor=ex, progress=False)
    finally:
        ex.close()
    assert summary.final_status == "done", summary
    return {k: v for k, v in dataclasses.asdict(summary).items() if k != "run_dir"}


@check("search_local_cuda")
def search_local() -> dict[str, Any]:
    return {"one_per_gpu": tiny_search("local", torch.cuda.device_count(), 1.0),
            "two_per_gpu": tiny_search("local", 2 * torch.cuda.device_count(), 1.0)}


@check("search_ray_fractional_gpu")
def search_ray() -> dict[str, Any]:
    return tiny_search("ray", 4, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script is for a GPU machine")
    RESULTS["device"] = torch.cuda.get_device_name(0)
    RESULTS["torch"] = torch.__version__
    checks = [train_resume, fade_in, search_local, search_ray]
    if not args.skip_throughput:
        checks.insert(2, throughput)
    for run in checks:
        run()
    args.out.write_text(json.dumps(RESULTS, indent=2))
    print(json.dumps({k: v.get("ok") if isinstance(v, dict) else v for k, v in RESULTS.items()}, indent=2))


if __name__ == "__main__":
    main()
