"""benchmarks/gpu_check.py's CPU side: it imports, refuses a machine without CUDA with a clear message, its
correctness checks run on the CPU (graphs emulated by running the recorded body eagerly), and its arithmetic
(GPU-busy time, targets, preset cost, report) is right. The CUDA runs themselves happen on a GPU machine."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


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
                "channels_last": precision == "bf16", "wall_ms": wall, "busy_ms": busy, "kernels_per_step": 600,
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
    assert "| 512 | 128 | 32 | bf16 | graphed | NHWC |" in md and "4 processes under MPS" in md and "GPU-days" in md


def test_correctness_checks_run_on_the_cpu(gpu_check: ModuleType) -> None:
    ctx = gpu_check.Ctx("cpu", dry=True, quick=True, deadline=time.perf_counter() + 600,
                        results={"checks": {}})
    for name, group, fn in gpu_check.CHECKS:
        if group == "correctness":
            gpu_check.run_check(ctx, name, fn)
    checks = ctx.results["checks"]
    assert all(entry["ok"] for entry in checks.values()), {k: v.get("error") for k, v in checks.items()}
    assert checks["graphs_match_eager"]["result"]["fade_in"]["captures"] == 2  # the key changed at the fade's end
    assert checks["resume_graphs"]["result"]["max_abs_diff"] == 0.0


def test_without_cuda_it_says_so(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "no CUDA device here" in result.stderr and "--dry-run" in result.stderr
    assert not (tmp_path / "gpu_check.json").exists()
