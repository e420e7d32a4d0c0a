"""Kill a demo-sized search with SIGKILL at random moments, resume it each time, and check that nothing
finished was ever lost or changed, and that the end result equals an uninterrupted run's.

Usage: python benchmarks/kill_resume.py [--kills 20] [--seed 0] [--keep DIR]

Each round starts (or resumes) ``dggan search`` in a subprocess, kills it with SIGKILL after a random
delay, then checks the ledger: every candidate that was finished before the kill (done, diverged, failed,
pruned) is still there with the same status, metric and checkpoint bytes. After the last kill the search
runs to the end and its ledger is compared with a reference run that was never interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dggan.search.config import SearchConfig, preset
from dggan.search.driver import run_search
from dggan.search.ledger import Ledger

FINISHED = {"done", "diverged", "failed", "pruned"}


def config() -> SearchConfig:
    # The demo's shape (auto baseline, several steps, final training) with budgets cut to fit 20 rounds.
    return preset("demo", iterations=40, initial_iterations=40, final_iterations=40, checkpoint_every=10,
                  threads=1, sample_grid=4, metric="swd64")


def snapshot(run: Path) -> dict[int, tuple[Any, ...]]:
    """Finished candidates: id -> (status, metric, checkpoint digest)."""
    if not (run / "ledger.sqlite").exists():
        return {}
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows = ledger.candidates()
    out = {}
    for r in rows:
        if r.status.value in FINISHED:
            ckpt = run / r.checkpoint if r.checkpoint else None
            digest = hashlib.sha256(ckpt.read_bytes()).hexdigest() if ckpt and ckpt.is_file() else None
            out[r.id] = (r.status.value, r.metric, digest)
    return out


PROGRESS_FILES = {"ledger.sqlite", "ledger.sqlite-wal", "checkpoint.safetensors", "stats.jsonl"}


def last_write(run: Path) -> float:
    """When the search last wrote progress (training stats, a checkpoint, the ledger) into the run folder;
    the lock and log files, written at start-up, do not count."""
    if not run.exists():
        return 0.0
    return max((p.stat().st_mtime for p in run.rglob("*") if p.name in PROGRESS_FILES), default=0.0)


def outcome(run: Path) -> list[tuple[Any, ...]]:
    with Ledger.open(run / "ledger.sqlite", readonly=True) as ledger:
        rows, final = ledger.candidates(), ledger.final()
    return [(r.id, r.parent, r.status.value, r.genome.key(), r.metric, r.kept) for r in rows] + [
        ("final", None if final is None else (final.candidate, final.status.value, final.metric))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = args.keep or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    root.mkdir(parents=True, exist_ok=True)
    cfg = config()
    t0 = time.perf_counter()
    run_search(root / "reference", cfg, progress=False)
    reference_seconds = time.perf_counter() - t0
    print(f"reference run: {reference_seconds:.1f}s")
    cfg_file = root / "config.json"
    cfg_file.write_text(json.dumps(cfg.to_dict()))
    run = root / "run"
    problems: list[str] = []
    kills = 0
    for k in range(args.kills):
        cmd = [sys.executable, "-m", "dggan", "search", "--no-progress"]
        cmd += ["--resume", str(run)] if (run / "ledger.sqlite").exists() else ["--config", str(cfg_file),
                                                                                 "--run-dir", str(run)]
        before = snapshot(run)
        started = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # A timer alone lands most kills in the start-up (imports, reopening the run) or before the first
        # checkpoint, and the search never moves. Waiting for the round's first progress (training stats, a
        # checkpoint, a ledger row), then a random delay, makes every round advance and puts kills across the
        # whole search, often right after a write: the moment most likely to tear one.
        while proc.poll() is None and last_write(run) <= started:
            time.sleep(0.02)
        delay = rng.uniform(0.0, 2 * reference_seconds / args.kills)
        try:
            proc.wait(timeout=delay)
            print(f"round {k + 1}: the search finished before the kill", end="")
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            print(f"round {k + 1}: killed {time.time() - started:.1f}s in, {delay:.1f}s after its first write",
                  end="")
        after = snapshot(run)
        print(f"; finished candidates {len(before)} -> {len(after)}")
        for cid, state in before.items():
            if after.get(cid) != state:
                problems.append(f"round {k + 1}: finished candidate {cid} changed: {state} -> {after.get(cid)}")
    result = subprocess.run([sys.executable, "-m", "dggan", "search", "--no-progress", "--resume", str(run)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        problems.append(f"the final resume failed: {result.stderr.strip()[-500:]}")
    elif outcome(run) != outcome(root / "reference"):
        problems.append("the resumed run's ledger differs from the uninterrupted reference")
    where = "" if args.keep else f" (runs in {root})"
    print(f"{args.kills} rounds, {kills} killed mid-search, {len(problems)} problems{where}")
    for p in problems:
        print("  " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
