"""``dggan train`` (one genome, from scratch, continued, or as a child) and ``dggan sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import CheckpointError, ConfigError
from . import options as opts
from .app import app


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a folder holding one (a run folder's ``best/``, a candidate's folder). A path that
    does not exist is refused here, before any other question (which data, which device) is asked about it."""
    from ..runs import CHECKPOINT_NAME

    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or folder; pass a .safetensors file or a folder"
                              f" holding a {CHECKPOINT_NAME} (e.g. RUN/best)")
    if path.is_dir():
        inside = path / CHECKPOINT_NAME
        if inside.is_file():
            return inside
        nested = sorted(path.glob(f"*/{CHECKPOINT_NAME}"))
        hint = f"; did you mean {nested[0]}?" if nested else ""
        raise CheckpointError(f"{path} is a folder without a {CHECKPOINT_NAME}{hint}")
    return path


def _data_for(ckpt: Any, data: str | None) -> str:
    """The dataset to continue a checkpoint on: the one it recorded, unless ``--data`` says otherwise."""
    recorded = ckpt.state.get("data")
    if data is None:
        if recorded is None:
            raise ConfigError(f"{ckpt.path} does not record its dataset (written by an older dggan);"
                              " pass --data SPEC to say which data to train on")
        return str(recorded)
    if recorded is not None and data != recorded:
        typer.echo(f"note: {ckpt.path.name} was trained on {recorded!r}; continuing on {data!r} as asked", err=True)
    return data


def _runs_parent(run_dir: Path | None) -> bool:
    """Whether ``--run-dir`` is, as it was before, a folder of numbered runs: an existing folder that is not empty.
    Old scripts keep working (with a warning); a new or empty folder is the run folder itself, as for search."""
    if run_dir is None:
        return False
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file; name a new or empty folder for the run")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        typer.echo(f"warning: --run-dir {run_dir} is not empty: making a numbered run folder inside it, as dggan"
                   " train did before; --run-dir now names the run folder itself (new or empty), as for dggan search",
                   err=True)
        return True
    return False


@app.command()
def train(
    genome_file: Annotated[Path | None, typer.Option("--genome", help="Genome JSON (default: base genome)")] = None,
    from_checkpoint: Annotated[Path | None, typer.Option("--from", help="Continue a checkpoint's training"
                                                                         " (a file or a folder holding one)")] = None,
    parent: Annotated[Path | None, typer.Option(help="Grow a child from this checkpoint (needs --action)")] = None,
    action: Annotated[str | None, typer.Option(help="With --parent: grow_res, grow_g:k3:f256 or grow_d:k7:f64")] = None,
    new_layers: Annotated[str, typer.Option(help="With --parent: grown convs start 'random' or 'identity'")] = "random",
    data: opts.Data = None,
    iterations: Annotated[int, typer.Option(help="Total training iterations (with --from: train up to this)")] = 300,
    batch_size: Annotated[int, typer.Option(help="Images per batch")] = 16,
    channels: Annotated[int | None, typer.Option(help="Width of every scale for the default base genome"
                                                      " [default: 64]")] = None,
    latent_size: Annotated[int | None, typer.Option(help="Size of z for the default base genome"
                                                         " [default: 128]")] = None,
    max_resolution: Annotated[int | None, typer.Option(help="Largest scale the default genome's schedule covers"
                                                            " [default: 32]")] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-3,
    loss: Annotated[str, typer.Option(help="The objective, by its registered name: wgan-gp (the paper's) or r1"
                                           " (non-saturating logistic with lazy R1)")] = "wgan-gp",
    loss_options: Annotated[str | None, typer.Option(help="The loss's options as JSON, e.g. '{\"gamma\": 1}'"
                                                          " for r1")] = None,
    plugins: Annotated[list[str] | None, typer.Option(
        "--plugin", metavar="MODULE",
        help="Import this module first (on PYTHONPATH or installed): the losses and metrics it registers can then"
             " be named; repeat for several. The checkpoint records it")] = None,
    fade_fraction: Annotated[float, typer.Option(help="Share of a grow_res child's iterations spent fading in")] = 0.5,
    device: opts.Device = None,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast (CUDA only)")] = False,
    cuda_graphs: Annotated[bool, typer.Option(help="Replay each iteration as a CUDA graph (CUDA only)")] = True,
    graph_self_check: Annotated[bool, typer.Option(help="Check each new CUDA graph against the same iteration run"
                                                        " eagerly, once (CUDA only)")] = True,
    seed: opts.Seed = None,
    threads: opts.Threads = None,
    run_dir: opts.RunDir = None,
    checkpoint_every: Annotated[int, typer.Option(help="Iterations between checkpoints (0: only at the end)")] = 0,
    log_every: Annotated[int, typer.Option(help="Iterations between lines of stats.jsonl")] = 50,
    progress: opts.Progress = True,
) -> None:
    """Train one genome (from scratch, from a checkpoint, or as a child of a checkpoint). Into a new run folder:
    --run-dir, or a new runs/NNNNN-train-KEY. Data: synthetic, or with --from/--parent the checkpoint's.
    The seed (default 0) draws the weights, batches and noise."""
    if action is not None and parent is None:
        raise ConfigError("--action needs --parent CHECKPOINT (the model to grow)")
    if parent is not None and action is None:
        raise ConfigError("--parent needs --action (grow_res, grow_g:k3:f256, grow_d:k7:f64)")
    if from_checkpoint is not None and parent is not None:
        raise ConfigError("use either --from (continue a run) or --parent (grow a child), not both")
    if checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0 (0: only at the end), got {checkpoint_every}")
    # Flags that would be silently ignored are refused: the genome comes from one place only.
    shape_flags = [f for f, v in (("--channels", channels), ("--latent-size", latent_size),
                                  ("--max-resolution", max_resolution)) if v is not None]
    if genome_file is not None and (from_checkpoint is not None or parent is not None):
        raise ConfigError("--genome describes a new network; --from and --parent take theirs from the checkpoint:"
                          " use one of them")
    if shape_flags and (genome_file is not None or from_checkpoint is not None or parent is not None):
        source = "--genome" if genome_file is not None else "the checkpoint"
        raise ConfigError(f"{', '.join(shape_flags)} shape the default base genome; with {source} the network is"
                          f" {source}'s: drop {', '.join(shape_flags)}")
    channels = 64 if channels is None else channels
    latent_size = 128 if latent_size is None else latent_size
    max_resolution = 32 if max_resolution is None else max_resolution
    from .._util.files import JSONFileError, parse_json

    try:
        options = {} if loss_options is None else parse_json(loss_options)
    except JSONFileError as exc:
        raise ConfigError(f"--loss-options: {exc}") from None
    if not isinstance(options, dict):
        raise ConfigError(f"--loss-options must be a JSON object such as '{{\"gamma\": 1}}', got {loss_options!r}")
    from .._util.plugins import import_plugins
    from ..training.loss import loss_class  # (no torch: the name is checked at once)

    import_plugins(plugins or [], "--plugin")  # before the loss's name is checked: a plugin may register it
    loss_class(loss)
    if data is not None and not data.strip():  # '' would otherwise fall back to the synthetic default
        raise ConfigError("--data is empty; give a dataset spec such as digits, synthetic or cifar10:PATH, or leave"
                          " it out")
    parent_of_runs = _runs_parent(run_dir)
    # Every flag and file is checked here, before torch loads (seconds), so a typo answers at once.
    opts.device(device or "auto", allow_auto=True)
    seed = int(opts.seed(0 if seed is None else seed))
    opts.setting_flag(new_layers, "--new-layers", "new_layer_init")
    opts.resolution(max_resolution, "--max-resolution")
    # The ranges are the settings' own (their field metadata): one definition for --set, configs and these flags.
    for flag, value, name in (("--iterations", iterations, "iterations"), ("--batch-size", batch_size, "batch_size"),
                              ("--latent-size", latent_size, "latent_size"), ("--log-every", log_every, "log_every"),
                              ("--threads", threads, "threads"), ("--lr", lr, "lr"),
                              ("--fade-fraction", fade_fraction, "fade_fraction")):
        if value is not None:
            opts.setting_flag(value, flag, name)
    from ..model.genome import MAX_WIDTH

    opts.bounded(channels, "--channels", 1, MAX_WIDTH)  # a genome's width, not a setting
    opts.bounded(checkpoint_every, "--checkpoint-every", *opts.setting_range("checkpoint_every"))
    opts.writable_folder(run_dir or Path("runs"), "--run-dir")
    from_checkpoint = resolve_checkpoint(from_checkpoint) if from_checkpoint is not None else None
    parent = resolve_checkpoint(parent) if parent is not None else None
    from ..model.genome import Genome

    genome_from_file = Genome.from_file(genome_file) if genome_file else None
    from .._util.files import atomic_write_json
    from .._util.threads import set_threads
    from ..data import open_dataset
    from ..model.actions import Action, GrowthLimits, apply_action  # torch loads here, after the arguments are checked
    from ..model.genome import constant_channels
    from ..runs import ModelFolder, new_run_dir
    from ..training.checkpoint import load_checkpoint
    from ..training.run import ModelRun, build_trainer
    from ..training.trainer import TrainConfig

    chosen = set_threads(threads)
    device = opts.resolve_device(device)
    if from_checkpoint is not None:
        ckpt = load_checkpoint(from_checkpoint)
        data = _data_for(ckpt, data)
        at = ckpt.state.get("iteration", 0)  # (checked by load_checkpoint)
        if iterations <= at:
            raise ConfigError(f"{ckpt.path} is at iteration {at}; pass --iterations above it (the total to train"
                              " up to)")
        runtime = {"device": device, "cuda_graphs": cuda_graphs, "graph_self_check": graph_self_check}
        trainer = build_trainer(open_dataset(data), resume=ckpt, until=iterations, runtime=runtime)
        desc = f"train-{ckpt.genome.key()}-resumed"
    else:
        config = TrainConfig(iterations=iterations, batch_size=batch_size, lr=lr, fade_fraction=fade_fraction,
                             device=device, bf16=bf16, seed=seed, log_every=log_every, cuda_graphs=cuda_graphs,
                             graph_self_check=graph_self_check, loss=loss, loss_options=options,
                             plugins=tuple(plugins or ()))
        parent_ckpt = None
        if parent is not None:
            parent_ckpt = load_checkpoint(parent)
            data = _data_for(parent_ckpt, data)
            genome = apply_action(parent_ckpt.genome, Action.parse(action or ""),
                                  GrowthLimits(target_resolution=max(parent_ckpt.genome.channel_map)))
            source = open_dataset(data)
        else:
            data = data or "synthetic"
            source = open_dataset(data)
            genome = (genome_from_file or
                      Genome.base(latent_size=latent_size, channels=constant_channels(max_resolution, channels),
                                  image_channels=source.channels))
        trainer = build_trainer(source, config, genome=genome, parent=parent_ckpt,
                                new_layers=new_layers)  # type: ignore[arg-type]
        desc = f"train-{trainer.genome.key()}"
    start_iteration = trainer.iteration

    if run_dir is None or parent_of_runs:
        out = new_run_dir(run_dir or "runs", desc)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        out = run_dir
    run = ModelRun(ModelFolder(out), trainer)  # the one training driver, as for every candidate of a search
    folder = run.folder
    atomic_write_json(folder.options, {
        "command": "train", "data": data, "train": trainer.config.to_dict(), "threads": chosen,
        "from": str(from_checkpoint) if from_checkpoint else None, "parent": str(parent) if parent else None,
        "action": action, "genome": trainer.genome.to_dict()})
    run.begin()  # genome.json, inheritance.json
    typer.echo(f"run folder: {out}\n{trainer.genome.summary()}\ntorch threads: {chosen}")
    result = run.train(progress=progress, checkpoint_every=checkpoint_every, grids=64)  # a grid by each checkpoint
    ckpt_path = run.save()
    run.save_samples(64)
    atomic_write_json(folder.result, result.to_dict())
    span = f" ({start_iteration} -> {result.iterations})" if start_iteration else ""
    typer.echo(f"{result.status}: trained {result.trained} iterations{span} in {result.seconds:.1f}s"
               + (f" ({result.reason})" if result.reason else ""))
    typer.echo(f"checkpoint: {ckpt_path}\nsamples: {folder.samples}")
    if result.status != "done":
        raise typer.Exit(code=1)


@app.command()
def sample(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT",
                                               help="Checkpoint file, or a folder holding one (e.g. RUN/best)")],
    n: Annotated[int, typer.Option("--n", help=f"Number of images (at most {opts.MAX_SAMPLES:,})")] = 64,
    out: Annotated[Path, typer.Option(help="Image file to write; its suffix names the format (.png, .jpg, .webp,"
                                           " .bmp, .tif)")] = Path("grid.png"),
    seed: opts.Seed = None,
    device: opts.Device = None,
) -> None:
    """Write a grid of samples from a checkpoint's EMA generator. The seed (default 0) draws the latents."""
    import io

    opts.sample_count(n)
    seed = int(opts.seed(0 if seed is None else seed))
    opts.device(device or "auto", allow_auto=True)
    fmt = opts.image_out(out)
    checkpoint = resolve_checkpoint(checkpoint)
    from .._util.files import atomic_write_bytes
    from .._util.images import grid_image
    from ..model.sampling import sample_images
    from ..training.checkpoint import load_checkpoint, load_generator
    from ..training.trainer import pick_device

    device = opts.resolve_device(device)
    pick_device(device)
    meta = load_checkpoint(checkpoint, tensors=False).genome
    opts.grid_fits(n, meta.resolution, meta.image_channels)  # before any image is drawn
    genome, net = load_generator(checkpoint, device=device)
    buf = io.BytesIO()
    grid_image(sample_images(net, n, seed)).save(buf, format=fmt)
    atomic_write_bytes(out, buf.getvalue())
    typer.echo(f"wrote {n} samples ({genome.resolution}px) to {out} ({fmt})")
