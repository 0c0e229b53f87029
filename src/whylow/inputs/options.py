"""Options: check thresholds and reading limits, named ``<check>.<threshold>`` and ``limits.<name>``.

The names come from where they are declared: a check's thresholds are the
public class attributes of its `whylow.checks.Check` subclass (``calibration.min_gap``),
the reading limits the fields of `whylow.inputs.files.Limits` (``limits.max_image_pixels``),
plus ``summaries.chunk_size``. `validate_options` checks a Python ``options=``
dict, `parse_option_args` the CLI's ``--option NAME=VALUE`` strings; both
refuse unknown names (with "did you mean") and values of the wrong type or
range with an `InvalidInputError`, and return values of the default's type.

>>> opts, limits = validate_options({"calibration.min_gap": "0.05", "limits.max_image_pixels": "2e8"})
>>> opts["calibration.min_gap"], limits.max_image_pixels
(0.05, 200000000)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from whylow.errors import InvalidInputError
from whylow.inputs.files import BYTE_LIMITS, Limits

__all__ = ["OptionSpec", "option_specs", "validate_options", "parse_option_args", "parse_size"]


@dataclass(frozen=True)
class OptionSpec:
    """One option: its full name, default, value type, and allowed range or choices."""

    name: str
    default: Any
    kind: type  # bool, int, float or str
    low: float | None = None  # inclusive unless low_open
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    allow_none: bool = False
    size: bool = False  # accepts "4GiB", "500MB"

    def describe(self) -> str:
        what = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[self.kind]
        if self.size:
            what = "a size in bytes (e.g. 8GiB, 500MB, 1e9)"
        if self.choices:
            what = "one of " + ", ".join(self.choices)
        bounds = []
        if self.low is not None:
            bounds.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        if bounds:
            what += " " + " and ".join(bounds)
        default = "automatic" if self.default is None else self.default
        return f"{what} (default {default})"


#: Values of a str threshold, where the check accepts only some.
_CHOICES = {"decision-threshold.metric": ("balanced_accuracy", "f1")}
#: Thresholds that are probabilities (a significance level, a quantile): strictly between 0 and 1.
_OPEN_UNIT = re.compile(r"(^|_)(alpha|quantile)$")
#: Integer thresholds that count folds or resamples: at least 2 / at least 1.
_AT_LEAST = {"domain_folds": 2, "n_boot": 1}
#: Class attributes of a check that are not thresholds.
_NOT_THRESHOLDS = {"name", "codes", "requires"}


def _threshold_spec(full: str, attr: str, default) -> OptionSpec | None:
    if isinstance(default, bool):
        return OptionSpec(full, default, bool)
    if isinstance(default, (int, np.integer)):
        low = _AT_LEAST.get(attr, 1 if attr.startswith(("n_", "max_")) and default >= 1 else 0)
        return OptionSpec(full, int(default), int, low=low)
    if isinstance(default, (float, np.floating)):
        if _OPEN_UNIT.search(attr):
            return OptionSpec(full, float(default), float, low=0.0, high=1.0, low_open=True, high_open=True)
        return OptionSpec(full, float(default), float, low=0.0 if default >= 0 else None)
    if isinstance(default, str):
        return OptionSpec(full, default, str, choices=_CHOICES.get(full))
    return None


def option_specs() -> dict[str, OptionSpec]:
    """Every option name whylow knows, with its spec: check thresholds, ``limits.*``, ``summaries.chunk_size``."""
    from whylow.checks import Check, registered_checks

    specs: dict[str, OptionSpec] = {}
    base = set(vars(Check))
    for cls in registered_checks():
        for klass in reversed(cls.__mro__):
            if klass is object or klass is Check or not issubclass(klass, Check):
                continue
            for attr, value in vars(klass).items():
                if attr.startswith("_") or attr in _NOT_THRESHOLDS or attr in base or callable(value):
                    continue
                if isinstance(value, (staticmethod, classmethod, property)):
                    continue
                spec = _threshold_spec(f"{cls.name}.{attr}", attr, value)
                if spec is not None:
                    specs[spec.name] = spec
    for f in dataclasses.fields(Limits):
        default = f.default
        full = f"limits.{f.name}"
        if f.name in BYTE_LIMITS:
            specs[full] = OptionSpec(full, default, int, low=1, size=True, allow_none=default is None)
        elif f.name == "max_compression_ratio":
            specs[full] = OptionSpec(full, default, float, low=1.0)
        else:
            specs[full] = OptionSpec(full, default, int, low=1)
    specs["summaries.chunk_size"] = OptionSpec("summaries.chunk_size", None, int, low=1, allow_none=True)
    return specs


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtTpP]?)(i?)([bB]?)\s*$")
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(text: str) -> int | None:
    """``"8GiB"`` -> 8589934592, ``"500MB"`` -> 500000000, ``"1e9"`` -> 1000000000; None when unreadable."""
    m = _SIZE.match(text)
    if not m or len(text) > 40:
        return None
    number, unit, binary, _ = m.groups()
    value = float(number) * (1024 if binary else 1000) ** _UNITS[unit.lower()]
    if not math.isfinite(value) or value != math.floor(value):
        return None
    return int(value)


def _convert(spec: OptionSpec, value, where: str):
    """``value`` (a Python value or a CLI string) as the spec's type, or an InvalidInputError."""
    bad = InvalidInputError(f"{where} must be {spec.describe()}, got {_show(value)}.")
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "auto") and spec.allow_none):
        if spec.allow_none:
            return None
        raise bad
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        raise bad
    if spec.kind is str:
        if not isinstance(value, str) or not value:
            raise bad
        if spec.choices and value not in spec.choices:
            close = difflib.get_close_matches(value, spec.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidInputError(f"{where} must be {spec.describe()}, got {_show(value)}{hint}.")
        return value
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40:
            raise bad
        number = parse_size(text) if spec.size else None
        if number is None:
            try:
                number = float(text)
            except ValueError:
                raise bad from None
        value = number
    if not isinstance(value, (int, float)):
        raise bad
    if isinstance(value, float) and not math.isfinite(value):
        raise bad
    if spec.kind is int:
        if isinstance(value, float):
            if value != math.floor(value) or abs(value) > 2**63:
                raise bad
            value = int(value)
        if abs(value) > 2**63:
            raise bad
    else:
        value = float(value)
    if spec.low is not None and (value < spec.low or (spec.low_open and value == spec.low)):
        raise bad
    if spec.high is not None and (value > spec.high or (spec.high_open and value == spec.high)):
        raise bad
    return value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown(name, specs: dict[str, OptionSpec], where: str) -> InvalidInputError:
    if not isinstance(name, str):
        return InvalidInputError(f"{where} names must be strings such as 'calibration.min_gap', got {_show(name)}.")
    close = difflib.get_close_matches(name, list(specs), n=1, cutoff=0.6)
    if close:
        return InvalidInputError(f"{where} has the unknown option {name!r}; did you mean {close[0]!r}?")
    owner, _, attr = name.partition(".")
    owners = sorted({k.split(".")[0] for k in specs})
    if owner in owners:
        own = sorted(k.split(".", 1)[1] for k in specs if k.startswith(owner + "."))
        close = difflib.get_close_matches(attr, own, n=1, cutoff=0.5)
        hint = f"did you mean {owner + '.' + close[0]!r}? Its options are" if close else "its options are"
        return InvalidInputError(f"{where} has the unknown option {name!r}; {hint} {', '.join(own)}.")
    by_code = _check_of_code()
    if owner in by_code and f"{by_code[owner]}.{attr}" in specs:
        return InvalidInputError(
            f"{where} has the unknown option {name!r}; {owner} is reported by the check {by_code[owner]!r}: "
            f"did you mean {by_code[owner] + '.' + attr!r}?"
        )
    close = difflib.get_close_matches(owner, owners, n=1, cutoff=0.6)
    if owner in by_code:
        close = [by_code[owner]]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return InvalidInputError(
        f"{where} has the unknown option {name!r}: {owner!r} is not a check{hint}; options are named CHECK.THRESHOLD "
        f"or limits.NAME, the checks being {', '.join(o for o in owners if o not in ('limits', 'summaries'))}."
    )


def _check_of_code() -> dict[str, str]:
    """Finding code -> name of the check that reports it, where the two differ."""
    from whylow.checks import registered_checks

    return {code: cls.name for cls in registered_checks() for code in cls.codes if code != cls.name}


def validate_options(options, *, only: tuple[str, ...] | None = None, source: str = "options") -> tuple[dict, Limits]:
    """Check an ``options`` mapping; return the threshold overrides (typed) and the reading `Limits`.

    Parameters
    ----------
    options : mapping of str to value, or None
        ``{"<check>.<threshold>": value, "limits.<name>": value}``; values may
        be numbers or the strings the CLI passes.
    only : tuple of str, optional
        Option prefixes allowed here (e.g. ``("limits",)`` for commands that
        only read files).
    source : str
        How the caller names the mapping in messages.

    Returns
    -------
    thresholds : dict
        The non-limit options, converted to their defaults' types.
    limits : Limits
    """
    if options is None:
        return {}, Limits()
    if not isinstance(options, Mapping):
        raise InvalidInputError(
            f"{source} must be a dict such as {{'calibration.min_gap': 0.05}}, got {type(options).__name__}."
        )
    specs = option_specs()
    if only is not None:
        specs = {k: v for k, v in specs.items() if k.split(".")[0] in only}
    thresholds, limit_values = {}, {}
    for name, value in options.items():
        spec = specs.get(name) if isinstance(name, str) else None
        if spec is None:
            if only is not None and isinstance(name, str) and name.split(".")[0] not in only:
                raise InvalidInputError(
                    f"{source} {name!r} is not accepted by this command, which takes only "
                    f"{' and '.join(o + '.NAME' for o in only)} options: {', '.join(sorted(specs))}."
                )
            raise _unknown(name, specs, source)
        converted = _convert(spec, value, f"{source}[{name!r}]" if source == "options" else f"{source} {name}")
        if name.startswith("limits."):
            limit_values[name.split(".", 1)[1]] = converted
        else:
            thresholds[name] = converted
    return thresholds, Limits(**limit_values)


def parse_option_args(values, *, only: tuple[str, ...] | None = None) -> tuple[dict, Limits]:
    """Parse the CLI's repeatable ``--option NAME=VALUE`` strings; see `validate_options`."""
    raw: dict[str, str] = {}
    for item in values or ():
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or not name or "." not in name:
            raise InvalidInputError(
                f"--option {item!r} must look like CHECK.THRESHOLD=VALUE (e.g. calibration.min_gap=0.05) or "
                "limits.NAME=VALUE (e.g. limits.max_image_pixels=200000000)."
            )
        if name in raw:
            raise InvalidInputError(f"--option {name} is given twice ({raw[name]!r} and {value!r}); give it once.")
        raw[name] = value
    return validate_options(raw, only=only, source="--option")
