"""Exceptions raised by whylow.

The tree::

    WhylowError                      base of everything whylow raises on purpose
    ├── InvalidInputError            an input is unusable: wrong shape, NaN, bad labels, corrupt file...
    │                                (the CLI prints its one-sentence message and exits with code 2)
    └── MissingDependencyError       an optional extra is not installed; the message is the pip line

A check that crashes is not an exception for the caller: the report records it
as ``failed`` with the reason, and the diagnosis goes on.
"""

from __future__ import annotations

__all__ = ["WhylowError", "InvalidInputError", "MissingDependencyError", "require"]


class WhylowError(Exception):
    """Base class of the errors whylow raises on purpose."""


class InvalidInputError(WhylowError, ValueError):
    """An input cannot be used as given.

    The message is one sentence naming the input, what was expected, what
    arrived and, where there is one, how to fix it.
    """


class MissingDependencyError(WhylowError, ImportError):
    """An optional dependency is missing; the message gives the install line."""


def require(module: str, extra: str):
    """Import an optional dependency or raise a one-line install hint.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"torch"``.
    extra : str
        The whylow extra that installs it, e.g. ``"torch"``.

    Returns
    -------
    module
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'whylow[{extra}]'"
        ) from exc
