"""Declared preprocessing: what the user's pipeline does to a split's files before the model sees them.

A folder of PNGs holds 0-255 pixels; the model was trained on ``x / 255``,
perhaps normalised with ImageNet's mean and std, perhaps on RGB where the
files are grey. whylow cannot guess that without blaming the user's data, so
it is said per split (`Preprocessing`), from the command line::

    --scale test=1/255 --mean imagenet --std imagenet --color test=rgb --layout train=NCHW

(each option ``[SPLIT=]VALUE`` and repeatable; without a split name it applies
to every split) or from Python (``diagnose(..., preprocess={"test": {"scale":
1 / 255}}, transform={"test": fn})``). The steps run in a fixed order, the
order of a torchvision pipeline: the layout is declared, the colour converted
(grey to RGB repeats the channel, RGB to grey takes the luminance ``0.299 R +
0.587 G + 0.114 B``), the values scaled, normalised (``(x - mean) / std`` per
channel), then the user's ``transform`` callable runs, in chunks of rows. The
result is a new float32 array: the user's arrays and files are never changed.
The report lists the steps applied to each split (``inputs.splits.<name>.preprocessing``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from whylow.errors import InvalidInputError
from whylow.fixes.pipeline_bugs import KNOWN_NORMALISATIONS
from whylow.inputs.detect import infer_layout, to_nhwc
from whylow.inputs.split import Split

__all__ = ["NORMALISATION_PRESETS", "Preprocessing", "apply_preprocessing", "parse_split_values", "preprocessing_by_split"]

SPLIT_NAMES = ("train", "val", "test")

#: ``--mean`` / ``--std`` presets, in [0, 1] intensity units.
NORMALISATION_PRESETS = {
    "imagenet": KNOWN_NORMALISATIONS["ImageNet"],
    "cifar10": KNOWN_NORMALISATIONS["CIFAR-10"],
    "mnist": KNOWN_NORMALISATIONS["MNIST"],
}

_LAYOUTS = ("NHWC", "NCHW", "NHW", "TABULAR")
_COLOURS = {"rgb": "rgb", "grey": "grey", "gray": "grey"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHUNK_ROWS = 1024


@dataclass
class Preprocessing:
    """The preprocessing declared for one split.

    Parameters
    ----------
    layout : {"NHWC", "NCHW", "NHW", "tabular"}, optional
        Layout of the split's ``x`` as stored.
    color : {"rgb", "grey"}, optional
        Colour the model expects: grey images get three equal channels, RGB
        images their luminance.
    scale : float, optional
        Factor the values are multiplied by (``1/255`` for 0-255 files and a model trained on [0, 1]).
    mean, std : tuple of float, optional
        Per-channel normalisation ``(x - mean) / std`` after scaling (one value, or one per channel).
    transform : callable, optional
        ``x -> x`` on a chunk of rows in the split's layout, applied last.
    """

    layout: str | None = None
    color: str | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    transform: Callable | None = None
    names: dict = field(default_factory=dict)  # preset names of mean / std, for the report

    @property
    def changes_values(self) -> bool:
        """Whether any step rewrites ``x`` (a declared layout alone does not)."""
        return any(v is not None for v in (self.color, self.scale, self.mean, self.std, self.transform))

    def steps(self) -> list[str]:
        """The steps applied, in order, in words for the report."""
        out = []
        if self.layout:
            out.append(f"layout {self.layout}")
        if self.color:
            out.append(f"converted to {'RGB' if self.color == 'rgb' else 'grey'}")
        if self.scale is not None:
            out.append(f"multiplied by {_fraction(self.scale)}")
        if self.mean is not None or self.std is not None:
            mean = self.names.get("mean") or _numbers(self.mean or (0.0,))
            std = self.names.get("std") or _numbers(self.std or (1.0,))
            out.append(f"normalised (x - mean) / std with mean {mean}, std {std}")
        if self.transform is not None:
            out.append(f"transform {getattr(self.transform, '__name__', type(self.transform).__name__)}")
        return out


def _fraction(v: float) -> str:
    inv = 1.0 / v if v else math.inf
    if v and abs(inv - round(inv)) < 1e-6 * inv and round(inv) > 1:
        return f"1/{round(inv)}"
    return f"{v:g}"


def _numbers(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


# -- parsing -------------------------------------------------------------------------------------
def parse_split_values(values, option: str) -> dict[str, str]:
    """``["test=1/255", "0.5"]`` -> ``{"test": "1/255", "*": "0.5"}`` for a ``[SPLIT=]VALUE`` option.

    Parameters
    ----------
    values : list of str or None
        The option's values as typed, one per occurrence.
    option : str
        The option's name (``--scale``), for messages.

    Returns
    -------
    dict of str to str
        Value by split name; ``"*"`` for the value given without a split name.

    Examples
    --------
    >>> parse_split_values(["test=1/255", "0.5"], "--scale")
    {'test': '1/255', '*': '0.5'}
    """
    out: dict[str, str] = {}
    for raw in values or []:
        text = str(raw).strip()
        split, sep, value = text.partition("=")
        if not sep:
            split, value = "*", text
        split, value = split.strip().lower(), value.strip()
        if split != "*" and split not in SPLIT_NAMES:
            raise InvalidInputError(f"{option} {text!r}: {split!r} is not a split; use train=, val= or test=, or no split name for all.")
        if not value:
            raise InvalidInputError(f"{option} {text!r} has no value after '='.")
        if split in out:
            raise InvalidInputError(f"{option} is given twice for {'every split' if split == '*' else 'the ' + split + ' split'}.")
        out[split] = value
    return out


def _parse_scale(text, where: str) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*(?:/\s*([0-9.eE+-]+)\s*)?", str(text))
        try:
            value = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0) if m else math.nan
        except (ValueError, ZeroDivisionError):
            value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"{where} must be a positive number or fraction such as 1/255, got {text!r}.")
    return value


def _parse_constants(text, which: str, where: str) -> tuple[tuple[float, ...], str | None]:
    """Mean or std: a preset name or one or three numbers (comma- or space-separated)."""
    if isinstance(text, str):
        key = text.strip().lower().replace("-", "")
        if key in NORMALISATION_PRESETS:
            mean, std = NORMALISATION_PRESETS[key]
            return tuple(mean if which == "mean" else std), key
        parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    else:
        parts = list(np.atleast_1d(np.asarray(text, dtype=object)).ravel())
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        values = ()
    if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values) or (which == "std" and min(values) <= 0):
        presets = ", ".join(NORMALISATION_PRESETS)
        need = "positive " if which == "std" else ""
        raise InvalidInputError(f"{where} must be one or three {need}numbers (e.g. 0.5,0.5,0.5) or a preset ({presets}), got {text!r}.")
    return values, None


def _one_split(spec, name: str, cli: bool) -> Preprocessing:
    if isinstance(spec, Preprocessing):
        return spec
    where = f"preprocess[{name!r}]"
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"{where} must be a dict of layout, color, scale, mean, std; got {type(spec).__name__}.")
    unknown = set(spec) - {"layout", "color", "scale", "mean", "std"}
    if unknown:
        raise InvalidInputError(f"{where} has unknown key(s) {', '.join(map(repr, sorted(unknown)))}; use layout, color, scale, mean, std.")

    def label(key: str) -> str:
        if cli:
            return f"--{key}" if name == "*" else f"--{key} for the {name} split"
        return f"{where}[{key!r}]"

    p = Preprocessing()
    if spec.get("layout") is not None:
        layout = str(spec["layout"]).strip().upper()
        if layout not in _LAYOUTS:
            raise InvalidInputError(f"{label('layout')} must be one of NHWC, NCHW, NHW or tabular, got {spec['layout']!r}.")
        p.layout = "tabular" if layout == "TABULAR" else layout
    if spec.get("color") is not None:
        colour = _COLOURS.get(str(spec["color"]).strip().lower())
        if colour is None:
            raise InvalidInputError(f"{label('color')} must be rgb or grey, got {spec['color']!r}.")
        p.color = colour
    if spec.get("scale") is not None:
        p.scale = _parse_scale(spec["scale"], label("scale"))
    for which in ("mean", "std"):
        if spec.get(which) is not None:
            values, preset = _parse_constants(spec[which], which, label(which))
            setattr(p, which, values)
            if preset:
                p.names[which] = preset
    return p


def preprocessing_by_split(preprocess=None, transform=None, *, cli: bool = False) -> dict[str, Preprocessing]:
    """Validate the declared preprocessing and return it per split.

    Parameters
    ----------
    preprocess : dict, optional
        ``{split or "*": {"layout", "color", "scale", "mean", "std"}}``; ``"*"`` applies to every split,
        a split's own entry overrides it key by key.
    transform : callable or dict of str to callable, optional
        One callable for every split, or one per split name.
    cli : bool
        Name the command-line options (``--scale``) in error messages instead of the ``preprocess`` keys.

    Returns
    -------
    dict of str to Preprocessing
        Only the splits with something declared.
    """
    if preprocess is None:
        preprocess = {}
    if not isinstance(preprocess, Mapping):
        raise InvalidInputError(f"preprocess must be a dict of split name to steps, got {type(preprocess).__name__}.")
    for key in preprocess:
        if key != "*" and key not in SPLIT_NAMES:
            raise InvalidInputError(f"preprocess has key {key!r}; use 'train', 'val', 'test' or '*' (every split).")
    if transform is None:
        transforms = {}
    elif callable(transform):
        transforms = dict.fromkeys(SPLIT_NAMES, transform)
    elif isinstance(transform, Mapping):
        transforms = dict(transform)
        for key, fn in transforms.items():
            if key not in SPLIT_NAMES:
                raise InvalidInputError(f"transform has key {key!r}; use 'train', 'val' or 'test'.")
            if not callable(fn):
                raise InvalidInputError(f"transform[{key!r}] must be callable (x -> x), got {type(fn).__name__}.")
    else:
        raise InvalidInputError(f"transform must be a callable or a dict of split name to callable, got {type(transform).__name__}.")
    shared = preprocess.get("*") or {}
    if shared and not isinstance(shared, Preprocessing):
        _one_split(shared, "*", cli)  # a bad shared value is named once, not as the first split's
    out = {}
    for name in SPLIT_NAMES:
        own = preprocess.get(name) or {}
        if isinstance(shared, Preprocessing) or isinstance(own, Preprocessing):
            p = own if isinstance(own, Preprocessing) else shared
        else:
            if not isinstance(shared, Mapping):
                raise InvalidInputError(f"preprocess['*'] must be a dict of layout, color, scale, mean, std; got {type(shared).__name__}.")
            p = _one_split({**shared, **own}, name, cli)
        if name in transforms:
            p = replace(p, transform=transforms[name])
        if p.layout or p.changes_values:
            out[name] = p
    return out


# -- applying ------------------------------------------------------------------------------------
def apply_preprocessing(split: Split, prep: Preprocessing, name: str) -> Split:
    """A copy of ``split`` whose ``x`` went through ``prep`` (the split itself is not changed).

    Parameters
    ----------
    split : Split
    prep : Preprocessing
    name : str
        The split's name, for messages.

    Returns
    -------
    Split
        ``layout`` set to the layout of the new ``x``.
    """
    if split.x is None:
        if prep.changes_values:
            raise InvalidInputError(f"Preprocessing was declared for the {name} split, but it has no inputs x.")
        return split
    x = split.x if hasattr(split.x, "shape") else np.asarray(split.x)
    layout = infer_layout(x.shape, f"The {name} split's x", prep.layout or split.layout)
    if not prep.changes_values:
        return replace(split, layout=layout)
    if layout == "tabular" and (prep.color or prep.mean is not None and len(prep.mean) == 3):
        raise InvalidInputError(f"The {name} split's x is tabular (N×D): colour conversion and per-channel constants need images.")
    out_layout = _output_layout(layout, prep.color)
    chunks = [_apply_chunk(np.asarray(x[i:i + _CHUNK_ROWS]), layout, out_layout, prep, name)
              for i in range(0, len(x), _CHUNK_ROWS)]
    new = np.concatenate(chunks) if chunks else np.zeros((0,), np.float32)
    if len(new) != len(x):
        raise InvalidInputError(f"The {name} split's transform returned {len(new)} rows for {len(x)}; it must keep one row per image.")
    return replace(split, x=new, layout=infer_layout(new.shape, f"The {name} split's transformed x", out_layout if prep.transform is None else None))


def _output_layout(layout: str, colour: str | None) -> str:
    """Grey N×H×W images made RGB gain a channel axis (last); every other layout is kept."""
    return "NHWC" if colour == "rgb" and layout == "NHW" else layout


def _apply_chunk(x: np.ndarray, layout: str, out_layout: str, prep: Preprocessing, name: str) -> np.ndarray:
    x = x.astype(np.float32, copy=True)
    if layout != "tabular":
        img = to_nhwc(x, layout)
        img = _convert_colour(img, prep.color, name)
        if prep.scale is not None:
            img = img * np.float32(prep.scale)
        img = _normalise(img, prep, name)
        x = _from_nhwc(img, out_layout)
    else:
        if prep.scale is not None:
            x = x * np.float32(prep.scale)
        x = _normalise(x, prep, name)
    if prep.transform is not None:
        try:
            x = np.asarray(prep.transform(x), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - the user's callable: its failure is an input error
            raise InvalidInputError(f"The {name} split's transform failed: {type(exc).__name__}: {exc}") from None
    return x


def _convert_colour(img: np.ndarray, colour: str | None, name: str) -> np.ndarray:
    c = img.shape[-1]
    if colour is None:
        return img
    if colour == "rgb":
        if c == 3:
            return img
        if c == 1:
            return np.repeat(img, 3, axis=-1)
        raise InvalidInputError(f"The {name} split's images have {c} channels; only grey (1) or RGB (3) images can be converted to RGB.")
    if c == 1:
        return img
    if c in (3, 4):
        return (img[..., :3] @ _LUMA)[..., None]
    raise InvalidInputError(f"The {name} split's images have {c} channels; only RGB (3 or 4 with alpha) images can be converted to grey.")


def _normalise(x: np.ndarray, prep: Preprocessing, name: str) -> np.ndarray:
    if prep.mean is None and prep.std is None:
        return x
    c = x.shape[-1]
    mean = np.asarray(prep.mean or (0.0,), dtype=np.float32)
    std = np.asarray(prep.std or (1.0,), dtype=np.float32)
    for what, v in (("mean", mean), ("std", std)):
        if len(v) not in (1, c):
            raise InvalidInputError(f"The {name} split has {c} channels but {len(v)} {what} values were given; give 1 or {c}.")
    return (x - mean) / std


def _from_nhwc(img: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHWC":
        return img
    if layout == "NCHW":
        return np.ascontiguousarray(np.moveaxis(img, -1, 1))
    if layout == "NHW":
        return img[..., 0]
    raise ValueError(f"not an image layout: {layout}")
