"""Fault-injection scenarios: real images (scikit-learn's digits), a small CNN, one known fault.

Each scenario is a function registered with `scenario`; `build(name)` returns
a `Scenario` ready to diagnose. The demo, the tests and the benchmarks all
build their cases from here. Modules in this package register on import.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Scenario", "ScenarioSpec", "scenario", "build", "list_scenarios"]


@dataclass
class Scenario:
    """A built scenario: splits, model, history, and the fault it carries.

    Attributes
    ----------
    name : str
    expected : str or None
        The finding code that must come out on top; None for a healthy case.
    train, val, test : whylow.Split or None
    model : object or None
        The trained model (a torch module, Keras model or callable).
    history : dict or None
    class_names : list of str or None
    notes : dict
        What was injected, with its magnitude, for people and benchmarks.
    """

    name: str
    expected: str | None
    test: Any
    train: Any = None
    val: Any = None
    model: Any = None
    history: dict | None = None
    class_names: list[str] | None = None
    notes: dict = field(default_factory=dict)

    def diagnose_kwargs(self) -> dict:
        """Keyword arguments for `whylow.diagnose`."""
        return {
            "train": self.train,
            "val": self.val,
            "test": self.test,
            "model": self.model,
            "history": self.history,
            "class_names": self.class_names,
        }

    def diagnose(self, **kwargs):
        """Run `whylow.diagnose` on this scenario."""
        from whylow.diagnose import diagnose

        return diagnose(**{**self.diagnose_kwargs(), **kwargs})


@dataclass
class ScenarioSpec:
    """A registered scenario: its builder and a one-line description."""

    name: str
    expected: str | None
    description: str
    build: Callable[..., Scenario]


_SCENARIOS: dict[str, ScenarioSpec] = {}


def scenario(name: str, expected: str | None, description: str):
    """Register a scenario builder ``f(seed=0, **params) -> Scenario``."""

    def wrap(fn):
        if name in _SCENARIOS:
            raise ValueError(f"two scenarios are named {name!r}")
        _SCENARIOS[name] = ScenarioSpec(name, expected, description, fn)
        return fn

    return wrap


def _load() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def list_scenarios() -> list[ScenarioSpec]:
    """All registered scenarios."""
    _load()
    return list(_SCENARIOS.values())


def build(name: str, seed: int = 0, **params) -> Scenario:
    """Build the scenario called ``name``."""
    from whylow.errors import InvalidInputError

    _load()
    if name not in _SCENARIOS:
        raise InvalidInputError(f"Unknown scenario {name!r}; the scenarios are: {', '.join(sorted(_SCENARIOS))}.")
    return _SCENARIOS[name].build(seed=seed, **params)
