"""Command line: ``dggan train | sample | genome | search | baseline | ls | status | eval | ref | export-lsun |
report``.

One Typer app (``app``); each module below registers its commands on it with ``@app.command()``.
"""

from __future__ import annotations

import importlib
import sys

import typer

from .app import app

__all__ = ["app", "main"]

# Each module registers its commands on ``app``; this order is the order ``dggan --help`` lists them in.
COMMAND_MODULES = ("search", "status", "report", "train", "genome", "eval")
for _module in COMMAND_MODULES:
    importlib.import_module(f".{_module}", __name__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
