"""``dggan report RUN``: the HTML report of a search run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ReportError
from . import options as opts
from .app import app


@app.command("report")
def report(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder written by dggan search (holds"
                                                            " ledger.sqlite)")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write index.html and the tables (default: RUN/report)")
    ] = None,
    zoom_threshold: Annotated[
        float, typer.Option(help="Normalized metric below which the capacity plot's zoomed view shows candidates")
    ] = 1.2,
    replay_seeds: Annotated[int, typer.Option(help="Seeds averaged per (K, p) in the replay", min=1)] = 10,
    samples: Annotated[int, typer.Option(help="Images per sample grid", min=1)] = 16,
    device: opts.Device = None,
) -> None:
    """Build the run's HTML report, RUN/report/index.html. The result, the best architecture and route, the
    paper's analyses, samples (drawn on --device)."""
    opts.device(device or "auto", allow_auto=True)
    opts.bounded(replay_seeds, "--replay-seeds", 1, 1000)
    opts.bounded(samples, "--samples", 1, 1024)
    if run.is_dir():  # a missing run folder gets the report's own message (it lists the runs nearby)
        opts.writable_folder(out if out is not None else run / "report", "--out")
    from ..analysis.report import generate_report  # matplotlib loads only when this command runs

    try:
        result = generate_report(run, out, zoom_threshold=zoom_threshold, replay_seeds=replay_seeds,
                                 n_samples=samples, device=opts.resolve_device(device))
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise ReportError(f"cannot write the report: {exc.strerror or exc}{where}; pass --out a writable folder"
                          " (or free disk space)") from None
    if result.snapshot:
        typer.echo(f"note: {result.snapshot}", err=True)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(str(result.path))
