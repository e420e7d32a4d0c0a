"""``dggan eval`` (score a checkpoint), ``dggan ref`` (precompute reference statistics) and
``dggan export-lsun`` (LSUN's LMDB to a fast memory-mapped array)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigError, DatasetError
from . import options as opts
from .app import app

METRICS_FILE = "metrics.jsonl"


def load_generator(path: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """(genome, EMA generator in eval mode) of a checkpoint; a module-level name so tests can replace it."""
    from ..training.checkpoint import load_generator as load

    return load(path, device=device)


def recorded_data(path: Path) -> str | None:
    """The dataset spec a checkpoint was trained on (None when it does not record one). A file that is not a
    readable checkpoint raises its CheckpointError: that, not the missing --data, is what to fix."""
    from ..training.checkpoint import load_checkpoint

    return load_checkpoint(path, tensors=False).state.get("data")


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="Checkpoint file or a folder holding one"
                                                                          " (metrics.jsonl goes beside it)")],
    metric: Annotated[str, typer.Option(help="swd1k, swd16k, fid10k, fid50k, is50k, kid10k... (FID, IS and KID"
                                             " need the Inception weights)")] = "swd1k",
    data: opts.Data = None,
    inception_weights: opts.InceptionWeights = None,
    cache_dir: opts.CacheDir = None,
    device: opts.Device = None,
    batch_size: Annotated[int, typer.Option(help="Images per generator/extractor batch")] = 64,
    seed: opts.Seed = None,
    threads: opts.Threads = None,
    progress: opts.Progress = True,
) -> None:
    """Score a checkpoint's EMA generator and append the result to metrics.jsonl. At its resolution, against
    the data it was trained on (or --data). The seed (default 0) draws the latents and SWD's samples."""
    from .train import resolve_checkpoint

    opts.setting_flag(batch_size, "--batch-size", "eval_batch_size")
    spec: Any = opts.metric(metric)
    opts.device(device or "auto", allow_auto=True)
    seed = int(opts.seed(0 if seed is None else seed))
    if threads is not None:
        opts.setting_flag(threads, "--threads", "threads")
    checkpoint = resolve_checkpoint(checkpoint)
    opts.writable_folder(checkpoint.parent, "eval: cannot append to", checkpoint.parent / METRICS_FILE)
    from .._util.files import append_jsonl
    from .._util.threads import set_threads
    from ..data import open_dataset
    from ..metrics import default_cache_dir, evaluate_generator
    from ..training.trainer import pick_device

    set_threads(threads)  # never one BLAS thread per busy core (FID's eigenvalues spin against other jobs)
    device = opts.resolve_device(device)
    pick_device(device)
    if data is None and spec.kind != "is":
        data = recorded_data(checkpoint)
        if data is None:
            raise ConfigError(f"{spec.name} compares against real images and {checkpoint} does not record its"
                              " dataset: pass --data SPEC (e.g. --data synthetic, or the data it was trained on)")
    genome, generator = load_generator(checkpoint, device=device)
    real = open_dataset(data) if data is not None and spec.kind != "is" else None
    if real is not None and real.channels != genome.image_channels:
        raise DatasetError(f"{checkpoint} makes {_colour(genome.image_channels)} images but {real.name} holds"
                           f" {_colour(real.channels)} ones; score it against data with {genome.image_channels}"
                           " channel(s) (--data: the data it was trained on)")
    result = evaluate_generator(spec.name, generator, real, cache_dir=cache_dir or default_cache_dir(), device=device,
                                inception_weights=inception_weights, batch_size=batch_size, seed=seed,
                                progress=progress)
    record = {**result, "checkpoint": str(checkpoint), "data": data, "seed": seed, "time": time.time(),
              "genome_key": genome.key()}
    path = checkpoint.parent / METRICS_FILE
    append_jsonl(path, record)
    typer.echo(f"{spec.name} @{genome.resolution}px = {result['value']:.4f}  ({result['time_s']:.1f}s,"
               f" appended to {path})")
    typer.echo(json.dumps(record, sort_keys=True))


def _colour(channels: int) -> str:
    return {1: "greyscale (1-channel)", 3: "colour (3-channel)"}.get(channels, f"{channels}-channel")


@app.command("ref")
def ref_command(
    data: opts.Data = None,
    resolution: Annotated[int | None, typer.Option(help="Resolution the candidates are evaluated at")] = None,
    metric: Annotated[str, typer.Option(help="Metric whose reference to compute, e.g. fid10k")] = "fid10k",
    inception_weights: opts.InceptionWeights = None,
    cache_dir: opts.CacheDir = None,
    device: opts.Device = None,
    batch_size: Annotated[int, typer.Option(help="Images per extractor batch")] = 64,
    threads: opts.Threads = None,
    progress: opts.Progress = True,
) -> None:
    """Precompute (and cache) the real data's reference statistics for a metric. --data and --resolution say
    which data, at which resolution."""
    if data is None or resolution is None:
        raise ConfigError("ref needs --data SPEC and --resolution N (the data and the resolution to cache"
                          " statistics for)")
    opts.setting_flag(batch_size, "--batch-size", "eval_batch_size")
    spec: Any = opts.metric(metric)
    opts.device(device or "auto", allow_auto=True)
    opts.resolution(resolution)
    if threads is not None:
        opts.setting_flag(threads, "--threads", "threads")
    from .._util.threads import set_threads
    from ..data import open_dataset
    from ..metrics import default_cache_dir, fid_reference, get_inception, reference_features
    from ..training.trainer import pick_device

    if not (spec.needs_inception and spec.real == "subset"):  # only Inception's view of real images is cached
        why = "it uses no real data" if spec.real == "none" else "it draws fresh real samples at every evaluation"
        typer.echo(f"{spec.name}: nothing to precompute ({why})")
        return
    set_threads(threads)
    device = opts.resolve_device(device)
    pick_device(device)
    real = open_dataset(data)
    if real.resolution < resolution:
        raise DatasetError(f"{real.name}: stored at {real.resolution}px, cannot serve {resolution}px")
    extractor = get_inception(inception_weights, device)
    if spec.kind == "fid":
        ref = fid_reference(real, resolution, spec.num_real, extractor, extractor.key,
                            cache_dir=cache_dir or default_cache_dir(), batch_size=batch_size, progress=progress)
        typer.echo(f"reference for {spec.name} on {real.name} @{resolution}px ({ref.num_real} images):"
                   f" {ref.source}, {ref.path}")
        return
    feats = reference_features(real, resolution, spec.num_real, extractor, extractor.key,
                               cache_dir=cache_dir or default_cache_dir(), batch_size=batch_size, progress=progress)
    typer.echo(f"reference features for {spec.name} on {real.name} @{resolution}px ({feats.num_real} images):"
               f" {feats.source}, {feats.path or 'in memory'}")


@app.command("export-lsun")
def export_lsun_command(
    lmdb_path: Annotated[Path, typer.Argument(metavar="LMDB", help="LSUN LMDB folder, e.g. bedroom_train_lmdb")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Output .npy (use it as data=npz:OUT)")],
    max_images: Annotated[int | None, typer.Option(help="Export only the first N entries")] = None,
    resolution: Annotated[int, typer.Option(help="Side of the exported images")] = 256,
    progress: opts.Progress = True,
) -> None:
    """Decode an LSUN LMDB once into a memory-mapped .npy. It trains far faster than decoding JPEGs."""
    if max_images is not None:
        opts.bounded(max_images, "--max-images", 1, 2**63 - 1)
    opts.resolution(resolution)
    opts.writable_folder(out.parent, "export-lsun: cannot write", out)
    from ..data import export_lsun

    path = export_lsun(lmdb_path, out, max_images=max_images, resolution=resolution, progress=progress)
    typer.echo(f"wrote {path}; use it with data=npz:{path}")
