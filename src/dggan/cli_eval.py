"""CLI commands ``dggan eval`` (score a checkpoint) and ``dggan ref`` (precompute reference statistics).

``register(app)`` adds both to the main Typer app.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from .cli_common import fail
from .io import append_jsonl

METRICS_FILE = "metrics.jsonl"


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[Any, torch.nn.Module]:
    """(genome, EMA generator in eval mode) of a checkpoint; a module-level name so tests can replace it."""
    from .checkpoint import load_generator as load

    return load(path, device=device)



def _metrics_path(checkpoint: Path) -> Path:
    return (checkpoint if checkpoint.is_dir() else checkpoint.parent) / METRICS_FILE


def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file (its folder receives metrics.jsonl)")],
    metric: Annotated[str, typer.Option(help="fid10k, fid50k, is50k, swd16k, or swd1k...")] = "fid10k",
    data: Annotated[str | None, typer.Option(help="Real data spec, e.g. cifar10:/path (not for is*)")] = None,
    inception_weights: Annotated[Path | None, typer.Option(help="Inception weights file (FID/IS)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Reference-statistics cache (default $DGGAN_CACHE"
                                                        " or ~/.cache/dggan)")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Images per generator/extractor batch")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the latents (and of SWD's sampling)")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Score a checkpoint's EMA generator at its resolution and append the result to metrics.jsonl."""
    from .data import open_dataset
    from .metrics import default_cache_dir, evaluate, parse_metric

    try:
        spec = parse_metric(metric)
        if data is None and spec.kind != "is":
            raise fail(f"{spec.name} compares against real images: pass --data SPEC (e.g. cifar10:/path)")
        genome, generator = load_generator(checkpoint, device=device)
        real = open_dataset(data) if data is not None else None
        latents = torch.Generator().manual_seed(seed)

        def generate(n: int) -> torch.Tensor:
            z = torch.randn(n, genome.latent_size, generator=latents).to(device)
            return generator(z)

        result = evaluate(spec.name, generate, real, genome.resolution,
                          cache_dir=cache_dir or default_cache_dir(), device=device,
                          inception_weights=inception_weights, batch_size=batch_size, seed=seed,
                          progress=progress)
    except (ValueError, OSError) as exc:  # dataset, metric, checkpoint and genome errors are ValueErrors
        raise fail(str(exc)) from None
    record = {**result, "checkpoint": str(checkpoint), "data": data, "seed": seed, "time": time.time(),
              "genome_key": genome.key()}
    path = _metrics_path(checkpoint)
    append_jsonl(path, record)
    typer.echo(f"{spec.name} @{genome.resolution}px = {result['value']:.4f}  ({result['time_s']:.1f}s,"
               f" appended to {path})")
    typer.echo(json.dumps(record, sort_keys=True))


def ref_command(
    data: Annotated[str, typer.Option(help="Real data spec, e.g. cifar10:/path")],
    resolution: Annotated[int, typer.Option(help="Resolution the candidates are evaluated at")],
    metric: Annotated[str, typer.Option(help="Metric whose reference to compute, e.g. fid10k")] = "fid10k",
    inception_weights: Annotated[Path | None, typer.Option(help="Inception weights file")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache folder (default $DGGAN_CACHE or"
                                                        " ~/.cache/dggan)")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Images per extractor batch")] = 64,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Precompute (and cache) the real data's reference statistics for a metric at a resolution."""
    from .data import DatasetError, open_dataset
    from .metrics import default_cache_dir, fid_reference, get_inception, parse_metric

    try:
        spec = parse_metric(metric)
        if spec.kind != "fid":
            why = "IS uses no real data" if spec.kind == "is" else "SWD draws fresh patches per evaluation"
            typer.echo(f"{spec.name}: nothing to precompute ({why})")
            return
        real = open_dataset(data)
        if real.resolution < resolution:
            raise DatasetError(f"{real.name}: stored at {real.resolution}px, cannot serve {resolution}px")
        extractor = get_inception(inception_weights, device)
        ref = fid_reference(real, resolution, spec.num_real, extractor, extractor.key,
                            cache_dir=cache_dir or default_cache_dir(), batch_size=batch_size,
                            progress=progress)
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"reference for {spec.name} on {real.name} @{resolution}px ({ref.num_real} images):"
               f" {ref.source}, {ref.path}")


def export_lsun_command(
    lmdb_path: Annotated[Path, typer.Argument(help="LSUN LMDB folder, e.g. bedroom_train_lmdb")],
    out: Annotated[Path, typer.Argument(help="Output .npy (use it as data=npz:OUT)")],
    max_images: Annotated[int | None, typer.Option(help="Export only the first N entries")] = None,
    resolution: Annotated[int, typer.Option(help="Side of the exported images")] = 256,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Decode an LSUN LMDB once into a memory-mapped .npy, which trains far faster than decoding JPEGs."""
    from .data import export_lsun

    try:
        path = export_lsun(lmdb_path, out, max_images=max_images, resolution=resolution, progress=progress)
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"wrote {path}; use it with data=npz:{path}")


def register(app: typer.Typer) -> None:
    """Add ``eval``, ``ref`` and ``export-lsun`` to ``app``."""
    app.command("eval")(eval_command)
    app.command("ref")(ref_command)
    app.command("export-lsun")(export_lsun_command)
