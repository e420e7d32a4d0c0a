"""``dggan search`` (Algorithm 1 and the final training), ``dggan baseline`` and ``dggan ls``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError, SearchError
from ..metrics.registry import MAX_METRIC_SAMPLES
from ..runs import RunLayout
from . import options as opts
from .app import app, error_exit

if TYPE_CHECKING:
    from ..search.config import SearchConfig
    from ..search.driver import SearchSummary

PRESET_NAMES = opts.PRESET_NAMES


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


@app.command()
def search(
    preset_name: opts.Preset = None,
    config_file: opts.ConfigFile = None,
    run_dir: opts.RunDir = None,
    resume: Annotated[Path | None, typer.Option(metavar="RUN", help="Continue the search in this run folder")] = None,
    overrides: opts.Sets = None,
    data: opts.Data = None,
    executor: opts.Executor = None,
    workers: opts.Workers = None,
    device: opts.Device = None,
    seed: opts.Seed = None,
    threads: opts.Threads = None,
    print_config: Annotated[bool, typer.Option(help="Print the resolved settings and exit")] = False,
    progress: opts.Progress = True,
) -> None:
    """Run the DGGAN search (Algorithm 1), then train the best architecture longer. --data, --executor,
    --workers, --device, --seed and --threads are --set KEY=VALUE for those settings; without --run-dir the run
    folder is a new runs/NNNNN-search-PRESET."""
    shortcuts = {"executor": executor, "workers": workers, "device": device, "data": data, "seed": seed,
                 "threads": threads}
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

        try:
            load_run_config(resume)
        except SearchError as exc:
            raise SearchError(f"--resume {resume}: {exc}") from None
        check_run_writable(resume)
        from ..search.driver import run_search  # torch loads here: the real work starts

        # Absolute: paths the run records (best/metrics.json) must not depend on where it was resumed from.
        try:
            summary = run_search(resume.resolve(), resume=True, progress=progress, runtime=changes)
        except SearchError as exc:
            raise with_resume_hint(exc) from None
        return _then_tables(resume.resolve(), summary, progress)
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
        summary = run_search(target.resolve(), config, progress=progress)
    except SearchError as exc:
        raise with_resume_hint(exc) from None
    return _then_tables(target.resolve(), summary, progress)


def _then_tables(run: Path, summary: SearchSummary, progress: bool) -> SearchSummary:
    """The paper's tables after the search (its ``tables`` setting), in the same session: judging a run is
    evaluation's job, above the search, so the command sequences the two."""
    from ..evaluation.tables import tables_after_search

    try:
        tables_after_search(run, progress=progress)
    except SearchError as exc:
        raise with_resume_hint(exc) from None
    return summary


@app.command()
def baseline(
    preset_name: opts.Preset = None,
    config_file: opts.ConfigFile = None,
    run_dir: opts.RunDir = None,
    overrides: opts.Sets = None,
    data: opts.Data = None,
    executor: opts.Executor = None,
    workers: opts.Workers = None,
    device: opts.Device = None,
    seed: opts.Seed = None,
    threads: opts.Threads = None,
    progress: opts.Progress = True,
) -> None:
    """Train a search's ProgGAN baseline in a run folder of its own, for --set baseline=RUN. The route (only
    grow_res, the search's budgets and seeds) is continued at every resolution as far as the search can reach.
    Without --run-dir the run folder is a new runs/NNNNN-baseline-PRESET."""
    config = build_config(preset_name, config_file, overrides or [],
                          {"executor": executor, "workers": workers, "device": device, "data": data, "seed": seed,
                           "threads": threads})
    check_run_dir_fast(run_dir)
    from ..runs import new_run_dir
    from ..search.baseline import baseline_config
    from ..search.driver import run_baseline
    from ..search.preflight import validate_new_search

    validate_new_search(baseline_config(config), run_dir)
    target = run_dir or new_run_dir("runs", f"baseline-{preset_name or 'custom'}")
    from .._util.threads import set_threads

    set_threads(config.threads)  # as the search chooses: one thread per busy core spins against the other jobs
    curve = run_baseline(target, config, progress=progress)
    typer.echo(f"run folder: {target}")
    for res, points in sorted(curve.points.items()):
        shown = ", ".join(f"{its}: {value:.4g}" for its, value in points)
        typer.echo(f"  {res:>4}px  {config.metric} after (route iterations: value) {shown}")


@app.command("compare")
def compare_command(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder of a finished search")],
    eval_seeds: Annotated[int, typer.Option(help="Evaluation seeds each model is scored with", min=1,
                                            max=1000)] = 3,
    executor: opts.Executor = None,
    workers: opts.Workers = None,
    threads: opts.Threads = None,
    equal_compute_limit: Annotated[int, typer.Option(
        metavar="ITERATIONS", min=0,
        help="Leave out (b), ProgGAN given the search's whole compute, when that is more route iterations than"
             " this (0: no limit). At the cifar10 preset it is about 2e8 iterations: as much compute as the"
             " search itself")] = 1_000_000,
    progress: opts.Progress = True,
    against: Annotated[Path | None, typer.Option(
        metavar="OTHER_RUN",
        help="Another finished search (same data, metric and resolution): score both final models on RUN's"
             " held-out seeds, pair by pair, instead of comparing with ProgGAN (e.g. top-K against"
             " --set selection=random); writes RUN/compare-against/OTHER.json and .md")] = None,
) -> None:
    """Is the final model better than ProgGAN? Scores it on held-out seeds against (a) ProgGAN trained for the
    same iterations and (b) one ProgGAN trained with the search's whole compute; writes RUN/compare.json and
    compare.md. With --against, against another search's final model instead."""
    import time

    if threads is not None:
        opts.setting_flag(threads, "--threads", "threads")
    if against is not None:
        if run.is_dir():
            opts.writable_folder(run, "compare: cannot write", RunLayout(run).compare_against(against)[0])
        from .._util.threads import set_threads
        from ..evaluation.compare import compare_finals

        set_threads(threads)  # scoring runs here: never one thread per busy core
        versus = compare_finals(run, against, eval_seeds=eval_seeds)
        typer.echo(versus.markdown())
        typer.echo(f"wrote {RunLayout(run).compare_against(against)[0]} and .md")
        return
    if run.is_dir():  # before the models are trained: the result must have somewhere to go
        opts.writable_folder(run, "compare: cannot write", RunLayout(run).compare_json)
    from ..analysis.headline import duration
    from ..evaluation.compare import compare
    from ..execution.executors import executor_for

    chosen = None
    if executor is not None or workers is not None:
        from ..search.config import load_run_config

        chosen = executor_for(load_run_config(run), run, executor=executor, workers=workers)
    start = time.perf_counter()
    try:
        result = compare(run, eval_seeds=eval_seeds, executor=chosen, progress=progress, threads=threads,
                         equal_compute_limit=equal_compute_limit or None)
    finally:
        if chosen is not None:
            chosen.close()
    typer.echo(result.markdown())
    layout = RunLayout(run)
    typer.echo(f"wrote {layout.compare_json} and {layout.compare_md.name} ({duration(time.perf_counter() - start)})")


@app.command("tables")
def tables_command(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder of a finished search")],
    samples: Annotated[int | None, typer.Option(help="Use this many samples for every metric instead of the"
                                                      " paper's 50k (FID/IS) and 16k (SWD): quicker, not comparable",
                                                 min=2, max=MAX_METRIC_SAMPLES)] = None,
    threads: opts.Threads = None,
    progress: opts.Progress = True,
) -> None:
    """The paper's Tables 1-3 for a run. The final model's FID/IS (or the search's metric), per resolution
    against ProgGAN at equal training, SWD per level; writes RUN/best/tables.json and tables.md."""
    if threads is not None:
        opts.setting_flag(threads, "--threads", "threads")
    if run.is_dir():  # before the scoring: the result must have somewhere to go
        opts.writable_folder(RunLayout(run).best, "tables: cannot write", RunLayout(run).tables_json)
    from .._util.threads import set_threads
    from ..evaluation.tables import tables
    from ..search.config import load_run_config

    set_threads(threads or load_run_config(run).threads)  # scoring runs here: never one thread per busy core
    result = tables(run, samples=samples, progress=progress)
    typer.echo(result.markdown())
    layout = RunLayout(run)
    typer.echo(f"wrote {layout.tables_json} and {layout.tables_md.name}")


@app.command("ls")
def ls_command(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder written by dggan search")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON array, one object per candidate")] = False,
) -> None:
    """List a run's candidates (a table, or JSON with --json)."""
    from ..execution.state import Status
    from ..runs import search_lock
    from ..search.view import RunView

    view = RunView.read(run)
    rows = view.rows
    # With no search holding the run, a "running" row is one a stopped search had in flight: it is pending
    # (--resume continues it), as dggan status counts it.
    root = view.root
    running = view.locked or (root.name == "baseline" and search_lock(root.parent)[0])  # RUN/baseline
    def status_of(row: Any) -> str:
        stopped = row.status == Status.RUNNING and not running
        return "pending" if stopped else row.status.value

    if as_json:
        typer.echo(json.dumps([{**r.to_dict(), "status": status_of(r)} for r in rows], indent=1))
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
                      f"{r.g_params / 1e6:.2f}M", f"{r.d_params / 1e6:.2f}M",
                      status_of(r) + (" (stopped)" if status_of(r) != r.status.value else ""),
                      "-" if r.metric is None else f"{r.metric:.4g}",
                      "-" if r.normalized_metric is None else f"{r.normalized_metric:.3f}",
                      "*" if r.kept else "")
    console = Console()
    Console(width=max(console.width, 120)).print(table)  # never squeeze the table into a narrow pipe
