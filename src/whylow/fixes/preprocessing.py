"""Undo a preprocessing difference on inputs: value maps, channel permutations, flips and rotations, resizing.

Every transform describes how test inputs relate to training inputs and has
the same three methods: ``apply(x, layout)`` maps training-space inputs to
test space (scenarios and tests inject a mismatch with it), ``invert(x,
layout)`` maps test inputs back into the training inputs' space (what
whylow feeds the model to prove that a preprocessing mismatch is the
cause), and ``to_dict()`` describes it for the report.

`InputTransform` is a per-channel affine map with a channel permutation::

    test[..., c] = scale[c] * train[..., perm[c]] + offset[c]

(``perm[c]`` is the training channel that test channel ``c`` holds).
`GeometricTransform` is a flip, a rotation by a multiple of 90° or a
transpose of the image plane; `WrapTransform` is the signed/unsigned 8-bit
confusion (``(x + 128) mod 256``); `ComposedTransform` chains them.

`rerun_on_fixed` re-runs the model on corrected inputs and returns accuracy
and log-loss before and after on the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from whylow.errors import InvalidInputError

__all__ = ["InputTransform", "GeometricTransform", "WrapTransform", "ComposedTransform", "resize_images", "rerun_on_fixed"]


def _channel_axis(layout: str) -> int | None:
    return {"NHWC": -1, "NCHW": 1, "NHW": None, "tabular": -1}[layout]


@dataclass
class InputTransform:
    """A per-channel affine map with a channel permutation, from training inputs to test inputs.

    Parameters
    ----------
    scale : ndarray of shape (n_channels,)
        Multiplier per test channel (never 0).
    offset : ndarray of shape (n_channels,)
        Added after scaling, per test channel.
    perm : ndarray of int, shape (n_channels,)
        ``perm[c]`` is the training channel that test channel ``c`` holds.

    Examples
    --------
    >>> import numpy as np
    >>> t = InputTransform(scale=np.array([255 / 127]), offset=np.array([0.0]), perm=np.array([0]))
    >>> x = np.array([[[0.0, 0.5]]], dtype=np.float32)  # N×H×W
    >>> np.allclose(t.invert(t.apply(x, "NHW"), "NHW"), x)
    True
    """

    scale: np.ndarray
    offset: np.ndarray
    perm: np.ndarray

    def __post_init__(self):
        self.scale = np.asarray(self.scale, dtype=np.float64).ravel()
        self.offset = np.asarray(self.offset, dtype=np.float64).ravel()
        self.perm = np.asarray(self.perm, dtype=np.int64).ravel()
        c = len(self.scale)
        if len(self.offset) != c or len(self.perm) != c:
            raise InvalidInputError(
                f"InputTransform needs scale, offset and perm of the same length, got {len(self.scale)}, {len(self.offset)}, {len(self.perm)}."
            )
        if sorted(self.perm.tolist()) != list(range(c)):
            raise InvalidInputError(f"InputTransform perm must be a permutation of 0..{c - 1}, got {self.perm.tolist()}.")
        if np.any(self.scale == 0) or not np.all(np.isfinite(self.scale)) or not np.all(np.isfinite(self.offset)):
            raise InvalidInputError("InputTransform scale must be finite and non-zero, and offset finite.")

    @classmethod
    def identity(cls, n_channels: int) -> "InputTransform":
        """The transform that changes nothing."""
        return cls(np.ones(n_channels), np.zeros(n_channels), np.arange(n_channels))

    @property
    def n_channels(self) -> int:
        return len(self.scale)

    @property
    def is_identity(self) -> bool:
        return bool(np.all(self.perm == np.arange(self.n_channels)) and np.allclose(self.scale, 1) and np.allclose(self.offset, 0))

    def _check(self, x: np.ndarray, layout: str) -> tuple[np.ndarray, int | None]:
        x = np.asarray(x)
        axis = _channel_axis(layout)
        c = 1 if axis is None else x.shape[axis]
        if c != self.n_channels:
            raise InvalidInputError(
                f"The transform has {self.n_channels} channels but the {layout} inputs have {c} (shape {x.shape})."
            )
        return x, axis

    def _shape(self, v: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
        if axis is None:
            return v.reshape((1,) * ndim)
        shape = [1] * ndim
        shape[axis] = len(v)
        return v.reshape(shape)

    def apply(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Map training-space inputs to test space: ``out[..., c] = scale[c] * x[..., perm[c]] + offset[c]`` (float32)."""
        x, axis = self._check(x, layout)
        xf = x.astype(np.float32)
        if axis is not None:
            xf = np.take(xf, self.perm, axis=axis)
        a = self._shape(self.scale.astype(np.float32), xf.ndim, axis)
        b = self._shape(self.offset.astype(np.float32), xf.ndim, axis)
        return xf * a + b

    def invert(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Map test inputs back to training space (float32): the inverse of `apply`."""
        x, axis = self._check(x, layout)
        xf = x.astype(np.float32)
        a = self._shape(self.scale.astype(np.float32), xf.ndim, axis)
        b = self._shape(self.offset.astype(np.float32), xf.ndim, axis)
        out = (xf - b) / a
        if axis is not None:
            inverse = np.argsort(self.perm)
            out = np.take(out, inverse, axis=axis)
        return out

    def to_dict(self) -> dict:
        """JSON-able description for evidence."""
        return {
            "scale": [float(f"{v:.6g}") for v in self.scale],
            "offset": [float(f"{v:.6g}") for v in self.offset],
            "channel_order": self.perm.tolist(),
        }


_SPATIAL_AXES = {"NHWC": (1, 2), "NCHW": (2, 3), "NHW": (1, 2)}

#: Geometric operations, each with its inverse.
_GEOMETRIC_INVERSE = {"flip-h": "flip-h", "flip-v": "flip-v", "rot90": "rot270", "rot180": "rot180", "rot270": "rot90", "transpose": "transpose"}


def _geometric(x: np.ndarray, op: str, layout: str) -> np.ndarray:
    h, w = _SPATIAL_AXES[layout]
    if op == "flip-h":
        return np.flip(x, axis=w)
    if op == "flip-v":
        return np.flip(x, axis=h)
    if op == "transpose":
        return np.swapaxes(x, h, w)
    k = {"rot90": 1, "rot180": 2, "rot270": 3}[op]
    return np.rot90(x, k=k, axes=(h, w))


@dataclass
class GeometricTransform:
    """Test images are training images flipped, rotated (counter-clockwise, as `numpy.rot90`) or transposed.

    Parameters
    ----------
    op : {"flip-h", "flip-v", "rot90", "rot180", "rot270", "transpose"}

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 4)
    >>> t = GeometricTransform("rot90")
    >>> np.array_equal(t.invert(t.apply(x, "NHW"), "NHW"), x)
    True
    """

    op: str

    def __post_init__(self):
        if self.op not in _GEOMETRIC_INVERSE:
            raise InvalidInputError(f"GeometricTransform op must be one of {sorted(_GEOMETRIC_INVERSE)}, got {self.op!r}.")

    is_identity = False

    def apply(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Training space -> test space."""
        return np.ascontiguousarray(_geometric(np.asarray(x), self.op, layout))

    def invert(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Test space -> training space."""
        return np.ascontiguousarray(_geometric(np.asarray(x), _GEOMETRIC_INVERSE[self.op], layout))

    def to_dict(self) -> dict:
        return {"geometry": self.op}


@dataclass
class WrapTransform:
    """Test values are training values shifted by ``shift`` modulo 256 (int8 read as uint8, or the reverse)."""

    shift: int = 128
    is_identity = False

    def apply(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Training space -> test space."""
        return ((np.asarray(x).astype(np.int64) + self.shift) % 256).astype(np.float32)

    def invert(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Test space -> training space."""
        return ((np.asarray(x).astype(np.int64) - self.shift) % 256).astype(np.float32)

    def to_dict(self) -> dict:
        return {"wrap_modulo_256": self.shift}


@dataclass
class ComposedTransform:
    """Transforms applied one after the other to training inputs to give test inputs (``steps[0]`` first)."""

    steps: list
    is_identity = False

    def apply(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Training space -> test space."""
        for t in self.steps:
            x = t.apply(x, layout)
        return x

    def invert(self, x: np.ndarray, layout: str) -> np.ndarray:
        """Test space -> training space."""
        for t in reversed(self.steps):
            x = t.invert(x, layout)
        return x

    def to_dict(self) -> dict:
        return {"steps": [t.to_dict() for t in self.steps]}


def resize_images(x: np.ndarray, layout: str, size: tuple[int, int]) -> np.ndarray:
    """Resize images to ``size`` = (height, width) with linear interpolation (float32, same layout).

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...)
        Images in ``layout``.
    layout : {"NHWC", "NCHW", "NHW"}
    size : (int, int)
    """
    from scipy import ndimage

    x = np.asarray(x, dtype=np.float32)
    h_axis, w_axis = {"NHWC": (1, 2), "NCHW": (2, 3), "NHW": (1, 2)}[layout]
    zoom = [1.0] * x.ndim
    zoom[h_axis] = size[0] / x.shape[h_axis]
    zoom[w_axis] = size[1] / x.shape[w_axis]
    out = ndimage.zoom(x, zoom, order=1, grid_mode=True, mode="nearest")
    return out.astype(np.float32, copy=False)


def rerun_on_fixed(ctx, split, fix, *, max_samples: int = 20000) -> dict | None:
    """Re-run the model on corrected inputs of ``split`` and measure accuracy and log-loss before and after.

    Parameters
    ----------
    ctx : whylow.context.Context
        Must have a model; ``split`` must have labels and predictions.
    split : whylow.inputs.SplitData
    fix : callable
        ``fix(x_rows) -> x_fixed`` in the split's layout.
    max_samples : int
        At most this many examples (a seeded random subset) are re-run.

    Returns
    -------
    dict or None
        ``accuracy_before``, ``accuracy_after``, ``log_loss_before``,
        ``log_loss_after``, ``n`` and ``probs_after`` (for the examples in
        ``rows``), ``rows``; None when the model, labels or predictions are
        missing.
    """
    from whylow import metrics

    if ctx.model is None or split.y is None or split.probs is None or split.x is None:
        return None
    n = split.n
    if n > max_samples:
        rows = np.sort(np.random.default_rng(ctx.seed).choice(n, size=max_samples, replace=False))
    else:
        rows = np.arange(n)
    x_fixed = fix(np.asarray(split.x[rows] if len(rows) < n else split.x))
    probs_after = ctx.predict_probs(x_fixed)
    y = split.y[rows]
    before = split.probs[rows]
    if probs_after.shape != before.shape:
        return None
    return {
        "accuracy_before": float(metrics.accuracy(y, before)),
        "accuracy_after": float(metrics.accuracy(y, probs_after)),
        "log_loss_before": float(metrics.log_loss(y, before)),
        "log_loss_after": float(metrics.log_loss(y, probs_after)),
        "n": int(len(rows)),
        "rows": rows,
        "probs_after": probs_after,
    }
