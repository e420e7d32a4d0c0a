"""How fast every ``dggan`` command starts: help, argument errors and read-only commands load no torch;
and how fast the local executor's worker pool starts.

Usage: python benchmarks/bench_startup.py [--repeats 5] [--workers 2]

Each command runs ``--repeats`` times in a fresh interpreter; the table gives the median wall time and
whether torch was imported (checked with ``-X importtime``). Commands that train or score import torch
when their real work starts, so they are timed up to an argument error, which comes before it.

The pool: ``--workers`` local workers from creating the pool to every worker's first answer, the executor's
pool (workers forked from a server that imported torch once) against the same pool with spawned workers
(each imports torch itself), alternating in this process; the fork server's own start, once per process,
is timed apart.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [
    ["--help"],
    ["search", "--help"],
    ["search", "--set", "p=abc"],  # a bad setting: one line, before torch
    ["search", "--preset", "demo", "--print-config"],
    ["train", "--action", "grow_res"],  # a bad combination: one line, before torch
    ["sample", "x.safetensors", "--n", "0"],
    ["eval", "--help"],
    ["report", "--help"],
    ["compare", "--help"],
    ["tables", "--help"],
    ["ls", "{run}"],  # a real run folder: reads the ledger, no torch
    ["status", "{run}"],  # the same run: read-only ledger and stats files, no torch
    ["genome", "base"],
]


def make_run(folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # a test fixture
    from fixtures.synthetic_ledger import write_synthetic_run

    return write_synthetic_run(folder / "run", 200, seed=0)


def timed(args: list[str]) -> tuple[float, bool]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "dggan", *args], capture_output=True,
                            text=True)
    seconds = time.perf_counter() - start
    return seconds, any(line.rstrip().endswith("| torch") for line in result.stderr.splitlines())


def pool_start(method: str, workers: int) -> float:
    """Seconds from creating a local pool to an answer from each of its ``workers`` workers."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    from dggan.execution import executors
    from dggan.execution.worker import set_worker_device

    start = time.perf_counter()
    if method == "forkserver":
        pool = executors.LocalExecutor(workers, "cpu", threads=1)._make_pool()
    else:
        ctx = mp.get_context(method)
        devices = ctx.Queue()
        for _ in range(workers):
            devices.put("cpu")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=executors._init_local_worker,
                                   initargs=(devices, 1, os.getpid()))
    list(pool.map(set_worker_device, ["cpu"] * workers))
    seconds = time.perf_counter() - start
    pool.shutdown()
    return seconds


def pools(workers: int, repeats: int) -> None:
    first = pool_start("forkserver", workers)  # starts the fork server: once per driver process
    times: dict[str, list[float]] = {"forkserver": [], "spawn": []}
    for _ in range(repeats):
        for method, runs in times.items():
            runs.append(pool_start(method, workers))
    print(f"\n| local pool of {workers} workers | median s |\n|---|---|")
    print(f"| the process's first pool (starts the fork server) | {first:.2f} |")
    print(f"| every later pool (forked from the server) | {statistics.median(times['forkserver']):.2f} |")
    print(f"| spawned workers, every pool | {statistics.median(times['spawn']):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp))
        print("| command | median s | torch imported |\n|---|---|---|")
        for command in COMMANDS:
            argv = [a.replace("{run}", str(run)) for a in command]
            runs = [timed(argv) for _ in range(args.repeats)]
            shown = " ".join(a if a != str(run) else "RUN" for a in argv)
            print(f"| dggan {shown} | {statistics.median(s for s, _ in runs):.2f} |"
                  f" {'yes' if any(t for _, t in runs) else 'no'} |", flush=True)
    pools(args.workers, args.repeats)


if __name__ == "__main__":
    main()
