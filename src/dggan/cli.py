"""Command line: ``dggan train | sample | genome | search | baseline | ls | eval | ref | report``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .actions import Action, GrowthLimits, InvalidActionError, apply_action
from .checkpoint import CheckpointError, load_checkpoint, load_generator
from .cli_common import fail
from .data.base import DatasetError
from .genome import Genome, GenomeError, constant_channels
from .images import save_grid
from .io import append_jsonl, atomic_write_json, atomic_write_text, new_run_dir
from .train import ConfigError, TrainConfig, Trainer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Dynamically Grown GANs: grow a GAN's architecture by search during training.")
genome_app = typer.Typer(no_args_is_help=True, help="Make and inspect genome JSON files.")
app.add_typer(genome_app, name="genome")

USER_ERRORS = (GenomeError, CheckpointError, DatasetError, ConfigError, InvalidActionError, FileNotFoundError)



def read_genome(path: Path) -> Genome:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GenomeError(f"{path}: cannot read genome file ({exc.strerror})") from None
    return Genome.from_json(text, source=str(path))


def open_data(spec: str):  # noqa: ANN201 (an ImageSource)
    from .data import open_dataset

    return open_dataset(spec)


@app.command()
def train(
    genome_file: Annotated[Path | None, typer.Option("--genome", help="Genome JSON (default: base genome)")] = None,
    from_checkpoint: Annotated[Path | None, typer.Option("--from", help="Continue a checkpoint's training")] = None,
    parent: Annotated[Path | None, typer.Option(help="Grow a child from this checkpoint (needs --action)")] = None,
    action: Annotated[str | None, typer.Option(help="With --parent: grow_res, grow_g:k3:f256 or grow_d:k7:f64")] = None,
    new_layers: Annotated[str, typer.Option(help="With --parent: grown convs start 'random' or 'identity'")] = "random",
    data: Annotated[str, typer.Option(help="Dataset spec, e.g. synthetic, cifar10:/path, folder:/path")] = "synthetic",
    iterations: Annotated[int, typer.Option(help="Total training iterations")] = 300,
    batch_size: Annotated[int, typer.Option()] = 16,
    channels: Annotated[int, typer.Option(help="Width of every scale for the default base genome")] = 64,
    latent_size: Annotated[int, typer.Option()] = 128,
    max_resolution: Annotated[int, typer.Option(help="Largest scale the default genome's schedule covers")] = 32,
    lr: Annotated[float, typer.Option()] = 1e-3,
    fade_fraction: Annotated[float, typer.Option(help="Share of a grow_res child's iterations spent fading in")] = 0.5,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    bf16: Annotated[bool, typer.Option(help="bf16 autocast (CUDA only)")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (1 is faster on a busy machine)")] = None,
    run_dir: Annotated[Path, typer.Option(help="Folder that holds numbered run folders")] = Path("runs"),
    checkpoint_every: Annotated[int, typer.Option(help="Iterations between checkpoints (0: only at the end)")] = 0,
    log_every: Annotated[int, typer.Option()] = 50,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Train one genome (from scratch, from a checkpoint, or as a child of a checkpoint) into a new run folder."""
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    try:
        source = open_data(data)
        if from_checkpoint is not None:
            ckpt = load_checkpoint(from_checkpoint)
            trainer = Trainer.resume(ckpt, source, device=device)
            if iterations > trainer.config.iterations:
                trainer.config = TrainConfig.from_dict({**trainer.config.to_dict(), "iterations": iterations})
            desc = f"train-{ckpt.genome.key()}-resumed"
        else:
            config = TrainConfig(iterations=iterations, batch_size=batch_size, lr=lr, fade_fraction=fade_fraction,
                                 device=device, bf16=bf16, seed=seed, log_every=log_every)
            if parent is not None:
                if action is None:
                    raise ConfigError("--parent needs --action (grow_res, grow_g:k3:f256, grow_d:k7:f64)")
                parent_ckpt = load_checkpoint(parent)
                child = apply_action(parent_ckpt.genome, Action.parse(action),
                                     GrowthLimits(target_resolution=max(parent_ckpt.genome.channel_map)))
                trainer = Trainer.child_of(parent_ckpt, child, config, source, new_layers=new_layers)  # type: ignore[arg-type]
            else:
                genome = (read_genome(genome_file) if genome_file else
                          Genome.base(latent_size=latent_size, channels=constant_channels(max_resolution, channels)))
                trainer = Trainer(genome, config, source)
            desc = f"train-{trainer.genome.key()}"
    except USER_ERRORS as exc:
        raise fail(str(exc)) from None

    out = new_run_dir(run_dir, desc)
    atomic_write_json(out / "options.json", {
        "command": "train", "data": data, "train": trainer.config.to_dict(),
        "from": str(from_checkpoint) if from_checkpoint else None, "parent": str(parent) if parent else None,
        "action": action, "genome": trainer.genome.to_dict()})
    atomic_write_text(out / "genome.json", trainer.genome.to_json() + "\n")
    if trainer.inheritance:
        atomic_write_json(out / "inheritance.json", {k: v.to_dict() for k, v in trainer.inheritance.items()})
    typer.echo(f"run folder: {out}\n{trainer.genome.summary()}")
    ckpt_path = out / "checkpoint.safetensors"

    def grid_at(iteration: int) -> None:
        save_grid(trainer.sample(64, seed=0), out / f"samples-{iteration:06d}.png")

    result = trainer.train(progress=progress, on_log=lambda row: append_jsonl(out / "stats.jsonl", row),
                           checkpoint_path=ckpt_path, checkpoint_every=checkpoint_every, on_checkpoint=grid_at)
    trainer.save(ckpt_path)
    save_grid(trainer.sample(64, seed=0), out / "samples.png")
    atomic_write_json(out / "result.json", result.to_dict())
    typer.echo(f"{result.status} after {result.iterations} iterations in {result.seconds:.1f}s"
               + (f" ({result.reason})" if result.reason else ""))
    typer.echo(f"checkpoint: {ckpt_path}\nsamples: {out / 'samples.png'}")
    if result.status != "done":
        raise typer.Exit(code=1)


@app.command()
def sample(
    checkpoint: Path,
    n: Annotated[int, typer.Option("--n", help="Number of images")] = 64,
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("grid.png"),
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option()] = "cpu",
) -> None:
    """Write a grid of samples from a checkpoint's EMA generator."""
    import torch

    if n < 1:
        raise fail("--n must be >= 1")
    try:
        genome, net = load_generator(checkpoint, device=device)
    except USER_ERRORS as exc:
        raise fail(str(exc)) from None
    z = torch.randn(n, genome.latent_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = torch.cat([net(zb.to(device)).float().cpu() for zb in z.split(64)])
    save_grid(images, out)
    typer.echo(f"wrote {n} samples ({genome.resolution}px) to {out}")


@genome_app.command("base")
def genome_base(
    latent_size: Annotated[int, typer.Option()] = 128,
    base_resolution: Annotated[int, typer.Option()] = 8,
    max_resolution: Annotated[int, typer.Option()] = 32,
    channels: Annotated[int | None, typer.Option(help="One width for every scale (default: ProgGAN schedule)")] = None,
    out: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Print (or write) a base genome: ProgGAN's network at the base resolution."""
    from .genome import proggan_channels

    try:
        chans = constant_channels(max_resolution, channels) if channels else proggan_channels(max_resolution)
        genome = Genome.base(latent_size=latent_size, base_resolution=base_resolution, channels=chans)
    except GenomeError as exc:
        raise fail(str(exc)) from None
    _emit_genome(genome, out)


@genome_app.command("grow")
def genome_grow(
    genome_file: Path,
    actions: Annotated[list[str], typer.Argument(help="Actions in order: grow_res, grow_g:k3:f256, grow_d:k7:f64")],
    out: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Apply growth actions to a genome file."""
    try:
        genome = read_genome(genome_file)
        limits = GrowthLimits(target_resolution=max(genome.channel_map))
        for text in actions:
            genome = apply_action(genome, Action.parse(text), limits)
    except USER_ERRORS as exc:
        raise fail(str(exc)) from None
    _emit_genome(genome, out)


@genome_app.command("show")
def genome_show(genome_file: Path) -> None:
    """One-line summary and parameter counts of a genome file."""
    try:
        genome = read_genome(genome_file)
    except USER_ERRORS as exc:
        raise fail(str(exc)) from None
    typer.echo(genome.summary())
    typer.echo(json.dumps({"key": genome.key(), "g_params": genome.g_params(), "d_params": genome.d_params()}))


def _emit_genome(genome: Genome, out: Path | None) -> None:
    if out is None:
        typer.echo(genome.to_json())
    else:
        atomic_write_text(out, genome.to_json() + "\n")
        typer.echo(f"{genome.summary()}\nwrote {out}")


def _register_extensions() -> None:
    from . import cli_eval, cli_report, cli_search

    cli_search.register(app)
    cli_eval.register(app)
    cli_report.register(app)


_register_extensions()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
