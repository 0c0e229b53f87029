"""The ``whylow`` command line: thin wrappers that parse options, call the library, render and exit.

Exit codes (design.md §5): 0 diagnosis done; 1 ``--fail-on`` threshold reached;
2 bad input or usage (one sentence, no traceback); 3 an internal error (a bug in
whylow); 130 interrupted. Each sub-command lives in its own module and
registers itself on `app` (in ``_app``).

This module imports nothing heavy: `main` runs every import (typer, numpy, the
commands) inside its own handlers, so a Ctrl-C at any moment prints
``whylow: interrupted`` and exits 130, and a usage error is one
``whylow: error: ...`` sentence like any other bad input.
"""

from __future__ import annotations

import os
import sys

__all__ = ["app", "fail", "main", "run"]

#: Exit codes of the contract.
EXIT_OK, EXIT_FAIL_ON, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def __getattr__(name: str):
    if name in ("app", "fail", "one_line"):
        from whylow.cli import _app

        return getattr(_app, name)
    raise AttributeError(f"module 'whylow.cli' has no attribute {name!r}")


def _register_commands() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: nothing left to tell
        pass


def _error(message: str) -> None:
    from whylow.cli._app import one_line

    _say(f"whylow: error: {one_line(message)}")


def _usage_sentence(exc) -> str:
    """A click usage error as one sentence naming the command's --help."""
    from whylow.cli._app import one_line

    text = one_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "whylow"
    text = text.replace("Value error, ", "").rstrip(". ")
    if text.endswith("?"):
        return f"{text} See '{command} --help'."
    return f"{text}; see '{command} --help'."


def _click_exceptions() -> tuple[tuple[type, ...], ...]:
    """(no-args-is-help, usage error, any click error, abort, exit) classes of click and of typer's vendored click."""
    import typer

    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(__import__(name, fromlist=["_"]))
        except ImportError:
            pass

    def pick(attr):
        return tuple({getattr(m, attr) for m in modules if hasattr(m, attr)})

    abort = tuple({typer.Abort, *pick("Abort")})
    exit_ = tuple({typer.Exit, *pick("Exit")})
    return pick("NoArgsIsHelpError"), pick("UsageError"), pick("ClickException"), abort, exit_


def run(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Nothing here raises: every outcome is an exit code with at most one
    sentence on stderr.
    """
    args = [os.fsdecode(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        from whylow.cli._app import app
        from whylow.errors import WhylowError

        no_args, usage, click_error, abort, exit_ = _click_exceptions()
        _register_commands()
    except KeyboardInterrupt:
        _say("whylow: interrupted")
        return EXIT_INTERRUPTED
    try:
        try:
            rv = app(args=args, prog_name="whylow", standalone_mode=False)
        except no_args as exc:
            _say(exc.format_message())
            return EXIT_USAGE
        except usage as exc:
            _error(_usage_sentence(exc))
            return EXIT_USAGE
        except abort:
            _say("whylow: interrupted")
            return EXIT_INTERRUPTED
        except click_error as exc:
            _error(exc.format_message())
            return EXIT_USAGE
        except exit_ as exc:
            return int(exc.exit_code or 0)
        if isinstance(rv, int) and not isinstance(rv, bool):
            if rv == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt inside a command into Exit(130)
                _say("whylow: interrupted")
            return rv
        return EXIT_OK
    except WhylowError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("whylow: interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:
        if os.environ.get("WHYLOW_DEBUG"):
            raise
        _say(
            "whylow: internal error: ran out of memory (a bug in whylow: reading is bounded, so please report the inputs; "
            "rerun with WHYLOW_DEBUG=1 to see the traceback)"
        )
        return EXIT_INTERNAL
    except BrokenPipeError:  # the reader of stdout went away (whylow ... | head): stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - never show a traceback to a user
        if os.environ.get("WHYLOW_DEBUG"):
            raise
        from whylow.cli._app import one_line

        _say(
            f"whylow: internal error: {type(exc).__name__}: {one_line(str(exc))[:500]} "
            "(a bug in whylow; rerun with WHYLOW_DEBUG=1 to see the traceback)"
        )
        return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``whylow`` console script: `run`, then exit with its code."""
    try:
        code = run(argv)
    except KeyboardInterrupt:
        _say("whylow: interrupted")
        code = EXIT_INTERRUPTED
    sys.exit(code)
