"""``dggan status``: one screen for a running or finished search (read-only, safe while it runs)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from .app import app


@app.command()
def status(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder of a search (running or finished)")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (with --watch: one per line)")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until the search stops running (Ctrl-C ends)")]
    = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch", min=0.1,
                                            max=86400)] = 5.0,
) -> None:
    """Where a search stands. The step, candidates by status, the best so far per resolution, images/s and the
    time left in the current step. Reads the ledger read-only, so it never disturbs the search."""
    from ..search.watch import read_status

    while True:
        state = read_status(run)
        if as_json:
            typer.echo(json.dumps(state.to_dict(), indent=None if watch else 1))
        else:
            if watch and sys.stdout.isatty():
                typer.echo("\033[2J\033[H", nl=False)  # clear the screen (a piped --watch keeps every refresh)
            typer.echo("\n".join(state.lines()))
        if not watch or state.state != "running":
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return
