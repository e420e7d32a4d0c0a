"""The benchmark scripts that drive whole searches still run against today's API (a tiny search each):
a script that breaks is found here, not after a long run on a big machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    again = study("P", "G32+D32", "8:G32")  # the two finished runs are kept, only the new one trains
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count('"variant"') == 1
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
    bad = study("G32*D32")
    assert bad.returncode != 0 and "G128, D64 or G64k7" in bad.stderr
    digits = study("P", "--data", "digits")  # the digits' held-out split: a metric sized to it, its own floor
    assert digits.returncode == 0, digits.stderr[-2000:]
    assert "| digits | 8 | 3 | P |" in digits.stdout and "Real vs real on digits" in digits.stdout
