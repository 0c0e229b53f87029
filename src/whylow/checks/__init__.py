"""Checks: one module per family, each registering its checks with `register`.

A check declares its ``name``, the finding ``codes`` it can emit, the inputs it
``requires`` (see `whylow.context.Context.has`) and its thresholds as class
attributes (overridable through ``options={"<name>.<threshold>": value}``).
``run(ctx)`` measures, then judges, and returns findings. A new family is a
new module in this package: `load_checks` imports every module here, so the
core needs no edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from whylow.context import REQUIREMENT_HINTS, Context
from whylow.report.finding import Finding

__all__ = ["Check", "register", "registered_checks", "load_checks", "skip_reason"]

_REGISTRY: dict[str, type["Check"]] = {}


class Check:
    """Base class of a check.

    Attributes
    ----------
    name : str
        Unique name, shown in the report's ``checks`` list.
    codes : tuple of str
        Finding codes this check may emit.
    requires : tuple of str
        Requirements that must all hold for the check to run, e.g.
        ``("test.y", "test.probs")``; ``|`` separates alternatives.
    """

    name: str = ""
    codes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()

    def run(self, ctx: Context) -> list[Finding]:  # pragma: no cover - abstract
        """Measure, judge, and return findings (possibly none)."""
        raise NotImplementedError

    def threshold(self, ctx: Context, name: str):
        """The threshold ``name`` (a class attribute), overridden by the user's options."""
        return ctx.option(self.name, name, getattr(self, name))


def register(cls: type[Check]) -> type[Check]:
    """Class decorator adding a check to the registry."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two checks are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def load_checks() -> None:
    """Import every module of this package so their checks register."""
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def registered_checks() -> list[type[Check]]:
    """All registered check classes, in registration order."""
    load_checks()
    return list(_REGISTRY.values())


def _describe(requirement: str) -> str:
    if requirement == "model":
        return "a model (--model FILE)"
    if requirement == "history":
        return "a training history (--history FILE)"
    split_name, _, what = requirement.partition(".")
    return f"{REQUIREMENT_HINTS.get(what, what)} for the {split_name} split (--{split_name})"


def skip_reason(check: Check, ctx: Context) -> str | None:
    """Why ``check`` cannot run on ``ctx`` (naming the input that would enable it), or None if it can."""
    missing = [r for r in check.requires if not ctx.has(r)]
    if not missing:
        return None
    needs = [" or ".join(_describe(alt) for alt in r.split("|")) for r in missing]
    return "needs " + "; and ".join(needs)
