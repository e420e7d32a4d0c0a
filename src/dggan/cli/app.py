"""The Typer app every command registers on, and the one place user errors become ``error: ...`` lines.

Command modules import only typer at the top and load torch, the search or matplotlib inside the
command, so ``dggan --help`` and every command start in well under a second.
"""

from __future__ import annotations

import warnings
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import DgganError


def error_exit(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` to stderr; raise the result to exit with ``code`` (2: bad input)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


class DgganGroup(TyperGroup):
    """Turns every user error (``DgganError``) and every environment error (``OSError``: a full disk, a
    read-only folder) into one line on stderr instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except DgganError as exc:
            raise error_exit(str(exc)) from None
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise error_exit(f"{exc.strerror or exc}{where}", code=1) from None


def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: Any = None, line: str | None = None) -> None:
    """Warnings as one ``warning: ...`` line (Python's default also prints the warning's source line)."""
    typer.echo(f"warning: {message}", err=True)


warnings.showwarning = one_line_warning  # the CLI only: a library user keeps Python's default

app = typer.Typer(cls=DgganGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Dynamically Grown GANs: grow a GAN's architecture by search during training.")
