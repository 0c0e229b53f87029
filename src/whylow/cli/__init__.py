"""The ``whylow`` command line: thin wrappers that parse options, call the library, render and exit.

Exit codes (design.md §5): 0 diagnosis done; 1 ``--fail-on`` threshold reached;
2 bad input or usage (one sentence, no traceback); 3 an internal error (a bug in whylow).
Each sub-command lives in its own module and registers itself on `app`.
"""

from __future__ import annotations

import os
import sys

import typer

from whylow._version import __version__
from whylow.errors import WhylowError

__all__ = ["app", "main", "fail"]

app = typer.Typer(
    name="whylow",
    help="Find out why your classifier's predictions are low: ranked causes, verified fixes, a report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"whylow {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
):
    """whylow: why are my classifier's predictions low?"""


def fail(message: str, code: int = 2):
    """Print ``message`` as one line on stderr and exit with ``code``."""
    typer.echo(f"whylow: error: {message}", err=True)
    raise typer.Exit(code)


def _register_commands() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def main() -> None:
    """Entry point of the ``whylow`` console script."""
    _register_commands()
    try:
        app(standalone_mode=True)
    except WhylowError as exc:
        typer.echo(f"whylow: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("whylow: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - never show a traceback to a user
        if os.environ.get("WHYLOW_DEBUG"):
            raise
        typer.echo(
            f"whylow: internal error: {type(exc).__name__}: {exc} (a bug in whylow; rerun with WHYLOW_DEBUG=1 to see the traceback)",
            err=True,
        )
        sys.exit(3)
