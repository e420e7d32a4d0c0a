"""The checks every command runs on its own flags, shared so that ``eval``, ``sample``, ``train``, ``ref`` and
``search`` accept and refuse the same values with the same one-line error. Torch-free (each check runs before
the 10-30 s torch start-up) and raising ``ConfigError`` (exit status 2) naming the flag and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .._util.settings import Spec, check_device_name, spec_of
from ..errors import ConfigError
from ..metrics.registry import metric_spec

# Sample grids: a grid beyond 16,384 images (128 x 128) is no picture; the memory check below bounds the rest.
MAX_SAMPLES = 16_384
MAX_GRID_BYTES = 2 * 2**30  # the float grid before it becomes a PNG/JPEG
# What `sample --out` can write, by suffix (Pillow's format names).
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                 ".tiff": "TIFF"}


def device(value: str, flag: str = "--device", allow_auto: bool = False) -> str:
    """cpu, cuda or cuda:N (and auto where the command picks one): anything else is refused here, never passed to
    torch (whose error is a traceback)."""
    return check_device_name(value, flag, allow_auto)


# ---------------------------------------------------------------------- flags that set a setting
# A flag that sets what a setting sets (--seed, --iterations, --threads, --new-layers...) reads the setting's range
# and choices from its field's metadata (dggan._util.settings.setting), never a copy: `--seed -1` and
# `--set seed=-1` are refused alike.
def setting_spec(name: str) -> Spec:
    """What the setting ``name`` accepts: its field of SearchConfig, the settings users type (the training knobs
    are TrainConfig's own fields there; the seed the 32-bit one), else of TrainConfig (log_every). Torch-free,
    imported when a flag is checked. KeyError: no such setting, or one without a range or choices."""
    from ..search.config import SearchConfig
    from ..training.config import TrainConfig

    try:
        found = spec_of(SearchConfig, name)
    except KeyError:
        found = spec_of(TrainConfig, name)
    if found is None:
        raise KeyError(f"the setting {name!r} has no range or choices")
    return found


def setting_range(name: str) -> tuple[float, float]:
    """``(low, high)`` of the setting ``name`` (-inf/inf where unbounded), e.g. ``bounded(v, flag,
    *setting_range("iterations"))``."""
    return setting_spec(name).range()


def setting_choices(name: str) -> tuple[str, ...]:
    """The values the setting ``name`` takes (the registered names now, for a registry's)."""
    allowed = setting_spec(name).allowed()
    if allowed is None:
        raise KeyError(f"the setting {name!r} has no choices")
    return allowed


def setting_flag(value: Any, flag: str, name: str) -> Any:
    """``flag`` checked against everything the setting ``name`` accepts (range, power of two, choices), in the
    words ``--set {name}=...`` gets, naming the flag: "--seed must be >= 0, got -1"."""
    spec = setting_spec(name)
    allowed = spec.allowed()
    if allowed is not None:
        return choice(value, flag, allowed)
    spec.validate(flag, value)
    return value


def seed(value: int, flag: str = "--seed") -> int:
    return setting_flag(value, flag, "seed")


def bounded(value: int | float, flag: str, low: float, high: float) -> int | float:
    """A flag that sets no setting (--n, --samples), in the same words: "--n must be <= 16,384, got 20,000"."""
    Spec(low=low, high=high).validate(flag, value)
    return value


def resolution(value: int, flag: str = "--resolution", low: int = 4) -> int:
    """A power of two in [low, 65,536]: a genome's bounds (model.genome), which the resolution settings take too."""
    from ..model.genome import MAX_RESOLUTION

    Spec(low=low, high=MAX_RESOLUTION, power_of_two=True).validate(flag, value)
    return value


def choice(value: str, flag: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (a setting's: ``setting_choices(name)``), quoted in the message."""
    if value not in allowed:
        raise ConfigError(f"{flag} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def metric(value: str, flag: str = "--metric") -> object:
    """The metric's spec (``parse_metric``), its sample count bounded."""
    return metric_spec(value, flag)


def sample_count(n: int, flag: str = "--n") -> int:
    return int(bounded(n, flag, 1, MAX_SAMPLES))


def grid_fits(n: int, resolution: int, channels: int, flag: str = "--n") -> None:
    """A grid of ``n`` images (small ones enlarged to 64 px to be seen) fits in memory, checked before sampling."""
    side = max(resolution, 64) + 2
    size = n * channels * side * side * 4
    if size > MAX_GRID_BYTES:
        most = max(1, MAX_GRID_BYTES // (channels * side * side * 4))
        raise ConfigError(f"{flag} {n:,} images of {resolution}px make a {size / 2**30:.1f} GiB grid; at most"
                          f" {most:,} at this resolution")


def image_out(path: Path, flag: str = "--out") -> str:
    """The Pillow format ``path``'s suffix names; a folder, an unknown suffix or a folder that cannot be made or
    written is refused, naming ``path``."""
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    file_out(path, flag, example="grid.png")
    if fmt is None:
        raise ConfigError(f"{flag} {path}: unknown image type {path.suffix or '(no suffix)'!r}; end the name with"
                          f" one of {', '.join(IMAGE_FORMATS)}")
    return fmt


def file_out(path: Path, flag: str = "--out", example: str = "out.json") -> None:
    """A file a command will write, checked before any work: not a folder, and its folder can be made and written."""
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; name the file, e.g. {flag} {path / example}")
    writable_folder(path.parent, flag, path)


def writable_folder(folder: Path, flag: str, named: Path | None = None) -> None:
    """``folder`` exists or can be made (its nearest existing parent is a folder), and can be written."""
    from ..runs import unwritable

    problem = unwritable(folder)
    if problem:
        raise ConfigError(f"{flag} {named if named is not None else folder}: {problem}; choose a writable path")


# ---------------------------------------------------------------------- flags shared between commands
# One definition per flag that several commands take, so it means the same everywhere (tests/test_cli.py walks
# every command and checks it): its help, type and default. Each command's docstring says what a default of
# None resolves to there.
Device = Annotated[str | None, typer.Option(
    metavar="DEVICE", help="auto (a GPU when there is one, else the CPU), cpu, cuda or cuda:N [default: auto, or a"
                           " search's settings]")]
Seed = Annotated[int | None, typer.Option(
    metavar="SEED", help="Seed of everything the command draws at random [default: 0, or a search's settings]")]
Threads = Annotated[int | None, typer.Option(
    metavar="N", help="torch and BLAS CPU threads [default: chosen from the free cores, or a search's settings]")]
RunDir = Annotated[Path | None, typer.Option(
    metavar="RUN", help="The run folder to make: new or empty [default: a new numbered folder under runs/]")]
Data = Annotated[str | None, typer.Option(
    metavar="SPEC", help="Dataset spec: digits, synthetic, cifar10:PATH, lsun:PATH, folder:PATH or npz:PATH, options"
                         " after a colon (synthetic:n=2048,res=16) [default: the settings' or the checkpoint's]")]
Progress = Annotated[bool, typer.Option(help="Show progress: bars on a terminal, plain lines in a log")]


def executor_help() -> str:
    """``--executor``'s help, from the registry: each executor's name and where it runs the candidates."""
    from ..execution.executors import executor_kinds

    kinds = [f"{kind.name} ({kind.help})" for kind in executor_kinds().values()]
    return f"Where candidates run: {', '.join(kinds[:-1])} or {kinds[-1]}; a plugin may register more"


Executor = Annotated[str | None, typer.Option(metavar="NAME", help=executor_help())]
Workers = Annotated[int | None, typer.Option(metavar="N", help="Worker processes (local) / CPUs (ray)")]
Sets = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override a setting: KEY=VALUE (value as JSON or plain text), e.g. --set top_k=8")]
PRESET_NAMES = ("cifar10", "demo", "lsun-bedroom", "planted", "shapes")  # search.config.PRESETS (a test checks)
Preset = Annotated[str | None, typer.Option(
    "--preset", metavar="NAME", help=f"Settings preset: one of {', '.join(PRESET_NAMES)} [default: demo]")]
ConfigFile = Annotated[Path | None, typer.Option("--config", metavar="FILE",
                                                 help="Settings JSON file (instead of a preset)")]
CacheDir = Annotated[Path | None, typer.Option(
    metavar="DIR", help="Reference-statistics cache [default: $DGGAN_CACHE or ~/.cache/dggan]")]
InceptionWeights = Annotated[Path | None, typer.Option(
    metavar="FILE", help="torch-fidelity's Inception weights file, for FID, IS and KID [default:"
                         " $DGGAN_INCEPTION_WEIGHTS]")]

# Flags that several commands take with a different meaning, and why; any other shared flag must be one of the
# definitions above (tests/test_cli.py).
DIFFERENT = {
    "--batch-size": "train: the training batch; eval and ref: images per scoring batch",
    "--channels": "train: its base genome's width (64); genome base: ProgGAN's schedule unless given",
    "--latent-size": "the base genome's z size in both, with each command's own default",
    "--max-resolution": "the base genome's largest scale in both, with each command's own default",
    "--metric": "eval: the metric to score (swd1k); ref: the metric whose reference to cache (fid10k)",
    "--out": "a file for sample and genome, a folder for report",
    "--resolution": "ref: the resolution scored at; export-lsun: the side of the exported images",
    "--samples": "tables: the sample count of every metric; report: images per sample grid",
    "--json": "JSON output in both: ls prints an array of candidates, status an object",
}
SHARED = {"--device": Device, "--seed": Seed, "--threads": Threads, "--run-dir": RunDir, "--data": Data,
          "--progress": Progress, "--executor": Executor, "--workers": Workers, "--set": Sets, "--preset": Preset,
          "--config": ConfigFile, "--cache-dir": CacheDir, "--inception-weights": InceptionWeights}


def resolve_device(value: str | None) -> str:
    """``--device`` after torch has loaded: None and auto become cuda when there is a GPU, else cpu."""
    from ..training.devices import resolve_device as decide  # (the one decision)

    return decide(value or None, "--device")
