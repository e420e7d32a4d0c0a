"""The benchmark scripts that drive whole searches still run against today's API (a tiny search each):
a script that breaks is found here, not after a long run on a big machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from searches import TINY

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow  # whole benchmark scripts in subprocesses
def test_bench_search_reports_overhead() -> None:
    sets = [f"{k}={json.dumps(v)}" for k, v in {**TINY, "halving_eta": 1, "initial_iterations": 4}.items()
            if k not in ("cache_dir",)]
    out = subprocess.run([sys.executable, str(BENCHMARKS / "bench_search.py"), "--preset", "shapes", "--set", *sets],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    row = next(line for line in out.stdout.splitlines() if line.startswith("| inprocess |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    candidates, wall, train, score, overhead = int(cells[1]), *map(float, cells[2:6])
    assert candidates >= 3  # the initial candidate and children of two steps
    assert wall > 0 and 0 <= train + score <= wall
    rounding = 100 * 3 * 0.05 / wall + 0.01  # the seconds are printed to 0.1 s
    assert abs(overhead - 100 * (wall - train - score) / wall) <= rounding


@pytest.mark.slow
def test_bench_capacity_compares_variants_and_resumes(tmp_path: Path) -> None:
    def study(*variants: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(BENCHMARKS / "bench_capacity.py"), "--variants", *variants,
                               "--widths", "8", "--seeds", "0", "--n8", "2", "--n16", "3", "--eval-seeds", "1",
                               "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)

    out = study("P", "G32+D32")
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in records] == ["P", "G32+D32"]
    assert records[1]["g_params"] > records[0]["g_params"] and records[1]["d_params"] > records[0]["d_params"]
    assert sorted(records[0]["curve"]) == ["1", "2", "3"]  # a third, two thirds and the end of the 16 px stage
    rows = [line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| shapes |")]
    assert len(rows) == 2 and rows[1].split("|")[9].strip().endswith("x")  # the grown one against ProgGAN
    assert "Real vs real on shapes (the floor):" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sys.path.insert(0, str(BENCHMARKS))  # variants in this process: no second torch start-up for them
    try:
        import bench_capacity
    finally:
        sys.path.remove(str(BENCHMARKS))
    with pytest.raises(SystemExit, match="G128, D64 or G64k7"):
        bench_capacity.genomes("G32*D32", 8, 3)
    early, late = bench_capacity.genomes("8:G32", 8, 3), bench_capacity.genomes("G32", 8, 3)
    assert early[0].g_layers == early[1].g_layers and [c.resolution for c in early[1].g_layers] == [8]  # 8:
    assert not late[0].g_layers and [c.resolution for c in late[1].g_layers] == [16]
    # The same folder and two data sets: the finished shapes runs are kept, only the digits run trains, with
    # a metric sized to the digits' held-out split and their own floor.
    again = study("P", "--data", "shapes", "digits")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count('"variant"') == 1 and '"data": "digits"' in again.stdout
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
    assert "| digits | 8 | 3 | P |" in again.stdout and "| shapes | 8 | 3 | G32+D32 |" in again.stdout
    assert "Real vs real on digits" in again.stdout and "Real vs real on shapes" in again.stdout


def test_bench_acceptance_makes_its_photo_patches_and_judges_pair_by_pair(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_acceptance as acceptance
    finally:
        sys.path.remove(str(BENCHMARKS))
    from dggan.data import open_dataset
    from dggan.metrics.seeds import Paired

    path = acceptance.photo_patches(tmp_path / "patches.npz", n=10, size=16)
    images = np.load(path)["images"]
    assert images.shape == (10, 16, 16, 3) and images.dtype == np.uint8 and images.std() > 0
    assert np.array_equal(np.load(acceptance.photo_patches(tmp_path / "again.npz", n=10))["images"], images)
    assert len(open_dataset(f"npz:{path}")) == 10  # an array dataset `dggan search --data` takes

    def row(final: list[float], proggan: list[float], pick: list[float]) -> dict:
        return {"run": "r", "final": final, "proggan_equal_training": proggan, "pick": pick, "pick_candidate": 3,
                "proggan_route": False, "vs_proggan": Paired.of(final, proggan).to_dict(),
                "vs_pick": Paired.of(final, pick).to_dict(), "floor": None, "search_wall_s": 60.0,
                "compare_wall_s": 6.0}

    good = acceptance.markdown([row([10.0, 11.0, 12.0], [10.5, 10.9, 12.2], [11.0, 12.0, 13.0])])
    assert "| within noise |" in good and "| better |" in good and "Every run passes" in good
    worse = acceptance.markdown([row([12.0, 13.0, 14.0], [10.0, 11.0, 12.0], [12.0, 13.0, 14.0])])
    assert "| worse |" in worse and "FAILED: r" in worse


@pytest.mark.slow  # four tiny searches' worth of subprocesses
def test_bench_power_runs_beam_and_random_growth_and_pairs_their_final_models(tmp_path: Path) -> None:
    sets = [f"{k}={json.dumps(v)}" for k, v in {**TINY, "max_steps": 1, "final_iterations": 2, "halving_eta": 1}.items()
            if k not in ("cache_dir", "baseline")]
    args = [sys.executable, str(BENCHMARKS / "bench_power.py"), "--out", str(tmp_path), "--preset", "shapes",
            "--seeds", "0", *[a for kv in sets for a in ("--set", kv)]]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:] + out.stdout[-2000:]
    result = json.loads((tmp_path / "power.json").read_text())
    assert [r["run"] for r in result["runs"]] == ["beam-s0", "random-s0"]
    options = json.loads((tmp_path / "random-s0" / "options.json").read_text())
    assert options["selection"] == "random" and options["metric"] == TINY["metric"]
    (head,) = result["beam_vs_random"]
    assert head["beam"]["scores"] == result["runs"][0]["final"]  # compare and --against score alike
    assert head["verdict"] in ("better", "worse", "within noise")
    assert "Beam against random growth:" in (tmp_path / "power.md").read_text()
