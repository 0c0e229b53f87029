"""Validate raw splits and turn them into `SplitData`: the clean, typed inputs every check trusts.

Validation runs first and raises `InvalidInputError` with one sentence per
problem; checks never re-validate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from whylow.errors import InvalidInputError
from whylow.inputs.detect import infer_layout, predictions_to_probs, to_nhwc
from whylow.inputs.loaders import load_split
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
        }


def as_split(value, name: str) -> Split | None:
    """Coerce what the user passed for a split into a `Split`.

    Accepts a `Split`, an ``(x, y)`` tuple, a path (file or folder), a
    ``torch.utils.data.Dataset`` or ``DataLoader`` yielding ``(x, y)``,
    or None.
    """
    if value is None or isinstance(value, Split):
        return value
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        return load_split(value, name)
    if isinstance(value, tuple) and len(value) == 2:
        return Split(x=value[0], y=value[1])
    if isinstance(value, dict):
        return Split(**value)
    if isinstance(value, np.ndarray):
        raise InvalidInputError(
            f"The {name} split is a bare array; pass (x, y) or whylow.Split(x=..., y=..., probs=...) so whylow knows what it holds."
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


def _labels_to_ids(y, name: str, class_names: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """Map labels to int64 ids; string labels go through ``class_names``."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] > 1 and np.isin(arr, (0, 1)).all() and (arr.sum(axis=1) == 1).all():
        return arr.argmax(axis=1).astype(np.int64), class_names  # one-hot
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} labels must be one id per sample (shape (n_samples,)), got shape {arr.shape}.")
    if arr.dtype.kind in "US" or arr.dtype == object:
        arr = arr.astype(str)
        if class_names is None:
            class_names = sorted(set(arr.tolist()))
        lookup = {c: i for i, c in enumerate(class_names)}
        unknown = sorted(set(arr.tolist()) - set(lookup))
        if unknown:
            raise InvalidInputError(
                f"{name} labels include {unknown[:5]} which are not among the class names {class_names[:10]}."
            )
        return np.array([lookup[v] for v in arr.tolist()], dtype=np.int64), class_names
    if arr.dtype.kind == "b":
        return arr.astype(np.int64), class_names
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"{name} labels contain NaN or infinite values; every sample needs a class id.")
        if not np.all(arr == np.round(arr)):
            raise InvalidInputError(
                f"{name} labels must be integer class ids, got fractional values such as {arr[arr != np.round(arr)][0]!r}."
            )
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidInputError(f"{name} labels must be integer class ids or class names, got dtype {arr.dtype}.")
    return arr.astype(np.int64), class_names


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
    names_from_data = next((s.class_names for s in raw.values() if s.class_names), None)
    class_names = list(class_names) if class_names is not None else names_from_data
    out: dict[str, SplitData] = {}
    n_classes_seen = []
    for name in SPLIT_NAMES:
        s = raw.get(name)
        if s is None:
            continue
        if s.class_names and class_names and list(s.class_names) != list(class_names):
            raise InvalidInputError(
                f"The {name} split's classes {s.class_names[:10]} differ from the other inputs' classes {class_names[:10]}."
            )
        n = s.n_samples
        if n == 0:
            raise InvalidInputError(f"The {name} split is empty: it has no samples.")
        lengths = {k: len(v) for k, v in (("x", s.x), ("y", s.y), ("probs", s.probs), ("logits", s.logits)) if v is not None}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k} has {v}" for k, v in lengths.items())
            raise InvalidInputError(f"The {name} split's arrays have different numbers of samples ({detail}); they must match.")
        data = SplitData(name=name, n=n, source=s.source, files=s.files, corrupt_files=list(s.corrupt_files))
        if s.x is not None:
            x = s.x if isinstance(s.x, np.ndarray) else np.asarray(s.x)
            if x.dtype.kind not in "biuf":
                raise InvalidInputError(f"The {name} split's x must be numeric, got dtype {x.dtype}.")
            data.layout = infer_layout(x.shape, f"The {name} split's x", s.layout or layout)
            if x.dtype.kind == "f" and x.size and not isinstance(x, np.memmap) and not np.isfinite(x).any():
                raise InvalidInputError(f"The {name} split's x holds only NaN or infinite values.")
            data.x = x
        if s.y is not None:
            data.y, class_names = _labels_to_ids(s.y, f"The {name} split's", class_names)
            if data.y.size and data.y.min() < 0:
                raise InvalidInputError(f"The {name} split's labels include {int(data.y.min())}; class ids start at 0.")
        values, kind = (s.logits, "logits") if s.logits is not None else (s.probs, "probs")
        if values is not None:
            data.probs, data.prediction_kind = predictions_to_probs(values, f"The {name} split's {kind}", kind, n)
            data.prediction_source = "given"
            n_classes_seen.append((name, data.probs.shape[1]))
        if data.y is None and data.probs is None and data.x is None:
            raise InvalidInputError(f"The {name} split has neither inputs, labels nor predictions.")
        out[name] = data
    ks = {k for _, k in n_classes_seen}
    if len(ks) > 1:
        detail = ", ".join(f"{n}: {k}" for n, k in n_classes_seen)
        raise InvalidInputError(f"The splits' predictions have different numbers of classes ({detail}); they must match.")
    n_classes = ks.pop() if ks else None
    if class_names is not None:
        if n_classes is not None and n_classes != len(class_names):
            raise InvalidInputError(
                f"The predictions have {n_classes} columns but {len(class_names)} class names were given; they must match."
            )
        n_classes = len(class_names)
    max_label = max((int(d.y.max()) for d in out.values() if d.y is not None and d.y.size), default=-1)
    if n_classes is None:
        n_classes = max(max_label + 1, 2)
    for d in out.values():
        if d.y is not None and d.y.size and d.y.max() >= n_classes:
            raise InvalidInputError(
                f"The {d.name} split's labels include {int(d.y.max())}, out of range for {n_classes} classes (ids 0 to {n_classes - 1})."
            )
    if class_names is None:
        class_names = [str(k) for k in range(n_classes)]
    return out, class_names
