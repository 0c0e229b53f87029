"""Validate raw splits and turn them into `SplitData`: the clean, typed inputs every check trusts.

Validation runs first and raises `InvalidInputError` with one sentence per
problem; checks never re-validate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from whylow.errors import InvalidInputError
from whylow.inputs.detect import infer_layout, predictions_to_probs, to_nhwc
from whylow.inputs.files import as_path
from whylow.inputs.loaders import distinct_class_names, load_split
from whylow.inputs.split import Split

__all__ = ["SplitData", "as_split", "prepare_splits", "SPLIT_NAMES"]

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class SplitData:
    """A validated split.

    Attributes
    ----------
    name : {"train", "val", "test"}
    n : int
        Number of samples.
    x : ndarray or None
        Inputs as given (possibly a memmap), in layout ``layout``.
    layout : str or None
        ``"NHWC"``, ``"NCHW"``, ``"NHW"`` or ``"tabular"``.
    y : ndarray of int64, shape (n,), or None
    probs : ndarray of float64, shape (n, n_classes), or None
    prediction_kind : {"softmax", "sigmoid", "logits"} or None
    prediction_source : {"given", "model"} or None
    """

    name: str
    n: int
    x: np.ndarray | None = None
    layout: str | None = None
    y: np.ndarray | None = None
    probs: np.ndarray | None = None
    prediction_kind: str | None = None
    prediction_source: str | None = None
    source: str | None = None
    files: list[str] | None = None
    corrupt_files: list[tuple[str, str]] = field(default_factory=list)
    preprocessing: list[str] = field(default_factory=list)  # declared steps applied to x, in words

    @property
    def is_image(self) -> bool:
        """True when ``x`` holds images rather than tabular features."""
        return self.x is not None and self.layout != "tabular"

    def images_nhwc(self) -> np.ndarray:
        """``x`` as an N×H×W×C view (no copy)."""
        if not self.is_image:
            raise ValueError(f"the {self.name} split has no images")
        return to_nhwc(self.x, self.layout)

    @property
    def y_pred(self) -> np.ndarray | None:
        """Predicted class ids (argmax of ``probs``)."""
        return None if self.probs is None else self.probs.argmax(axis=1)

    def describe(self) -> dict:
        """The split's entry in the report's ``inputs.splits``."""
        shape = None if self.x is None else [int(s) for s in self.x.shape[1:]]
        return {
            "n": int(self.n),
            "shape": shape,
            "dtype": None if self.x is None else str(self.x.dtype),
            "layout": self.layout,
            "has_labels": self.y is not None,
            "has_predictions": self.probs is not None,
            "prediction_source": self.prediction_source,
            "source": self.source,
            "corrupt_files": len(self.corrupt_files),
            "preprocessing": list(self.preprocessing),
        }


_SPLIT_FIELDS = ("x", "y", "probs", "logits", "layout", "source", "files", "corrupt_files", "class_names")


def as_split(value, name: str) -> Split | None:
    """Coerce what the user passed for a split into a `Split`.

    Accepts a `Split`, an ``(x, y)`` tuple, a dict of `Split` fields, a path
    (str, bytes or path-like: file or folder), a ``torch.utils.data.Dataset``
    or ``DataLoader`` yielding ``(x, y)``, or None.
    """
    if value is None or isinstance(value, Split):
        return value
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        return load_split(as_path(value, f"The {name} split path"), name)
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidInputError(
                f"The {name} split is a tuple of {len(value)} items; pass (x, y), or whylow.Split(x=..., y=..., probs=...) "
                "for more fields."
            )
        return Split(x=value[0], y=value[1])
    if isinstance(value, dict):
        unknown = [k for k in value if k not in _SPLIT_FIELDS]
        if unknown:
            import difflib

            key = unknown[0]
            close = difflib.get_close_matches(str(key), _SPLIT_FIELDS, n=1) if isinstance(key, str) else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidInputError(
                f"The {name} split dict has the unknown key {key!r}{hint}; its keys are some of x, y, probs, logits, "
                "layout, class_names."
            )
        return Split(**value)
    if isinstance(value, np.ndarray):
        raise InvalidInputError(
            f"The {name} split is a bare array; pass (x, y) or whylow.Split(x=..., y=..., probs=...) so whylow knows what it holds."
        )
    if isinstance(value, (int, float, complex, bool, set, frozenset)) or value is Ellipsis:
        raise InvalidInputError(
            f"The {name} split must be a whylow.Split, an (x, y) tuple, a path or a torch Dataset/DataLoader, "
            f"got {type(value).__name__}."
        )
    if hasattr(value, "__getitem__") and hasattr(value, "__len__") or hasattr(value, "__iter__"):
        return _split_from_torch(value, name)
    raise InvalidInputError(
        f"The {name} split must be a whylow.Split, an (x, y) tuple, a path or a torch Dataset/DataLoader, "
        f"got {type(value).__name__}."
    )


def _split_from_torch(value, name: str) -> Split:
    """Read a torch Dataset or DataLoader of ``(x, y)`` pairs into arrays."""
    xs, ys = [], []
    is_loader = type(value).__name__ == "DataLoader" or not hasattr(value, "__getitem__")
    items = iter(value) if is_loader else (value[i] for i in range(len(value)))
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidInputError(f"The {name} dataset must yield (x, y) pairs, got {type(item).__name__}.")
        x, y = (np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for v in item)
        if is_loader:
            xs.append(x)
            ys.append(np.atleast_1d(y))
        else:
            xs.append(x[None])
            ys.append(np.atleast_1d(y))
    if not xs:
        raise InvalidInputError(f"The {name} dataset is empty.")
    return Split(x=np.concatenate(xs), y=np.concatenate(ys))


_INT64_MAX = np.iinfo(np.int64).max


def _labels_to_ids(y, name: str, class_names: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """Map labels to int64 ids; string labels go through ``class_names``."""
    arr = y
    if arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind in "biuf" and np.isin(arr, (0, 1)).all() and (arr.sum(axis=1) == 1).all():
        return arr.argmax(axis=1).astype(np.int64), class_names  # one-hot
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} labels must be one id per sample (shape (n_samples,)), got shape {arr.shape}.")
    if arr.dtype.kind in "US" or arr.dtype == object:
        try:
            arr = arr.astype(str)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{name} labels must be integer class ids or class names.") from None
        if class_names is None:
            class_names = sorted(set(arr.tolist()))
        lookup = {c: i for i, c in enumerate(class_names)}
        unknown = sorted(set(arr.tolist()) - set(lookup))
        if unknown:
            raise InvalidInputError(
                f"{name} labels include {unknown[:5]} which are not among the class names {_shorten(class_names)}."
            )
        return np.array([lookup[v] for v in arr.tolist()], dtype=np.int64), class_names
    if arr.dtype.kind == "b":
        return arr.astype(np.int64), class_names
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"{name} labels contain NaN or infinite values; every sample needs a class id.")
        if not np.all(arr == np.round(arr)):
            raise InvalidInputError(
                f"{name} labels must be integer class ids, got fractional values such as {float(arr[arr != np.round(arr)][0])!r}."
            )
        if arr.size and (arr.max() >= 2.0**63 or arr.min() < -(2.0**63)):
            big = arr.max() if arr.max() >= 2.0**63 else arr.min()
            raise InvalidInputError(f"{name} labels include {big:.6g}, far beyond any class id; class ids run from 0 to n_classes - 1.")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidInputError(f"{name} labels must be integer class ids or class names, got dtype {arr.dtype}.")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
        raise InvalidInputError(f"{name} labels include {int(arr.max())}, far beyond any class id; class ids run from 0 to n_classes - 1.")
    return arr.astype(np.int64), class_names


def _shorten(names: list[str], n: int = 10) -> str:
    shown = ", ".join(repr(c) for c in names[:n])
    return f"[{shown}{', ...' if len(names) > n else ''}]"


def _field_array(value, field: str, split_name: str) -> np.ndarray:
    """A split field as an array with one entry per sample, or an InvalidInputError naming it."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
            value = value.detach().cpu().numpy()
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            if "inhomogeneous" in str(exc) or "sequence" in str(exc):
                raise InvalidInputError(
                    f"The {split_name} split's {field} is ragged: its entries have different shapes or lengths; "
                    "give an array with the same shape for every sample."
                ) from None
            raise InvalidInputError(f"The {split_name} split's {field} cannot be read as an array ({exc}).") from None
        except (TypeError, OverflowError, MemoryError) as exc:
            raise InvalidInputError(f"The {split_name} split's {field} cannot be read as an array ({type(exc).__name__}: {exc}).") from None
    if arr.ndim == 0:
        raise InvalidInputError(
            f"The {split_name} split's {field} is a single value (a 0-d array of {arr.dtype}); "
            "it must hold one entry per sample."
        )
    if arr.dtype == object and field != "y":
        raise InvalidInputError(
            f"The {split_name} split's {field} holds Python objects (dtype object: ragged rows or mixed types); "
            "give a numeric array."
        )
    if arr.dtype.kind == "c":
        raise InvalidInputError(f"The {split_name} split's {field} holds complex numbers; give real numbers.")
    if arr.dtype.kind in "mMV" or (field != "y" and arr.dtype.kind not in "biuf"):
        raise InvalidInputError(f"The {split_name} split's {field} must be numeric, got dtype {arr.dtype}.")
    return arr


def check_class_names(class_names, what: str = "class_names") -> list[str] | None:
    """Validate class names given as a sequence: strings (or ints), at least two, no repeats.

    Returns
    -------
    list of str or None
    """
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__iter__") or isinstance(class_names, dict):
        raise InvalidInputError(
            f"{what} must be a list of strings (one per class, in id order) or a path to a class-names file, "
            f"got {type(class_names).__name__}."
        )
    names = []
    for i, n in enumerate(class_names):
        if isinstance(n, np.generic):
            n = n.item()
        if isinstance(n, bool) or not isinstance(n, (str, int)):
            raise InvalidInputError(f"{what}[{i}] must be a string, got {type(n).__name__}.")
        names.append(str(n))
    return distinct_class_names(names, what)


def max_label_without_predictions(n_labels: int) -> int:
    """Largest class id accepted when no predictions or class names fix the number of classes: ``max(10 N, 100,000)``."""
    return max(10 * int(n_labels), 100_000)


def prepare_splits(splits: dict, class_names=None, layout: str | None = None) -> tuple[dict[str, SplitData], list[str]]:
    """Validate raw splits and return clean `SplitData` objects and the class names.

    Parameters
    ----------
    splits : dict of str to Split or None
        Raw splits by name (``train``, ``val``, ``test``).
    class_names : list of str, optional
        Names of the classes in id order.
    layout : str, optional
        Layout of the image arrays when it cannot be inferred.

    Returns
    -------
    splits : dict of str to SplitData
    class_names : list of str
    """
    raw = {k: v for k, v in splits.items() if v is not None}
    if "test" not in raw:
        raise InvalidInputError("A test split is required (--test FILE or test=...).")
    for name, s in raw.items():
        if not isinstance(s, Split):
            raise InvalidInputError(f"The {name} split must be a whylow.Split, got {type(s).__name__}.")
    if layout is not None and not isinstance(layout, str):
        raise InvalidInputError(f"layout must be one of NHWC, NCHW, NHW or tabular, got {layout!r}.")
    names_source = None
    if class_names is not None:
        class_names = check_class_names(class_names)
        names_source = "the given class names"
    else:
        for split_name in SPLIT_NAMES:
            s = raw.get(split_name)
            if s is not None and s.class_names:
                class_names = check_class_names(s.class_names, f"The {split_name} split's class names")
                names_source = f"the {split_name} split's classes ({_describe_names_origin(s)})"
                break
    out: dict[str, SplitData] = {}
    n_classes_seen = []
    for name in SPLIT_NAMES:
        s = raw.get(name)
        if s is None:
            continue
        if s.layout is not None and not isinstance(s.layout, str):
            raise InvalidInputError(f"The {name} split's layout must be one of NHWC, NCHW, NHW or tabular, got {s.layout!r}.")
        if s.class_names and class_names and list(map(str, s.class_names)) != list(class_names):
            raise InvalidInputError(
                f"The {name} split's classes {_shorten(list(map(str, s.class_names)))} differ from {names_source} "
                f"{_shorten(class_names)}."
            )
        fields = {
            k: _field_array(v, k, name)
            for k, v in (("x", s.x), ("y", s.y), ("probs", s.probs), ("logits", s.logits))
            if v is not None
        }
        lengths = {k: len(v) for k, v in fields.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k} has {v}" for k, v in lengths.items())
            raise InvalidInputError(f"The {name} split's arrays have different numbers of samples ({detail}); they must match.")
        n = next(iter(lengths.values()), 0)
        if n == 0:
            raise InvalidInputError(f"The {name} split is empty: it has no samples.")
        if "probs" in fields and "logits" in fields:
            raise InvalidInputError(f"The {name} split has both probs and logits; give one of them.")
        data = SplitData(name=name, n=n, source=s.source, files=s.files, corrupt_files=list(s.corrupt_files))
        if "x" in fields:
            x = fields["x"]
            if x.dtype.kind not in "biuf":
                raise InvalidInputError(f"The {name} split's x must be numeric, got dtype {x.dtype}.")
            data.layout = infer_layout(x.shape, f"The {name} split's x", s.layout or layout)
            if x.dtype.kind == "f" and x.size and not isinstance(x, np.memmap) and not np.isfinite(x).any():
                raise InvalidInputError(f"The {name} split's x holds only NaN or infinite values.")
            data.x = x
        if "y" in fields:
            had_names = class_names is not None
            data.y, class_names = _labels_to_ids(fields["y"], f"The {name} split's", class_names)
            if not had_names and class_names is not None:
                names_source = f"the {name} split's label values"
            if data.y.size and data.y.min() < 0:
                raise InvalidInputError(f"The {name} split's labels include {int(data.y.min())}; class ids start at 0.")
        kind = "logits" if "logits" in fields else "probs"
        if kind in fields:
            data.probs, data.prediction_kind = predictions_to_probs(fields[kind], f"The {name} split's {kind}", kind, n)
            data.prediction_source = "given"
            n_classes_seen.append((name, data.probs.shape[1]))
        if data.y is None and data.probs is None and data.x is None:
            raise InvalidInputError(f"The {name} split has neither inputs, labels nor predictions.")
        out[name] = data
    _match_grey_layouts(out)
    ks = {k for _, k in n_classes_seen}
    if len(ks) > 1:
        detail = ", ".join(f"{n}: {k}" for n, k in n_classes_seen)
        raise InvalidInputError(f"The splits' predictions have different numbers of classes ({detail}); they must match.")
    n_classes = ks.pop() if ks else None
    if class_names is not None:
        if n_classes is not None and n_classes != len(class_names):
            origin = "were given" if names_source == "the given class names" else f"come from {names_source}"
            raise InvalidInputError(
                f"The predictions have {n_classes} columns but {len(class_names)} class names {origin} "
                f"{_shorten(class_names, 5)}; they must match."
            )
        n_classes = len(class_names)
    labelled = [d for d in out.values() if d.y is not None and d.y.size]
    max_label = max((int(d.y.max()) for d in labelled), default=-1)
    if n_classes is None:
        n_labels = sum(d.n for d in labelled)
        limit = max_label_without_predictions(n_labels)
        if max_label > limit:
            worst = next(d for d in labelled if int(d.y.max()) == max_label)
            raise InvalidInputError(
                f"The {worst.name} split's labels include {max_label}, which would make {max_label + 1:,} classes for "
                f"{n_labels:,} labelled samples (class ids run from 0 to n_classes - 1, at most {limit:,} without "
                "predictions); renumber the labels, or give the predictions or the class names."
            )
        n_classes = max(max_label + 1, 2)
    for d in out.values():
        if d.y is not None and d.y.size and d.y.max() >= n_classes:
            raise InvalidInputError(
                f"The {d.name} split's labels include {int(d.y.max())}, out of range for {n_classes} classes (ids 0 to {n_classes - 1})."
            )
    if class_names is None:
        class_names = [str(k) for k in range(n_classes)]
    return out, class_names


def _match_grey_layouts(splits: dict[str, SplitData]) -> None:
    """Give N×H×W grey splits the channel axis of the other splits' N×1×H×W or N×H×W×1 images (a view).

    A folder of grey PNGs reads as N×H×W; the same images saved by a
    training script are often N×1×H×W. They are the same images, and the
    model (run on every split) needs one layout.
    """
    four_d = {(s.layout, s.x.shape[1:]) for s in splits.values() if s.is_image and s.layout in ("NHWC", "NCHW")}
    grey = {layout for layout, shape in four_d if (shape[0] if layout == "NCHW" else shape[-1]) == 1}
    if len(grey) != 1 or len(four_d) != 1:
        return
    layout = grey.pop()
    for s in splits.values():
        if s.is_image and s.layout == "NHW":
            s.x = s.x[:, None] if layout == "NCHW" else s.x[..., None]
            s.layout = layout


def _describe_names_origin(s: Split) -> str:
    if s.files is not None:
        return "its folder names"
    if s.source and str(s.source).lower().endswith((".csv", ".parquet")):
        return "its prob_<name>/logit_<name> columns"
    return "its class_names"
