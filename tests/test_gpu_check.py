"""benchmarks/gpu_check.py's CPU side: it imports, refuses a machine without CUDA with a clear message, its
correctness and search checks run on the CPU (graphs through GraphedStep on the emulated backend), and its
arithmetic (GPU-busy time, targets, preset cost, report) is right. The CUDA runs themselves happen on a GPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch

from dggan.data import SyntheticShapes
from dggan.model.genome import Genome
from dggan.training.trainer import TrainConfig, Trainer

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


pytestmark = pytest.mark.usefixtures("graphs_allowed_again")  # tests/conftest.py


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_busy_time_is_the_union_of_intervals(gpu_check: ModuleType) -> None:
    assert gpu_check.busy_ns([]) == 0
    assert gpu_check.busy_ns([(0, 10), (5, 12), (20, 25), (21, 22)]) == 17  # overlaps counted once
    assert gpu_check.busy_ns([(30, 40), (0, 10)]) == 20


def test_targets_and_report(gpu_check: ModuleType) -> None:
    def row(ch: int, res: int, precision: str, mode: str, img: float, busy: float) -> dict[str, object]:
        wall = 16 / img * 1e3
        return {"label": "", "channels": ch, "latent": 128, "res": res, "precision": precision, "mode": mode,
                "channels_last": precision == "bf16", "tf32": False, "wall_ms": wall, "busy_ms": busy,
                "kernels_per_step": 600,
                "img_per_s": img, "wall_over_busy": wall / busy, "peak_mib": 100, "top_kernels": []}

    table = [row(128, 8, "fp32", "graphed", 5000, 3.0), row(512, 32, "fp32", "eager", 480, 23.1),
             row(512, 32, "fp32", "graphed", 600, 23.0), row(512, 32, "bf16", "graphed", 1000, 14.0),
             row(512, 8, "fp32", "graphed", 2000, 7.0), row(512, 16, "fp32", "graphed", 1000, 15.0)]
    results = {"table": table, "several": {"channels": 128, "res": 16, "runs": {
        "1 eager": {"img_per_s": 650.0}, "4 processes under MPS": {"img_per_s": 2100.0}}}}
    by_name = {t["target"][:20]: t["ok"] for t in gpu_check.targets(results)}
    assert list(by_name.values()) == [True, True, True, True]
    results["table"][0]["img_per_s"] = 3000.0  # below 4,000 img/s
    assert [t["ok"] for t in gpu_check.targets(results)][1] is False
    assert gpu_check.targets({})[0]["ok"] is None  # nothing measured: n/a, not a failure
    cost = gpu_check.preset_cost(results)
    # 2,100 candidates x 1.6M images at the mean of 1/2000, 1/1000, 1/1000 s per image (32 px: bf16 is faster).
    expected = 2100 * 1.6e6 * (1 / 2000 + 1 / 1000 + 1 / 1000) / 3 / 86400
    assert cost["cifar10"]["gpu_days_one_candidate_per_gpu"] == pytest.approx(expected, abs=0.1)
    assert "missing" in cost["lsun-bedroom"]
    results.update(checks={"x": {"ok": True, "seconds": 1.0}}, targets=gpu_check.targets(results),
                   preset_cost=cost, device="H200")
    md = gpu_check.markdown(results)
    assert "| 512 | 128 | 32 | bf16 | off | graphed | NHWC |" in md  # TF32 off, said in every row
    assert "4 processes under MPS" in md and "GPU-days" in md


def test_quick_dry_run_passes_on_the_cpu(tmp_path: Path) -> None:
    """``--dry-run --quick`` as one would type it: every correctness check (graphs through GraphedStep on the
    emulated backend), the search's defaults check, one timing row; the capture failure last."""
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = out["checks"]
    correctness = {"graphs_match_eager", "train_together_graphs", "bf16_graphs_match", "capture_failure_falls_back",
                   "resume_graphs", "divergence_graphs", "no_host_sync", "bf16_graphs", "fade_in_identity",
                   "defaults_free_memory"}
    assert set(checks) == correctness and list(checks)[-1] == "capture_failure_falls_back"
    assert all(entry["ok"] for entry in checks.values()), {k: v.get("error") for k, v in checks.items()}
    assert checks["graphs_match_eager"]["result"]["fade_in"]["captures"] == 2  # the key changed at the fade's end
    assert checks["graphs_match_eager"]["result"]["fade_in"]["graphs"]["self_checks_passed"] == 2
    assert checks["resume_graphs"]["result"]["max_abs_diff"] == 0.0
    assert checks["train_together_graphs"]["result"]["max_abs_diff"] == 0.0
    assert checks["bf16_graphs_match"]["result"]["max_abs_diff"] == 0.0
    fallback = checks["capture_failure_falls_back"]["result"]
    assert fallback["graphs"]["mode"] == "fell back" and fallback["max_abs_diff"] == 0.0
    assert "operation not permitted when stream is capturing" in fallback["graphs"]["why"]
    assert fallback["trainer_after"]["why"].startswith("CUDA graphs are off in this process: capture failed")
    freed = checks["defaults_free_memory"]["result"]["candidates"]
    assert [(c["graphs"], c["trainers_built"], c["trainers_alive"]) for c in freed] == [
        ("graphed", 1, 0), ("graphed", 2, 0), ("graphed", 3, 0)]
    [row] = out["table"]
    assert (row["mode"], row["precision"], row["tf32"], row["res"]) == ("graphed", "fp32", False, 8)
    assert "several" not in out and not out.get("checks_skipped")
    assert "| fp32 | off | graphed |" in (tmp_path / "gpu_check.md").read_text()


def test_the_help_says_what_the_device_needs(gpu_check: ModuleType) -> None:
    doc = gpu_check.__doc__
    assert "--quick" in doc and "What the device needs" in doc and "torch" in doc and "no network" in doc
    assert "None of it has run on a GPU yet" in doc  # (its times are estimates)


def test_quick_checks_stop_at_the_budget(gpu_check: ModuleType) -> None:
    ctx = gpu_check.Ctx("cpu", dry=True, quick=True, deadline=time.perf_counter() - 1, results={"checks": {}})
    gpu_check.run_check(ctx, "fade_in_identity", gpu_check.fade_in_identity, budgeted=True)
    assert ctx.results["checks"] == {} and ctx.results["checks_skipped"] == ["fade_in_identity"]
    gpu_check.run_check(ctx, "fade_in_identity", gpu_check.fade_in_identity)  # not budgeted: runs all the same
    assert ctx.results["checks"]["fade_in_identity"]["ok"]


@pytest.mark.slow
def test_search_checks_run_on_the_cpu(gpu_check: ModuleType, ray_instance: object | None) -> None:
    """The search checks, tiny, on CPU workers (local: 1 and 2 processes, 2 candidates per worker; Ray, on the
    suite's one Ray instance)."""
    ctx = gpu_check.Ctx("cpu", dry=True, quick=True, deadline=time.perf_counter() + 600, results={"checks": {}})
    for name, group, fn in gpu_check.CHECKS:
        if group == "search":
            gpu_check.run_check(ctx, name, fn)
    checks = ctx.results["checks"]
    assert set(checks) == {"search_local", "search_ray"}
    assert all(entry["ok"] for entry in checks.values()), {k: v.get("error") for k, v in checks.items()}
    local = checks["search_local"]["result"]
    assert {name: (r["workers"], r["group"]) for name, r in local.items()} == {
        "one per GPU": (1, 1), "2 processes per GPU": (2, 1), "2 streams per worker": (1, 2)}
    assert all(set(r["graphs"]) == {"eager"} for r in local.values())  # every ledger row says how it ran


def test_nhwc_looks_at_a_real_conv(gpu_check: ModuleType, tiny_genome: Genome, tiny_data: SyntheticShapes) -> None:
    trainer = Trainer(tiny_genome, TrainConfig(iterations=1, batch_size=8), tiny_data)
    assert not gpu_check.nhwc(trainer)
    trainer.D.to(memory_format=torch.channels_last)  # what the trainer does on CUDA with channels_last
    assert gpu_check.nhwc(trainer)


def test_an_unknown_check_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--check", "nope", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "no check named nope" in result.stderr


def test_without_cuda_it_says_so(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "no CUDA device here" in result.stderr and "--dry-run" in result.stderr
    assert not (tmp_path / "gpu_check.json").exists()
