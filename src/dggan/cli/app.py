"""The Typer app every command registers on, and the one place user errors become ``error: ...`` lines.

Command modules import only typer at the top and load torch, the search or matplotlib inside the
command, so ``dggan --help`` and every command start in well under a second.
"""

from __future__ import annotations

import warnings
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

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
            # A folder where a file was asked for (or the reverse) is the user's path, not the machine's state.
            bad_input = isinstance(exc, (IsADirectoryError, NotADirectoryError))
            raise error_exit(f"{exc.strerror or exc}{where}", code=2 if bad_input else 1) from None


    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Each command with the first sentence of its help, whole (click cuts it at the terminal's width with
        "...", which hides what most commands do)."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.short_help or first_sentence(cmd.help or "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def first_sentence(text: str) -> str:
    """The help's first sentence (up to the first full stop or question mark before a space), on one line."""
    flat = " ".join(text.split())
    ends = [i for i in (flat.find(". "), flat.find("? ")) if i >= 0]
    return flat[: min(ends) + 1] if ends else flat


class DgganCommand(TyperCommand):
    """Usage lines in click's convention: ``dggan compare [OPTIONS] RUN`` (typer writes required arguments in
    braces, from their lower-case names)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = (param.metavar or param.name or "ARG").upper()
            if param.nargs != 1 and not name.endswith("..."):
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class DgganTyper(typer.Typer):
    """Every command made with ``DgganCommand``."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", DgganCommand)
        return super().command(*args, **kwargs)


def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: Any = None, line: str | None = None) -> None:
    """Warnings as one ``warning: ...`` line (Python's default also prints the warning's source line)."""
    typer.echo(f"warning: {message}", err=True)


warnings.showwarning = one_line_warning  # the CLI only: a library user keeps Python's default

app = DgganTyper(cls=DgganGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Dynamically Grown GANs: grow a GAN's architecture by search during training.")


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"dggan {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print dggan's version and exit"),
) -> None:
    """Dynamically Grown GANs: grow a GAN's architecture by search during training."""
