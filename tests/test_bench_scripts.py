"""The benchmark scripts that drive whole searches still run against today's API (a tiny search each):
a script that breaks is found here, not after a long run on a big machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from searches import TINY

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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
