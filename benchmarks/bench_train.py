"""Training throughput of one full WGAN-GP step (G and D), dggan vs. a hand-written ProgGAN.

For every resolution this builds dggan's ``Trainer`` on a CIFAR-like genome (ProgGAN's route: the base
genome at 8px with the same width at every scale, then ``grow_res``) and the hand-written reference of
``reference_proggan.py`` with the *same initial weights, images and noise*, so both do exactly the same
work (checked: their loss vectors must agree after warm-up). Then it times blocks of ``--steps`` full
training steps, alternating the two implementations (A B B A A B ...: interleaved, and each one goes
first equally often) so that load from other processes hits both alike, and reports medians.

    images/s  = batch * steps / seconds of one block
    overhead  = median(reference images/s) / median(dggan images/s) - 1     (> 0: dggan is slower)
    paired    = median over blocks r of ref_r / dggan_r - 1   (each pair ran back to back: robust to drift)
    CPU-time  = the overhead from images per CPU-second of this process (``time.process_time``); on a
                shared machine this ignores time spent waiting for a core, so it is the least noisy
                (with --threads 1 it is the work done; with more threads it also counts spinning)

Peak memory is measured in a fresh subprocess per (implementation, resolution) over the first
``1 + --memory-steps`` steps: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the process's peak
resident set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` once the networks are built;
elsewhere ``ru_maxrss``). ``train`` is that peak minus the memory in use once the networks and data were
built: gradients, Adam's state and activations -- what training adds on top of the models. The absolute
peak (in parentheses) includes the ~600 MiB that importing torch costs. Each is the median of
``--memory-repeats`` probes.

    python benchmarks/bench_train.py --channels 128 --batch 16 --resolutions 8 16 32 --steps 5 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import reference_proggan as ref  # this script's folder is on sys.path when run as a script
import torch

from dggan.data import SyntheticShapes
from dggan.model.actions import Action, apply_action
from dggan.model.genome import Genome, constant_channels
from dggan.training.trainer import TrainConfig, Trainer

IMPLS = ("dggan", "reference")
MiB = 2**20


# ---------------------------------------------------------------------------------------- setup
def cifar_like_genome(resolution: int, channels: int, latent_size: int) -> Genome:
    """ProgGAN's CIFAR-10 network at ``resolution``: base genome at 8px, constant width, grow_res up."""
    genome = Genome.base(latent_size=latent_size, base_resolution=8,
                         channels=constant_channels(max(32, resolution), channels))
    while genome.resolution < resolution:
        genome = apply_action(genome, Action("grow_res"))
    return genome


def make_data(args: argparse.Namespace) -> SyntheticShapes:
    return SyntheticShapes(num_images=args.images, resolution=max(32, *args.resolutions), seed=0)


def build(impl: str, resolution: int, args: argparse.Namespace,
          data: SyntheticShapes) -> tuple[Trainer | None, ref.ReferenceTrainer | None]:
    """dggan's trainer and/or the reference (``impl`` = dggan, reference or both), same weights and seeds."""
    genome = cifar_like_genome(resolution, args.channels, args.latent)
    config = TrainConfig(iterations=10**9, batch_size=args.batch, device=args.device, seed=args.seed)
    trainer = Trainer(genome, config, data) if impl in ("dggan", "both") else None
    reference = None
    if impl in ("reference", "both"):
        torch.manual_seed(args.seed)
        G, D = ref.build_reference(resolution, args.channels, latent_size=args.latent)
        if trainer is not None:  # start from dggan's weights: same numbers, so the same work
            with torch.no_grad():
                for mine, theirs in ((G, trainer.G), (D, trainer.D)):
                    for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
                        a.copy_(b)
        reference = ref.ReferenceTrainer(G, D, data.array, batch_size=args.batch, latent_size=args.latent,
                                         seed=args.seed, device=args.device)
    return trainer, reference


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_block(step: Callable[[], torch.Tensor], steps: int, device: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for ``steps`` training steps."""
    sync(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    sync(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


# ---------------------------------------------------------------------------------------- timing
@dataclass
class Timing:
    resolution: int
    dggan_ips: list[float]  # images per wall-clock second, one entry per block
    reference_ips: list[float]
    dggan_cpu_ips: list[float]  # images per CPU-second of this process (robust to waiting for a core)
    reference_cpu_ips: list[float]
    same_numbers: bool | None  # None: no warm-up step to compare

    @property
    def dggan(self) -> float:
        return statistics.median(self.dggan_ips)

    @property
    def reference(self) -> float:
        return statistics.median(self.reference_ips)

    @property
    def overhead(self) -> float:
        return self.reference / self.dggan - 1.0

    @property
    def paired_overhead(self) -> float:
        return statistics.median(r / d for r, d in zip(self.reference_ips, self.dggan_ips, strict=True)) - 1.0

    @property
    def cpu_overhead(self) -> float:
        return statistics.median(self.reference_cpu_ips) / statistics.median(self.dggan_cpu_ips) - 1.0


def time_resolution(resolution: int, args: argparse.Namespace, data: SyntheticShapes) -> Timing:
    trainer, reference = build("both", resolution, args, data)
    assert trainer is not None and reference is not None
    steps = {"dggan": trainer.step, "reference": reference.step}
    stats: dict[str, torch.Tensor] = {}
    for _ in range(args.warmup):
        for name in IMPLS:
            stats[name] = steps[name]()
    same = bool(torch.equal(stats["dggan"], stats["reference"])) if args.warmup else None
    ips: dict[str, list[float]] = {name: [] for name in IMPLS}
    cpu_ips: dict[str, list[float]] = {name: [] for name in IMPLS}
    images = args.batch * args.steps
    for r in range(args.repeats):
        order = IMPLS if r % 2 == 0 else IMPLS[::-1]
        for name in order:
            wall, cpu = timed_block(steps[name], args.steps, args.device)
            ips[name].append(images / wall)
            cpu_ips[name].append(images / max(cpu, 1e-9))
        if args.verbose:
            print(f"  {resolution}px block {r}: " + "  ".join(
                f"{n} {ips[n][-1]:.2f} img/s ({cpu_ips[n][-1]:.2f} per CPU-s)" for n in IMPLS),
                file=sys.stderr, flush=True)
    return Timing(resolution, ips["dggan"], ips["reference"], cpu_ips["dggan"], cpu_ips["reference"], same)


# ---------------------------------------------------------------------------------------- memory
def _proc_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def memory_probe(impl: str, resolution: int, args: argparse.Namespace) -> dict[str, float | str]:
    """Peak memory of training steps of one implementation (run in a fresh process).

    ``peak_mib``: the peak over ``1 + memory_steps`` steps, from the first step on (so Adam's state, the
    gradients and the activations all count). ``train_mib``: that peak minus the memory in use once the
    networks (G, D, EMA copy) and the data were built, i.e. what training adds on top of the models.
    """
    data = make_data(args)
    trainer, reference = build(impl, resolution, args, data)
    step = trainer.step if trainer is not None else reference.step  # type: ignore[union-attr]
    steps = 1 + args.memory_steps
    sync(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        for _ in range(steps):
            step()
        sync(args.device)
        peak = torch.cuda.max_memory_allocated()
        method = "torch.cuda.max_memory_allocated"
    elif _reset_peak_rss() and _proc_status("VmHWM") is not None:
        before = _proc_status("VmRSS") or 0
        for _ in range(steps):
            step()
        peak = _proc_status("VmHWM") or 0
        method = "peak RSS (VmHWM, reset after building the networks)"
    else:  # no /proc: the high-water mark since the process started (includes the set-up)
        scale = 1 if sys.platform == "darwin" else 1024
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        for _ in range(steps):
            step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        method = "ru_maxrss"
    return {"peak_mib": peak / MiB, "train_mib": (peak - before) / MiB, "method": method}


def median_probe(impl: str, resolution: int, args: argparse.Namespace) -> dict[str, float | str]:
    """Median of ``--memory-repeats`` fresh-process probes (peak RSS varies by some tens of MiB)."""
    runs = [run_probe_subprocess(impl, resolution, args) for _ in range(args.memory_repeats)]
    out: dict[str, float | str] = {key: statistics.median(float(r[key]) for r in runs)
                                   for key in ("peak_mib", "train_mib")}
    out["method"] = runs[0]["method"]
    out["train_mib_runs"] = ", ".join(f"{float(r['train_mib']):.0f}" for r in runs)
    return out


def run_probe_subprocess(impl: str, resolution: int, args: argparse.Namespace) -> dict[str, float | str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", impl, "--resolutions", str(resolution),
           "--channels", str(args.channels), "--batch", str(args.batch), "--latent", str(args.latent),
           "--device", args.device, "--seed", str(args.seed), "--images", str(args.images),
           "--memory-steps", str(args.memory_steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- report
def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpus": str(os.cpu_count()), "torch": torch.__version__,
            "threads": str(torch.get_num_threads()), "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def table(timings: list[Timing], memory: dict[tuple[str, int], dict[str, float | str]],
          args: argparse.Namespace) -> str:
    lines = [
        f"channels {args.channels}, batch {args.batch}, latent {args.latent}, device {args.device}: "
        f"{args.repeats} blocks of {args.steps} steps per implementation, medians",
        "",
        "| res | dggan img/s | reference img/s | overhead | paired | CPU-time overhead | same numbers "
        "| dggan train MiB (peak) | reference train MiB (peak) |",
        "|---:|---:|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    for t in timings:
        mem = []
        for impl in IMPLS:
            m = memory.get((impl, t.resolution))
            mem.append(f"{m['train_mib']:.0f} ({m['peak_mib']:.0f})" if m else "-")
        spread = f"{min(t.dggan_ips):.2f}-{max(t.dggan_ips):.2f}"
        spread_ref = f"{min(t.reference_ips):.2f}-{max(t.reference_ips):.2f}"
        same = "-" if t.same_numbers is None else "yes" if t.same_numbers else "NO"
        lines.append(f"| {t.resolution} | {t.dggan:.2f} [{spread}] | {t.reference:.2f} [{spread_ref}] "
                     f"| {t.overhead * 100:+.1f}% | {t.paired_overhead * 100:+.1f}% | {t.cpu_overhead * 100:+.1f}% "
                     f"| {same} | {mem[0]} | {mem[1]} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--channels", type=int, default=128, help="width of every scale (ProgGAN CIFAR: 512)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--latent", type=int, default=128)
    p.add_argument("--resolutions", type=int, nargs="+", default=[8, 16, 32], choices=[8, 16, 32])
    p.add_argument("--steps", type=int, default=5, help="training steps per timed block")
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per implementation")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per implementation first")
    p.add_argument("--memory-steps", type=int, default=2, help="steps after the first in each memory probe")
    p.add_argument("--memory-repeats", type=int, default=3, help="fresh-process probes per configuration")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--images", type=int, default=4096, help="synthetic images in the dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    p.add_argument("--verbose", action="store_true", help="print every block's numbers to stderr")
    p.add_argument("--probe", choices=IMPLS, help=argparse.SUPPRESS)  # internal: one memory measurement
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(memory_probe(args.probe, args.resolutions[0], args)))
        return
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), file=sys.stderr, flush=True)
    data = make_data(args)
    timings, memory = [], {}
    for res in args.resolutions:
        timings.append(time_resolution(res, args, data))
        if not args.no_memory:
            for impl in IMPLS:
                memory[(impl, res)] = median_probe(impl, res, args)
        print(f"{res}px done", file=sys.stderr, flush=True)
    print(table(timings, memory, args))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "args": {k: str(v) for k, v in vars(args).items()},
            "timings": [asdict(t) | {"overhead": t.overhead, "paired_overhead": t.paired_overhead,
                                     "cpu_overhead": t.cpu_overhead} for t in timings],
            "memory": [{"impl": i, "resolution": r, **m} for (i, r), m in memory.items()],
        }, indent=2))


if __name__ == "__main__":
    main()
