"""CLI commands of the search: ``dggan search``, ``dggan baseline``, ``dggan ls``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_common import fail
from .io import new_run_dir
from .search.config import PRESETS, SearchConfig, preset
from .search.driver import LEDGER_NAME, SearchError, baseline_config, load_run_config, run_search
from .search.ledger import Ledger, LedgerError
from .train import ConfigError


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set top_k=8")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value  # plain strings need no quotes: --set data=cifar10:/data
    return out


def _build_config(preset_name: str | None, config_file: Path | None, overrides: list[str],
                  executor: str | None, workers: int | None, device: str | None) -> SearchConfig:
    base: dict[str, Any] = {}
    if config_file is not None:
        base = SearchConfig.from_file(config_file).to_dict()
    elif preset_name is not None:
        if preset_name not in PRESETS:
            raise ConfigError(f"unknown preset {preset_name!r}; choose one of {sorted(PRESETS)}")
        base = preset(preset_name).to_dict()
    extra = _parse_overrides(overrides)
    for key, value in (("executor", executor), ("workers", workers), ("device", device)):
        if value is not None:
            extra[key] = value
    return SearchConfig.from_dict({**base, **extra}, source="search settings")


def _print_summary(summary: Any) -> None:
    typer.echo(f"run folder: {summary.run_dir}")
    typer.echo(f"{summary.candidates} candidates over {summary.steps} steps;"
               + (f" best at the target resolution: candidate {summary.best_id} (normalised metric"
                  f" {summary.best_normalized:.3f})" if summary.best_id is not None else
                  " no candidate finished at the target resolution"))
    if summary.final_status:
        typer.echo(f"final training: {summary.final_status}, metric {summary.final_metric}")
    wall = max(summary.wall_seconds, 1e-9)
    typer.echo(f"wall {summary.wall_seconds:.1f}s, training {summary.train_seconds:.1f}s, scoring"
               f" {summary.eval_seconds:.1f}s, search overhead {100 * summary.overhead_seconds / wall:.1f}%")


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        preset_name: Annotated[str | None, typer.Option("--preset", help=f"One of {sorted(PRESETS)}")] = None,
        config_file: Annotated[Path | None, typer.Option("--config", help="Settings JSON file")] = None,
        run_dir: Annotated[Path | None, typer.Option(help="New run folder (default: runs/NNNNN-search)")] = None,
        resume: Annotated[Path | None, typer.Option(help="Continue the search in this run folder")] = None,
        overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a setting: KEY=VALUE")] = None,
        executor: Annotated[str | None, typer.Option(help="inprocess, local or ray")] = None,
        workers: Annotated[int | None, typer.Option(help="Worker processes (local) / CPUs (ray)")] = None,
        device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
        print_config: Annotated[bool, typer.Option(help="Print the resolved settings and exit")] = False,
        progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
    ) -> None:
        """Run the DGGAN search (Algorithm 1), then train the best architecture longer."""
        try:
            if resume is not None:
                if preset_name or config_file or overrides:
                    raise ConfigError("--resume continues with the run's saved settings; drop --preset/--config/--set")
                load_run_config(resume)
                summary = run_search(resume, resume=True, progress=progress)
            else:
                config = _build_config(preset_name or "demo" if not config_file else None, config_file,
                                       overrides or [], executor, workers, device)
                if print_config:
                    typer.echo(json.dumps(config.to_dict(), indent=2))
                    return
                target = run_dir or new_run_dir("runs", f"search-{preset_name or 'custom'}")
                summary = run_search(target, config, progress=progress)
        except (ConfigError, SearchError, LedgerError) as exc:
            raise fail(str(exc)) from None
        _print_summary(summary)

    @app.command()
    def baseline(
        preset_name: Annotated[str | None, typer.Option("--preset")] = None,
        config_file: Annotated[Path | None, typer.Option("--config")] = None,
        run_dir: Annotated[Path | None, typer.Option()] = None,
        overrides: Annotated[list[str] | None, typer.Option("--set")] = None,
        executor: Annotated[str | None, typer.Option()] = None,
        workers: Annotated[int | None, typer.Option()] = None,
        device: Annotated[str | None, typer.Option()] = None,
        progress: Annotated[bool, typer.Option()] = True,
    ) -> None:
        """Train the ProgGAN route (only grow_res) with the search's budgets; use it with --set baseline=RUN."""
        try:
            config = _build_config(preset_name or "demo" if not config_file else None, config_file,
                                   overrides or [], executor, workers, device)
            target = run_dir or new_run_dir("runs", f"baseline-{preset_name or 'custom'}")
            summary = run_search(target, baseline_config(config), progress=progress)
        except (ConfigError, SearchError, LedgerError) as exc:
            raise fail(str(exc)) from None
        _print_summary(summary)
        with Ledger.open(Path(target) / LEDGER_NAME, readonly=True) as ledger:
            for row in ledger.candidates():
                typer.echo(f"  {row.resolution:>4}px  {row.status:<8} metric {row.metric}")

    @app.command("ls")
    def ls_command(
        run: Path,
        as_json: Annotated[bool, typer.Option("--json", help="JSON array, one object per candidate")] = False,
    ) -> None:
        """List a run's candidates (a table, or JSON with --json)."""
        try:
            with Ledger.open(run / LEDGER_NAME, readonly=True) as ledger:
                rows = [r.to_dict() for r in ledger.candidates()]
        except LedgerError as exc:
            raise fail(str(exc)) from None
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=str(run))
        for col in ("id", "parent", "step", "action", "res", "G params", "D params", "status", "metric", "norm",
                    "kept"):
            table.add_column(col, justify="right" if col not in ("action", "status") else "left", no_wrap=True)
        for r in rows:
            action = r["action"]
            if action is None:
                label = "-"
            elif action["kind"] == "grow_res":
                label = "res x2"
            else:
                label = f"{action['kind'][-1].upper()} k{action['kernel']} f{action['filters']}"
            table.add_row(str(r["id"]), str(r["parent"] or "-"), str(r["step"]), label, str(r["resolution"]),
                          f"{r['g_params'] / 1e6:.2f}M", f"{r['d_params'] / 1e6:.2f}M", r["status"],
                          "-" if r["metric"] is None else f"{r['metric']:.4g}",
                          "-" if r["normalized_metric"] is None else f"{r['normalized_metric']:.3f}",
                          "*" if r["kept"] else "")
        console = Console()
        Console(width=max(console.width, 120)).print(table)  # never squeeze the table into a narrow pipe


__all__ = ["register"]
