"""What every CLI command shares: one way to report a user error."""

from __future__ import annotations

import typer


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` to stderr; raise the result to exit with status 2 (bad input)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)
