"""``dggan report RUN``: the HTML report of a search run (registered on the main CLI by ``register``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import fail


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command("report")(report)


def report(
    run: Annotated[Path, typer.Argument(help="Run folder written by `dggan search` (holds ledger.sqlite)")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write index.html and the tables (default: RUN/report)")
    ] = None,
    zoom_threshold: Annotated[
        float, typer.Option(help="Normalized metric below which the capacity plot's zoomed view shows candidates")
    ] = 1.2,
    replay_seeds: Annotated[int, typer.Option(help="Seeds averaged per (K, p) in the replay", min=1)] = 10,
    samples: Annotated[int, typer.Option(help="Images per sample grid", min=1)] = 16,
    device: Annotated[str, typer.Option(help="Device for sampling the checkpoints: cpu or cuda")] = "cpu",
) -> None:
    """Build RUN/report/index.html: settings, best architecture and route, the paper's analyses, samples."""
    from .analysis.report import ReportError, generate_report  # matplotlib loads only when this command runs

    try:
        result = generate_report(
            run, out, zoom_threshold=zoom_threshold, replay_seeds=replay_seeds, n_samples=samples, device=device
        )
    except ReportError as exc:
        raise fail(str(exc)) from None
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(str(result.path))
