"""Search overhead and candidates per hour, 1 vs 2 workers.

Overhead is everything but training and scoring: ledger writes, checkpoints outside the training loop,
inheritance, network construction, action sampling, process start-up. It is the run's wall time minus
the training and scoring seconds that the ledger records (the baseline's and the final training's included;
the paper's tables are turned off, being an evaluation of the result).

    python benchmarks/bench_search.py                 # the demo preset, in-process
    python benchmarks/bench_search.py --workers 1 2   # also the local executor with 1 and 2 processes
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
from pathlib import Path

from dggan.execution.executors import InProcessExecutor, LocalExecutor
from dggan.search.config import preset
from dggan.search.driver import run_search


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line), "?")
    except OSError:
        return platform.processor() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="local executor worker counts to try")
    parser.add_argument("--set", nargs="*", default=[], help="overrides KEY=JSON")
    args = parser.parse_args()
    # The paper's tables after the final training are an evaluation of the result, not part of the search.
    overrides = {"tables": False, **{k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}}
    config = preset(args.preset, **overrides)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs: list[tuple[str, object]] = [("inprocess", InProcessExecutor(config.resolved_device()))]
        runs += [(f"local x{n}", LocalExecutor(n, config.resolved_device())) for n in args.workers]
        for name, executor in runs:
            try:
                summary = run_search(Path(tmp) / name.replace(" ", "_"), config, executor=executor,  # type: ignore[arg-type]
                                     progress=False)
            finally:
                executor.close()  # type: ignore[attr-defined]
            per_hour = 3600 * summary.candidates / summary.wall_seconds
            rows.append((name, summary.candidates, summary.wall_seconds, summary.train_seconds, summary.eval_seconds,
                         100 * (summary.wall_seconds - summary.train_seconds - summary.eval_seconds)
                         / summary.wall_seconds, per_hour))
    print(f"machine: {cpu_model()}, preset {args.preset}, overrides {overrides}")
    print("| executor | candidates | wall s | train s | score s | overhead % | candidates/hour |")
    print("|---|---|---|---|---|---|---|")
    for name, n, wall, train, score, overhead, per_hour in rows:
        # With parallel workers the recorded seconds add up to more than the wall time: no overhead figure.
        shown = f"{overhead:.2f}" if name == "inprocess" else "n/a (parallel)"
        print(f"| {name} | {n} | {wall:.1f} | {train:.1f} | {score:.1f} | {shown} | {per_hour:.0f} |")


if __name__ == "__main__":
    main()
