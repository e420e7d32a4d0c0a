"""``dggan search`` (Algorithm 1 and the final training), ``dggan baseline`` and ``dggan ls``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError, SearchError
from ..metrics.registry import MAX_METRIC_SAMPLES
from ..runs import RunLayout
from .app import app, error_exit

if TYPE_CHECKING:
    from ..search.config import SearchConfig
    from ..search.driver import SearchSummary

PRESET_NAMES = ("cifar10", "demo", "lsun-bedroom", "shapes")


def with_resume_hint(exc: SearchError) -> SearchError:
    """``exc`` with ``RESUME_HINT`` when it tells the user to --resume (the driver says so for any fault)."""
    from ..search.config import RESUME_HINT

    text = str(exc)
    return SearchError(f"{text} {RESUME_HINT}") if "--resume" in text and RESUME_HINT not in text else exc


def check_run_dir_fast(run_dir: Path | None, default_root: str = "runs") -> None:
    """The run folder is new, empty and writable: asked before torch loads, so a mistyped path answers at once."""
    from ..runs import check_new_run_dir, unwritable

    if run_dir is not None:
        check_new_run_dir(run_dir)
    elif problem := unwritable(default_root):
        raise SearchError(f"the default run folder {default_root}/ cannot be made: {problem}; pass --run-dir")


def build_config(preset_name: str | None, config_file: Path | None, overrides: list[str],
                 options: dict[str, Any]) -> SearchConfig:
    """Preset (default demo) or settings file, then ``--set KEY=VALUE`` overrides, then the shortcut options."""
    from .._util.settings import parse_assignment
    from ..search.config import SearchConfig, preset

    if preset_name and config_file:
        raise ConfigError("use either --preset or --config, not both")
    base = SearchConfig.from_file(config_file).to_dict() if config_file else preset(preset_name or "demo").to_dict()
    extra = dict(parse_assignment(item) for item in overrides)
    extra.update({k: v for k, v in options.items() if v is not None})
    return SearchConfig.from_dict({**base, **extra}, source="search settings")


def print_summary(summary: SearchSummary) -> None:
    """The run in numbers, then the result first-class: one sentence, the route, where the samples are."""
    from ..analysis.headline import duration, headline

    typer.echo(f"run folder: {summary.run_dir}")
    typer.echo(f"{summary.candidates} candidates over {summary.steps} steps; this session"
               f" {duration(summary.wall_seconds)} (the whole run {duration(summary.total_wall_seconds)};"
               f" training and scoring, baseline included, {duration(summary.train_seconds + summary.eval_seconds)})")
    if summary.graphs:
        typer.echo(summary.graphs)
    for line in headline(summary.run_dir).lines():
        typer.echo(line)


Progress = Annotated[bool, typer.Option(help="Show progress bars")]
Executor = Annotated[str | None, typer.Option(help="inprocess, local, ray or slurm")]
Workers = Annotated[int | None, typer.Option(help="Worker processes (local) / CPUs (ray)")]
Device = Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N")]
Data = Annotated[str | None, typer.Option(help="Dataset spec (as --set data=SPEC), e.g. digits, synthetic:n=2048,"
                                               "res=16, cifar10:/path")]
Sets = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override a setting: KEY=VALUE (value as JSON or plain text), e.g. --set top_k=8")]
Preset = Annotated[str | None, typer.Option("--preset", help=f"Settings preset: one of {', '.join(PRESET_NAMES)}"
                                                             " (default demo)")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="Settings JSON file (instead of a preset)")]


@app.command()
def search(
    preset_name: Preset = None,
    config_file: ConfigFile = None,
    run_dir: Annotated[Path | None, typer.Option(help="New run folder (default: runs/NNNNN-search-PRESET)")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the search in this run folder")] = None,
    overrides: Sets = None,
    data: Data = None,
    executor: Executor = None,
    workers: Workers = None,
    device: Device = None,
    print_config: Annotated[bool, typer.Option(help="Print the resolved settings and exit")] = False,
    progress: Progress = True,
) -> None:
    """Run the DGGAN search (Algorithm 1), then train the best architecture longer."""
    shortcuts = {"executor": executor, "workers": workers, "device": device, "data": data}
    summary = _search(preset_name, config_file, run_dir, resume, overrides, shortcuts, print_config, progress)
    if summary is None:
        return
    print_summary(summary)
    if not summary.ok:
        raise error_exit(f"the search ended without its result: {summary.problem}", code=1)


def _search(preset_name: str | None, config_file: Path | None, run_dir: Path | None, resume: Path | None,
            overrides: list[str] | None, shortcuts: dict[str, Any], print_config: bool,
            progress: bool) -> SearchSummary | None:
    if resume is not None:
        if preset_name or config_file or run_dir:
            raise ConfigError("--resume continues with the run's saved settings; drop --preset/--config/--run-dir")
        from .._util.settings import parse_assignment
        from ..search.config import RUNTIME_SETTINGS

        changes = dict(parse_assignment(item) for item in overrides or [])
        changes.update({k: v for k, v in shortcuts.items() if v is not None})
        fixed = sorted(set(changes) - RUNTIME_SETTINGS)
        if fixed:
            raise ConfigError(f"--resume keeps the run's settings; only {sorted(RUNTIME_SETTINGS)} may change"
                              f" (not {fixed})")
        from ..runs import check_run_writable
        from ..search.config import load_run_config

        load_run_config(resume)
        check_run_writable(resume)
        from ..search.driver import run_search  # torch loads here: the real work starts

        # Absolute: paths the run records (best/metrics.json) must not depend on where it was resumed from.
        try:
            return run_search(resume.resolve(), resume=True, progress=progress, runtime=changes)
        except SearchError as exc:
            raise with_resume_hint(exc) from None
    config = build_config(preset_name, config_file, overrides or [], shortcuts)
    if print_config:
        typer.echo(json.dumps(config.to_dict(), indent=2))
        return None
    check_run_dir_fast(run_dir)
    from ..runs import new_run_dir
    from ..search.driver import run_search
    from ..search.preflight import validate_new_search  # torch loads here: the real work starts

    validate_new_search(config, run_dir)  # before any folder is made
    target = run_dir or new_run_dir("runs", f"search-{preset_name or 'custom'}")
    try:
        return run_search(target.resolve(), config, progress=progress)
    except SearchError as exc:
        raise with_resume_hint(exc) from None


@app.command()
def baseline(
    preset_name: Preset = None,
    config_file: ConfigFile = None,
    run_dir: Annotated[Path | None, typer.Option(help="New run folder (default: runs/NNNNN-baseline-PRESET)")] = None,
    overrides: Sets = None,
    executor: Executor = None,
    workers: Workers = None,
    device: Device = None,
    progress: Progress = True,
) -> None:
    """Train the ProgGAN baseline of a search in a run folder of its own: the route (only grow_res, the
    search's budgets and seeds), continued at every resolution as far as the search can reach; use it with
    --set baseline=RUN."""
    config = build_config(preset_name, config_file, overrides or [],
                          {"executor": executor, "workers": workers, "device": device})
    check_run_dir_fast(run_dir)
    from ..runs import new_run_dir
    from ..search.baseline import baseline_config
    from ..search.driver import run_baseline
    from ..search.preflight import validate_new_search

    validate_new_search(baseline_config(config), run_dir)
    target = run_dir or new_run_dir("runs", f"baseline-{preset_name or 'custom'}")
    curve = run_baseline(target, config, progress=progress)
    typer.echo(f"run folder: {target}")
    for res, points in sorted(curve.points.items()):
        shown = ", ".join(f"{its}: {value:.4g}" for its, value in points)
        typer.echo(f"  {res:>4}px  {config.metric} after (route iterations: value) {shown}")


@app.command("compare")
def compare_command(
    run: Annotated[Path, typer.Argument(help="Run folder of a finished search")],
    eval_seeds: Annotated[int, typer.Option(help="Evaluation seeds each model is scored with", min=1,
                                            max=1000)] = 3,
    executor: Executor = None,
    workers: Workers = None,
    progress: Progress = True,
) -> None:
    """Is the final model better than ProgGAN? Against (a) ProgGAN trained for the same iterations and (b) one
    ProgGAN trained with the search's whole compute; writes RUN/compare.json and compare.md."""
    from . import options as opts

    if run.is_dir():  # before the models are trained: the result must have somewhere to go
        opts.writable_folder(run, "compare: cannot write", RunLayout(run).compare_json)
    from ..search.compare import compare
    from ..search.executors import executor_for

    chosen = None
    if executor is not None or workers is not None:
        from ..search.config import load_run_config

        chosen = executor_for(load_run_config(run), run, executor=executor, workers=workers)
    try:
        result = compare(run, eval_seeds=eval_seeds, executor=chosen, progress=progress)
    finally:
        if chosen is not None:
            chosen.close()
    typer.echo(result.markdown())
    layout = RunLayout(run)
    typer.echo(f"wrote {layout.compare_json} and {layout.compare_md.name}")


@app.command("tables")
def tables_command(
    run: Annotated[Path, typer.Argument(help="Run folder of a finished search")],
    samples: Annotated[int | None, typer.Option(help="Use this many samples for every metric instead of the"
                                                      " paper's 50k (FID/IS) and 16k (SWD): quicker, not comparable",
                                                 min=2, max=MAX_METRIC_SAMPLES)] = None,
    progress: Progress = True,
) -> None:
    """The paper's Tables 1-3 from a run: the final model's FID/IS (or the search's metric), per resolution
    against ProgGAN at equal training, SWD per level; writes RUN/best/tables.json and tables.md."""
    from . import options as opts

    if run.is_dir():  # before the scoring: the result must have somewhere to go
        opts.writable_folder(RunLayout(run).best, "tables: cannot write", RunLayout(run).tables_json)
    from ..search.tables import tables

    result = tables(run, samples=samples, progress=progress)
    typer.echo(result.markdown())
    layout = RunLayout(run)
    typer.echo(f"wrote {layout.tables_json} and {layout.tables_md.name}")


@app.command("ls")
def ls_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by `dggan search`")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON array, one object per candidate")] = False,
) -> None:
    """List a run's candidates (a table, or JSON with --json)."""
    from ..runs import RunLayout
    from ..search.ledger import Ledger

    with Ledger.open(RunLayout(run).ledger, readonly=True) as ledger:
        rows = ledger.candidates()
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    from ..model.actions import action_label

    table = Table(title=str(run))
    for col in ("id", "parent", "step", "action", "res", "G params", "D params", "status", "metric", "norm",
                "kept"):
        table.add_column(col, justify="right" if col not in ("action", "status") else "left", no_wrap=True)
    for r in rows:
        table.add_row(str(r.id), str(r.parent or "-"), str(r.step), action_label(r.action, r.parent), str(r.resolution),
                      f"{r.g_params / 1e6:.2f}M", f"{r.d_params / 1e6:.2f}M", r.status.value,
                      "-" if r.metric is None else f"{r.metric:.4g}",
                      "-" if r.normalized_metric is None else f"{r.normalized_metric:.3f}",
                      "*" if r.kept else "")
    console = Console()
    Console(width=max(console.width, 120)).print(table)  # never squeeze the table into a narrow pipe
