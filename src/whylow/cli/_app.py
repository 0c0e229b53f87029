"""The typer application every ``whylow`` sub-command registers on, and `fail`."""

from __future__ import annotations

import typer

from whylow._version import __version__

__all__ = ["app", "fail", "one_line"]

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


def one_line(message: str) -> str:
    """``message`` on one line: line breaks become spaces, other control characters are escaped."""
    out = []
    for ch in " ".join(str(message).split("\n")).replace("\r", " ").replace("\t", " "):
        code = ord(ch)
        out.append(ch if code >= 32 and code != 127 and not 0x80 <= code < 0xA0 else f"\\x{code:02x}")
    return "".join(out).strip()


def fail(message: str, code: int = 2):
    """Print ``message`` as one line on stderr and exit with ``code``."""
    typer.echo(f"whylow: error: {one_line(message)}", err=True)
    raise typer.Exit(code)
