"""``dggan genome base | grow | show``: make and inspect genome JSON files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as opts
from .app import DgganGroup, DgganTyper, app

genome_app = DgganTyper(cls=DgganGroup, no_args_is_help=True, help="Make and inspect genome JSON files.")
app.add_typer(genome_app, name="genome")


@genome_app.command("base")
def genome_base(
    latent_size: Annotated[int, typer.Option(help="Size of z")] = 128,
    base_resolution: Annotated[int, typer.Option(help="d0: the resolution the search starts at")] = 8,
    max_resolution: Annotated[int, typer.Option(help="Largest scale the channel schedule covers")] = 32,
    channels: Annotated[int | None, typer.Option(help="One width for every scale (default: ProgGAN schedule)")] = None,
    image_channels: Annotated[int, typer.Option(help="3 for colour, 1 for greyscale")] = 3,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of printing it")] = None,
) -> None:
    """Print (or write) a base genome. ProgGAN's network at the base resolution."""
    from ..model.genome import MAX_WIDTH, Genome, constant_channels, proggan_channels
    from . import options as opts

    opts.resolution(max_resolution, "--max-resolution")
    if channels is not None:
        opts.bounded(channels, "--channels", 1, MAX_WIDTH)  # a genome's width, no setting

    chans = constant_channels(max_resolution, channels) if channels else proggan_channels(max_resolution)
    _emit(Genome.base(latent_size=latent_size, base_resolution=base_resolution, channels=chans,
                      image_channels=image_channels), out)


@genome_app.command("grow")
def genome_grow(
    genome_file: Annotated[Path, typer.Argument(metavar="GENOME", help="Genome JSON file")],
    actions: Annotated[list[str], typer.Argument(metavar="ACTION...",
                                                 help="Actions in order: grow_res, grow_g:k3:f256, grow_d:k7:f64")],
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of printing it")] = None,
) -> None:
    """Apply growth actions to a genome file."""
    from ..model.actions import Action, GrowthLimits, apply_action
    from ..model.genome import Genome

    genome = Genome.from_file(genome_file)
    limits = GrowthLimits(target_resolution=max(genome.channel_map))
    for text in actions:
        genome = apply_action(genome, Action.parse(text), limits)
    _emit(genome, out)


@genome_app.command("show")
def genome_show(genome_file: Annotated[Path, typer.Argument(metavar="GENOME", help="Genome JSON file")]) -> None:
    """One-line summary and parameter counts of a genome file."""
    import json

    from ..model.genome import Genome

    genome = Genome.from_file(genome_file)
    typer.echo(genome.summary())
    typer.echo(json.dumps({"key": genome.key(), "g_params": genome.g_params(), "d_params": genome.d_params()}))


def _emit(genome: object, out: Path | None) -> None:
    from .._util.files import atomic_write_text

    if out is None:
        typer.echo(genome.to_json())  # type: ignore[attr-defined]
    else:
        opts.file_out(out, example="base-genome.json")
        atomic_write_text(out, genome.to_json() + "\n")  # type: ignore[attr-defined]
        typer.echo(f"{genome.summary()}\nwrote {out}")  # type: ignore[attr-defined]
