"""Infer what the inputs are: image layout and the kind of predictions."""

from __future__ import annotations

import numpy as np

from whylow.errors import InvalidInputError

__all__ = ["LAYOUTS", "infer_layout", "to_nhwc", "predictions_to_probs", "softmax"]

LAYOUTS = ("NHWC", "NCHW", "NHW", "tabular")
_CHANNELS = (1, 3, 4)


def infer_layout(shape: tuple[int, ...], name: str, layout: str | None = None) -> str:
    """Return the layout of an input array of the given shape.

    Parameters
    ----------
    shape : tuple of int
        Shape of ``x``, samples first.
    name : str
        Name of the input, used in error messages (e.g. ``"test x"``).
    layout : {"NHWC", "NCHW", "NHW", "tabular"} or None
        Layout stated by the user; checked against the shape when given.

    Returns
    -------
    str
        One of ``LAYOUTS``.
    """
    ndim = len(shape)
    if layout is not None:
        layout = layout.upper() if layout.lower() != "tabular" else "tabular"
        expected = {"NHWC": 4, "NCHW": 4, "NHW": 3, "tabular": 2}
        if layout not in expected:
            raise InvalidInputError(f"--layout must be one of NHWC, NCHW, NHW or tabular, got {layout!r}.")
        if expected[layout] != ndim:
            raise InvalidInputError(
                f"{name} has shape {tuple(shape)} ({ndim} axes) but layout {layout} needs {expected[layout]} axes."
            )
        return layout
    if ndim == 2:
        return "tabular"
    if ndim == 3:
        return "NHW"
    if ndim != 4:
        raise InvalidInputError(
            f"{name} must have 2 (N×D features), 3 (N×H×W) or 4 (N×H×W×C or N×C×H×W) axes, got shape {tuple(shape)}."
        )
    first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
    if last and not first:
        return "NHWC"
    if first and not last:
        return "NCHW"
    if not first and not last:
        if shape[1] == shape[2]:
            return "NHWC"
        if shape[2] == shape[3]:
            return "NCHW"
    raise InvalidInputError(
        f"{name} has shape {tuple(shape)}, which could be N×H×W×C or N×C×H×W; state it with --layout NHWC or --layout NCHW."
    )


def to_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    """Return a view of image array ``x`` in N×H×W×C layout (no copy)."""
    if layout == "NHWC":
        return x
    if layout == "NCHW":
        return np.moveaxis(x, 1, -1)
    if layout == "NHW":
        return x[..., None]
    raise ValueError(f"not an image layout: {layout}")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed stably in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def predictions_to_probs(values, name: str, kind: str = "auto", n_samples: int | None = None):
    """Validate predictions and turn them into an (n_samples, n_classes) probability matrix.

    Parameters
    ----------
    values : array-like of shape (n_samples,), (n_samples, 1) or (n_samples, n_classes)
        Probabilities or logits.
    name : str
        Name of the input for messages, e.g. ``"test probs"``.
    kind : {"auto", "probs", "logits"}
        What the caller says the values are. ``"auto"`` decides from the
        values: rows that sum to 1 (or single columns in [0, 1]) are
        probabilities, anything else is logits.
    n_samples : int, optional
        Expected number of rows.

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes)
        Probabilities, binary problems as two columns.
    prediction_kind : {"softmax", "sigmoid", "logits"}
        What the values were.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric, got values that cannot be read as numbers ({exc}).") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must have shape (n_samples, n_classes) or (n_samples,), got {arr.shape}.")
    n, k = arr.shape
    if n == 0:
        raise InvalidInputError(f"{name} is empty: it has 0 rows.")
    if k == 0:
        raise InvalidInputError(f"{name} has 0 columns; give one column per class (or one for a binary sigmoid).")
    if n_samples is not None and n != n_samples:
        raise InvalidInputError(f"{name} has {n} rows but the split has {n_samples} samples; they must match.")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise InvalidInputError(
            f"{name} contains {int(bad.sum())} NaN or infinite values (first in row {row}); fix the model output or drop those rows."
        )
    in_unit = arr.min() >= 0.0 and arr.max() <= 1.0
    if k == 1:
        if kind == "probs" and not in_unit:
            raise InvalidInputError(
                f"{name} holds values outside [0, 1] (from {arr.min():.3g} to {arr.max():.3g}), so they are not sigmoid "
                "probabilities; pass them as logits instead."
            )
        if kind == "logits" or (kind == "auto" and not in_unit):
            p = _sigmoid(arr[:, 0])
            return np.column_stack([1.0 - p, p]), "logits"
        return np.column_stack([1.0 - arr[:, 0], arr[:, 0]]), "sigmoid"
    sums = arr.sum(axis=1)
    sums_to_one = bool(np.all(np.abs(sums - 1.0) <= 1e-3 * max(1.0, k / 100)))
    if kind == "probs":
        if not in_unit:
            raise InvalidInputError(
                f"{name} holds values outside [0, 1] (from {arr.min():.3g} to {arr.max():.3g}); these look like logits, "
                "so pass them as logits (npz key 'logits', columns logit_<k>) instead of probabilities."
            )
        if not sums_to_one:
            raise InvalidInputError(
                f"{name} rows must sum to 1 but their sums range from {sums.min():.3g} to {sums.max():.3g}; "
                "pass scores that are not softmax outputs as logits."
            )
    if kind == "logits" or (kind == "auto" and not (in_unit and sums_to_one)):
        return softmax(arr), "logits"
    return arr / sums[:, None], "softmax"
