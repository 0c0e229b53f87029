"""whylow: find out why a classifier's predictions are low.

>>> import whylow
>>> report = whylow.diagnose(test=whylow.Split(y=y, probs=probs))  # doctest: +SKIP
>>> print(report)  # doctest: +SKIP

The public names are imported on first use (PEP 562), so ``import whylow`` and
the ``whylow`` command start fast and a Ctrl-C during start-up reaches the
command line's handler instead of printing a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from whylow._version import __version__  # noqa: F401 - public, listed in __all__

#: Public name -> the module that defines it.
_EXPORTS = {
    "CheckStatus": "whylow.report",
    "Finding": "whylow.report",
    "InvalidInputError": "whylow.errors",
    "MissingDependencyError": "whylow.errors",
    "Report": "whylow.report",
    "Split": "whylow.inputs",
    "TemperatureScaler": "whylow.fixes.temperature",
    "VectorScaler": "whylow.fixes.temperature",
    "WhylowError": "whylow.errors",
    "compare": "whylow.compare",
    "diagnose": "whylow.diagnose",
    "load_calibrator": "whylow.fixes.temperature",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'whylow' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``whylow.diagnose`` and ``whylow.compare`` are functions, though modules of those names exist.

    Importing a submodule binds it on its package; for these two the function
    keeps the name, as an eager ``from whylow.diagnose import diagnose`` would.
    """

    def __setattr__(self, name, value):
        if name in ("diagnose", "compare") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
