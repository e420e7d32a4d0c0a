"""#19's acceptance experiment: does a search ever hand back a model worse than the ProgGAN it trained?

For each dataset and search seed, run the main job exactly as a user would (``dggan search --preset demo``,
seed changed with ``--set seed=S``), then ``dggan compare RUN --eval-seeds 3``, and score the candidate the
final training started from (the pick, before its final training) with the same held-out evaluation seeds.
Two checks per run, both paired seed by seed with ``dggan compare``'s own rule (``metrics.seeds.Paired``):

- the final model is not "worse" than ProgGAN at equal training;
- the final model is not "worse" than the selected candidate before its final training.

Datasets: the digits (the demo's default) and 16x16 patches of the two photographs scikit-learn ships
(4,096 patches, half from each, written as an ``npz`` array dataset: real images the project was never tuned on).

    python benchmarks/bench_acceptance.py --out acceptance --jobs 2

Each run is a subprocess with one torch thread; ``--jobs 2`` runs two at a time. A killed experiment resumes:
finished stages are kept in OUT/stages.json and an unfinished search continues with ``--resume``. The table is
written to OUT/acceptance.md and OUT/acceptance.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dggan._util.files import atomic_write_bytes, atomic_write_json

DATASETS = ("digits", "photos")
PATCHES, PATCH_SIZE = 4096, 16


def photo_patches(path: Path, n: int = PATCHES, size: int = PATCH_SIZE, seed: int = 0) -> Path:
    """``n`` random ``size``x``size`` patches, half from each of scikit-learn's two sample photographs, as a uint8
    NHWC ``npz`` (written atomically, reused when present)."""
    if path.exists():
        return path
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    rng = np.random.default_rng(seed)
    patches = []
    for k, image in enumerate(images):
        h, w, _ = image.shape
        count = n // len(images) + (k < n % len(images))
        ys, xs = rng.integers(0, h - size + 1, count), rng.integers(0, w - size + 1, count)
        patches += [image[y:y + size, x:x + size] for y, x in zip(ys, xs, strict=True)]
    buffer = io.BytesIO()
    np.savez(buffer, images=np.ascontiguousarray(np.stack(patches).astype(np.uint8)))
    atomic_write_bytes(path, buffer.getvalue())
    return path


class Stages:
    """Finished stages and their wall times in OUT/stages.json, so a killed experiment resumes."""

    def __init__(self, path: Path):
        self.path, self.lock = path, threading.Lock()
        self.data: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str) -> dict | None:
        with self.lock:
            return self.data.get(key)

    def put(self, key: str, value: dict) -> None:
        with self.lock:
            self.data[key] = value
            atomic_write_json(self.path, self.data)


def run_logged(cmd: list[str], log: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}; see {log}")
    return time.perf_counter() - start


def search_and_compare(out: Path, name: str, new_search: list[str], stages: Stages) -> None:
    """``dggan search`` (one torch thread) into out/NAME, with ``new_search``'s flags, or resumed when the folder is
    there from a killed run; then ``dggan compare`` on three held-out seeds; each stage once (``stages``)."""
    run, log = out / name, out / f"{name}.log"
    dggan = [str(Path(sys.executable).with_name("dggan"))]
    if stages.get(f"{name}/search") is None:
        resumed = run.exists()
        cmd = dggan + ["search", "--no-progress", "--set", "threads=1"]
        cmd += ["--resume", str(run)] if resumed else ["--run-dir", str(run), *new_search]
        stages.put(f"{name}/search", {"wall_s": run_logged(cmd, log), "resumed": resumed})
    if stages.get(f"{name}/compare") is None:
        cmd = dggan + ["compare", str(run), "--eval-seeds", "3", "--no-progress"]
        stages.put(f"{name}/compare", {"wall_s": run_logged(cmd, log)})
    print(f"{name}: done", flush=True)


def one_run(out: Path, dataset: str, seed: int, data_spec: str | None, stages: Stages) -> None:
    data = ["--data", data_spec] if data_spec else []
    search_and_compare(out, f"{dataset}-s{seed}", ["--preset", "demo", "--set", f"seed={seed}", *data], stages)


def pick_scores(run: Path, seeds: list[int]) -> dict:
    """The candidate the final training started from, scored with ``seeds`` (compare's held-out seeds)."""
    from dggan.evaluation.compare import score_checkpoint
    from dggan.runs import RunLayout
    from dggan.search.config import load_run_config
    from dggan.search.ledger import Ledger

    layout = RunLayout(run)
    config = load_run_config(run)
    with Ledger.open(layout.ledger, readonly=True) as ledger:
        final, rows = ledger.final(), {r.id: r for r in ledger.candidates()}
        wall = ledger.session_seconds()  # every session of the search, a resumed one included
    row = rows[final.candidate]
    path = layout.resolve(row.checkpoint) if row.checkpoint else layout.checkpoint(row.id)
    return {"candidate": row.id, "proggan_route": bool(row.extra.get("proggan_route")), "search_wall_s": wall,
            "scores": [float(score_checkpoint(path, config, s, "cpu")["value"]) for s in seeds]}


def mean_std(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.2f} ± {a.std(ddof=1) if a.size > 1 else 0.0:.2f}"


def gather(out: Path, names: list[str], stages: Stages) -> list[dict]:
    from dggan.metrics.seeds import Paired

    rows = []
    for name in names:
        comp = json.loads((out / name / "compare.json").read_text())
        key = f"{name}/pick"
        if stages.get(key) is None or "search_wall_s" not in stages.get(key):
            stages.put(key, pick_scores(out / name, comp["eval_seeds"]))
        pick = stages.get(key)
        final, proggan = comp["final"]["scores"], comp["equal_training"]["scores"]
        rows.append({
            "run": name, "final": final, "proggan_equal_training": proggan, "pick": pick["scores"],
            "pick_candidate": pick["candidate"], "proggan_route": pick["proggan_route"],
            "eval_seeds": comp["eval_seeds"], "vs_proggan": comp["paired_equal_training"],
            "vs_pick": Paired.of(final, pick["scores"]).to_dict(), "floor": (comp.get("floor") or {}).get("mean"),
            "search_wall_s": pick["search_wall_s"], "compare_wall_s": stages.get(f"{name}/compare")["wall_s"]})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| run | final model | final (held-out) | ProgGAN, equal training | ProgGAN − final (paired) |"
             " final vs ProgGAN | pick before final training | final vs pick | floor | search / compare wall |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, q = r["vs_proggan"], r["vs_pick"]
        model = "ProgGAN route" if r["proggan_route"] else "grown"
        floor = "–" if r["floor"] is None else f"{r['floor']:.2f}"
        lines.append(
            f"| {r['run']} | {model} (cand. {r['pick_candidate']}) | {mean_std(r['final'])} |"
            f" {mean_std(r['proggan_equal_training'])} | {p['mean']:+.2f} ({p['wins']}/{p['n']} seeds final better) |"
            f" {p['verdict']} | {mean_std(r['pick'])} | {q['verdict']} | {floor} |"
            f" {r['search_wall_s'] / 60:.1f} / {r['compare_wall_s'] / 60:.1f} min |")
    worse = [r["run"] for r in rows if r["vs_proggan"]["verdict"] == "worse" or r["vs_pick"]["verdict"] == "worse"]
    lines += ["", "Every run passes: no final model is worse than ProgGAN at equal training or than its own pick."
              if not worse else f"FAILED: {', '.join(worse)} hand back a model worse than ProgGAN or than the pick."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=Path("acceptance"))
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (each on one torch thread)")
    ap.add_argument("--also", nargs="*", default=[], help="more finished run folders in OUT to put in the table")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out / "stages.json")
    specs = {"digits": None, "photos": f"npz:{photo_patches(out / 'photo_patches.npz')}"}
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one_run, out, d, s, specs[d], stages) for s in args.seeds for d in args.datasets]
        for f in futures:
            f.result()
    import torch

    torch.set_num_threads(1)
    rows = gather(out, [f"{d}-s{s}" for d in args.datasets for s in args.seeds] + args.also, stages)
    (out / "acceptance.json").write_text(json.dumps(rows, indent=1))
    table = markdown(rows)
    (out / "acceptance.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
