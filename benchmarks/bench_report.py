"""Report build time for large synthetic ledgers (the report must stay usable for thousands of candidates).

For each size: write a synthetic run (Algorithm 1 over a made-up metric model, K=20, p=0.4, no
checkpoints), then time ``generate_report`` (ledger read, analyses, replay grid, plots, HTML), and
report the page's size. Each phase is also timed on its own, to see where the time goes.

Usage: python benchmarks/bench_report.py [--sizes 2000 5000] [--replay-seeds 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from dggan.analysis import analyses as A
from dggan.analysis import plots as P
from dggan.analysis.report import generate_report
from dggan.search.algorithm import best_candidate, route
from dggan.search.ledger import Ledger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic ledger is a test fixture
from fixtures.synthetic_ledger import write_synthetic_run  # noqa: E402


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN201 (a tiny timing helper)
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def bench(root: Path, n: int, seeds: int) -> dict[str, float | int | str]:
    run, t_write = timed(write_synthetic_run, root / f"run{n}", n, seed=0)
    result, t_report = timed(generate_report, run, replay_seeds=seeds)
    # Phases on their own (the report above did all of them once).
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows, t_read = timed(ledger.candidates)
        settings = ledger.settings()
    key = A.score_key(rows)
    best = best_candidate(rows, key=key)
    k, p = A.search_hyperparameters(rows, settings)
    ks, ps = A.default_grid(k, p)
    cells, t_replay = timed(A.replay_grid, rows, ks, ps, seeds, key)
    _, t_effects = timed(A.action_effects, rows, key)
    _, t_tree = timed(P.plot_search_tree, rows, key, [r.id for r in route(rows, best.id)])
    cap = A.capacity(rows, key, 1.2, best.id)
    _, t_cap = timed(P.plot_capacity, cap, key)
    html = result.path.stat().st_size
    return {"candidates": n, "write_ledger_s": round(t_write, 2), "report_s": round(t_report, 2),
            "read_ledger_s": round(t_read, 2), "replay_grid_s": round(t_replay, 2),
            "replay_settings": len(cells), "action_effects_s": round(t_effects, 3),
            "plot_search_tree_s": round(t_tree, 2), "plot_capacity_s": round(t_cap, 2),
            "index_html_mb": round(html / 2**20, 2), "notes": len(result.notes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000])
    ap.add_argument("--replay-seeds", type=int, default=10)
    ap.add_argument("--keep", type=Path, default=None, help="write the runs here instead of a temp folder")
    args = ap.parse_args()
    print(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                      "cpus": os.cpu_count()}))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for n in args.sizes:
            print(json.dumps(bench(root, n, args.replay_seeds)), flush=True)


if __name__ == "__main__":
    main()
