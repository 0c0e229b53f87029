"""Post-hoc calibration: temperature scaling and vector scaling, fitted by NLL, saved as JSON.

Temperature scaling (Guo et al., 2017)
--------------------------------------
One scalar ``T > 0`` divides the logits: ``probs = softmax(logits / T)``.
``T > 1`` softens the scores (it fixes overconfidence), ``T < 1`` sharpens
them (it fixes underconfidence). The argmax never changes, so accuracy is
untouched: only the scores move.

When only probabilities are available, ``log(probs)`` stands in for the
logits. Log-probabilities differ from the logits by a constant per row, which
softmax ignores, so ``softmax(log(probs) / T) == softmax(logits / T)``
exactly (up to probabilities that underflowed to 0, clipped at the smallest
normal float).

Fitting: ``T`` minimises the mean negative log-likelihood (NLL) of the true
class on labelled data. As a function of ``beta = 1 / T`` the NLL is convex
(its second derivative is the mean variance of the logits under
``softmax(beta * logits)``), so it has a single minimum; it is found by
bounded Brent search (``scipy.optimize.minimize_scalar``) on ``log T`` over
``[log 0.05, log 20]``. Fitting reads at most ``max_fit_samples`` rows (a
seeded random subset beyond that): one parameter is pinned down long before
that, and the NLL passes stay cheap on ImageNet-sized outputs. NLL passes are
done in row blocks, so memory stays bounded by one block.

Vector scaling
--------------
Per-class scale and bias: ``probs = softmax(w * z + b)`` with ``w, b`` of
shape (n_classes,), fitted by BFGS (L-BFGS-B beyond 400 parameters) on the
NLL with its analytic gradient
and a small ridge penalty ``l2/2 * (|w - 1/T|^2 + |b|^2)`` that pulls towards
the temperature solution it starts from. It has ``2 * n_classes`` parameters
and can change the argmax, so it needs many samples per class (whylow's
checks use it only with at least 50 per class). A vector scaler fitted on
log-probabilities (``probs=``) is applied to log-probabilities; given logits,
it first turns them into log-probabilities (``log_softmax``), which is the
same input. One fitted on logits needs logits.

Cross-fitting
-------------
`cross_fit` splits a labelled set into two stratified halves, fits on one
half and predicts the other, then swaps: every sample gets probabilities
from a calibrator that never saw it, so metrics of the pooled output are
held-out measurements (used when there is no validation split).

Files
-----
``save``/``load`` write and read JSON (``{"format": "whylow.calibrator/1",
"method": ..., ...}``), never pickle; `load_calibrator` reads either kind.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy import optimize
from scipy.special import logsumexp

from whylow.errors import InvalidInputError

__all__ = [
    "FORMAT",
    "TemperatureScaler",
    "VectorScaler",
    "calibrator_from_dict",
    "cross_fit",
    "load_calibrator",
    "log_softmax",
    "nll_rows",
    "stratified_halves",
    "to_logits",
]

#: The ``format`` tag of a saved calibrator.
FORMAT = "whylow.calibrator/1"
#: Elements per row block of the NLL passes.
_BLOCK = 2**21


# --------------------------------------------------------------------------
# validation and building blocks
# --------------------------------------------------------------------------


def _as_2d(values, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be numeric, got values that cannot be read as numbers.") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim not in (1, 2):
        raise InvalidInputError(f"{name} must have shape (n_samples, n_classes) or (n_samples,), got {arr.shape}.")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty: it has 0 rows.")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values; drop those rows or fix the model output.")
    return arr


def to_logits(logits=None, probs=None, dtype=np.float64) -> tuple[np.ndarray, str]:
    """Validate scores and return them as an (n_samples, n_classes) logit matrix.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes) or (n_samples,), optional
        Raw scores; a single column is a binary sigmoid logit ``z`` and becomes ``[0, z]``.
    probs : array-like of shape (n_samples, n_classes) or (n_samples,), optional
        Probabilities (rows summing to 1); a single column is ``p(class 1)``.
        They are returned as ``log(probs)`` (clipped at the smallest normal number of ``dtype``).
    dtype : {numpy.float64, numpy.float32}
        Precision of the result; float32 halves memory and time on large inputs.

    Returns
    -------
    z : ndarray of shape (n_samples, n_classes)
    kind : {"logits", "log_probs"}
        What ``z`` holds.
    """
    if (logits is None) == (probs is None):
        raise InvalidInputError("Pass exactly one of logits= or probs=; got " + ("both." if logits is not None else "neither."))
    if logits is not None:
        z = _as_2d(logits, "logits")
        if z.ndim == 1:
            z = np.column_stack([np.zeros_like(z), z])
        return z.astype(dtype, copy=False), "logits"
    p = _as_2d(probs, "probs")
    if p.min() < 0.0 or p.max() > 1.0:
        raise InvalidInputError(
            f"probs must lie in [0, 1], got values from {p.min():.3g} to {p.max():.3g}; pass raw scores as logits= instead."
        )
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    sums = p.sum(axis=1)
    if np.abs(sums - 1.0).max() > 1e-3 * max(1.0, p.shape[1] / 100):
        raise InvalidInputError(
            f"probs rows must sum to 1, but their sums range from {sums.min():.4g} to {sums.max():.4g}; "
            "pass scores that are not softmax outputs as logits=."
        )
    z = p.astype(dtype, copy=True)
    np.maximum(z, np.finfo(dtype).tiny, out=z)
    return np.log(z, out=z), "log_probs"


def _check_labels(y_true, n_samples: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise InvalidInputError(f"y_true must have shape ({n_samples},) to match the scores, got {y.shape}.")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise InvalidInputError("y_true must hold integer class ids, got fractional, NaN or infinite values.")
    elif y.dtype.kind not in "iub":
        raise InvalidInputError(f"y_true must hold integer class ids, got dtype {y.dtype}.")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        raise InvalidInputError(
            f"y_true holds class ids from {int(y.min())} to {int(y.max())}, out of range for {n_classes} classes (0 to {n_classes - 1})."
        )
    return y


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of an (n_samples, n_classes) array, in float64."""
    z = np.asarray(z, dtype=np.float64)
    return z - logsumexp(z, axis=1, keepdims=True)


def _softmax(z: np.ndarray) -> np.ndarray:
    out = z - z.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def _blocks(n_rows: int, n_cols: int):
    step = max(1, _BLOCK // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _row_lse(s: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp of a 2-D block, using ``s`` itself as scratch space (it is overwritten)."""
    m = s.max(axis=1)
    s -= m[:, None]
    np.exp(s, out=s)
    return np.log(s.sum(axis=1, dtype=np.float64)) + m


def nll_rows(y_true: np.ndarray, z: np.ndarray, scale=1.0, bias=None) -> np.ndarray:
    """Per-sample NLL of ``softmax(scale * z + bias)``, computed in row blocks.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    z : ndarray of shape (n_samples, n_classes)
    scale : float or ndarray of shape (n_classes,)
    bias : ndarray of shape (n_classes,), optional

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    out = np.empty(z.shape[0])
    rows = np.arange(z.shape[0])
    for sl in _blocks(*z.shape):
        s = z[sl] * scale
        if bias is not None:
            s += bias
        target = s[rows[sl] - sl.start, y_true[sl]].astype(np.float64)
        out[sl] = _row_lse(s) - target
    return out


def _subsample(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    if max_rows is None or n <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=int(max_rows), replace=False))


def stratified_halves(y_true: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into two halves with (nearly) the same class counts.

    Within each class the samples are shuffled (seeded) and dealt alternately,
    so the halves differ by at most one sample per class.

    Returns
    -------
    first, second : ndarray of int64
        Sorted indices.
    """
    y = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(y.shape[0]), y))  # shuffled within class, classes contiguous
    ys = y[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ys)) + 1]
    rank = np.arange(y.shape[0]) - np.repeat(starts, np.diff(np.r_[starts, y.shape[0]]))
    # alternate the half that gets the odd sample out, class by class, so sizes stay balanced
    flip = np.repeat(np.arange(starts.size) % 2, np.diff(np.r_[starts, y.shape[0]]))
    first = (rank + flip) % 2 == 0
    return np.sort(order[first]), np.sort(order[~first])


# --------------------------------------------------------------------------
# serialisation shared by both scalers
# --------------------------------------------------------------------------


def _require_keys(d: dict, keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise InvalidInputError(f"The {what} is missing the keys {missing}; save it again with whylow calibrate.")


def _number(value, default=math.nan) -> float:
    """A finite number from a JSON field, or ``default``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return float(value)


class _Calibrator:
    method = ""

    def _check_fitted(self) -> None:
        if getattr(self, "input_", None) is None:
            raise InvalidInputError(
                f"This {type(self).__name__} is not fitted yet; call fit(y_true, logits=...) or fit(y_true, probs=...) first."
            )

    def _fit_record(self) -> dict:
        """What the fit measured, as stored in the JSON file."""
        return {"n_samples": self.n_samples_, "log_loss_before": self.log_loss_before_, "log_loss_after": self.log_loss_after_}

    def _read_fit_record(self, fit) -> None:
        fit = fit if isinstance(fit, dict) else {}
        self.n_samples_ = int(_number(fit.get("n_samples"), 0))
        self.log_loss_before_ = _number(fit.get("log_loss_before"))
        self.log_loss_after_ = _number(fit.get("log_loss_after"))

    def save(self, path) -> Path:
        """Write the fitted calibrator to ``path`` as JSON (atomically)."""
        from whylow.report.report import write_atomic

        return write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path):
        """Read a calibrator saved by `save` (JSON only; nothing is unpickled)."""
        obj = load_calibrator(path)
        if not isinstance(obj, cls):
            raise InvalidInputError(f"The calibrator file {str(path)!r} holds a {obj.method} calibrator, not a {cls.method} one.")
        return obj

    def fit_transform(self, y_true, logits=None, probs=None) -> np.ndarray:
        """Fit, then transform the same scores (in-sample: not a held-out measurement)."""
        return self.fit(y_true, logits=logits, probs=probs).transform(logits=logits, probs=probs)


class TemperatureScaler(_Calibrator):
    """Divide the logits by one temperature ``T`` fitted to minimise the NLL.

    Parameters
    ----------
    bounds : (float, float), default=(0.05, 20.0)
        Range searched for ``T``.
    max_fit_samples : int or None, default=50000
        Fit on at most this many rows (a seeded random subset); None uses all.
    seed : int, default=0
        Seed of that subset.

    Attributes
    ----------
    temperature_ : float
        The fitted ``T``; ``transform`` returns ``softmax(logits / T)``.
    input_ : {"logits", "log_probs"}
        What it was fitted on.
    n_samples_ : int
        Rows used for fitting.
    log_loss_before_, log_loss_after_ : float
        In-sample NLL at ``T = 1`` and at the fitted ``T``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 5)) * 2
    >>> p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    >>> y = np.array([rng.choice(5, p=row) for row in p])
    >>> scaler = TemperatureScaler().fit(y, logits=3 * z)  # logits three times too large
    >>> round(scaler.temperature_, 1)
    3.0
    """

    method = "temperature"

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0), max_fit_samples: int | None = 50_000, seed: int = 0):
        lo, hi = bounds
        if not (0 < lo < 1 < hi):
            raise InvalidInputError(f"bounds must satisfy 0 < low < 1 < high, got {bounds!r}.")
        self.bounds = (float(lo), float(hi))
        self.max_fit_samples = max_fit_samples
        self.seed = seed
        self.temperature_: float | None = None
        self.input_: str | None = None
        self.n_samples_: int = 0
        self.log_loss_before_ = math.nan
        self.log_loss_after_ = math.nan

    def fit(self, y_true, logits=None, probs=None) -> TemperatureScaler:
        """Fit ``T`` on labelled scores.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            True class ids.
        logits : array-like of shape (n_samples, n_classes) or (n_samples,), optional
        probs : array-like of shape (n_samples, n_classes) or (n_samples,), optional
            Exactly one of ``logits`` and ``probs``.

        Returns
        -------
        self
        """
        z, kind = to_logits(logits, probs)
        y = _check_labels(y_true, z.shape[0], z.shape[1])
        return self._fit_trusted(y, z, kind)

    def _fit_trusted(self, y: np.ndarray, z: np.ndarray, kind: str) -> TemperatureScaler:
        self._fit_z(y, z)
        self.input_ = kind
        return self

    def _fit_z(self, y: np.ndarray, z: np.ndarray) -> None:
        idx = _subsample(z.shape[0], self.max_fit_samples, self.seed)
        if idx is not None:
            y, z = y[idx], z[idx]
        # float32 halves the cost of the passes; per-row sums are still accumulated in float64
        z = np.asarray(z, dtype=np.float32)

        def objective(log_t: float) -> float:
            return float(np.mean(nll_rows(y, z, math.exp(-log_t))))

        lo, hi = math.log(self.bounds[0]), math.log(self.bounds[1])
        res = optimize.minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
        log_t = float(res.x)
        before = objective(0.0)
        after = float(res.fun)
        if before <= after:  # T = 1 is (numerically) optimal
            log_t, after = 0.0, before
        self.temperature_ = math.exp(log_t)
        self.n_samples_ = int(z.shape[0])
        self.log_loss_before_, self.log_loss_after_ = before, after

    def transform(self, logits=None, probs=None) -> np.ndarray:
        """Calibrated probabilities ``softmax(z / T)``, shape (n_samples, n_classes)."""
        self._check_fitted()
        z, kind = to_logits(logits, probs)
        return self._transform_trusted(z, kind)

    def _transform_trusted(self, z: np.ndarray, kind: str) -> np.ndarray:
        return _softmax(z / np.asarray(self.temperature_, dtype=z.dtype))

    def to_dict(self) -> dict:
        """JSON-able description, read back by `from_dict`."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "method": self.method,
            "temperature": self.temperature_,
            "input": self.input_,
            "fit": self._fit_record(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TemperatureScaler:
        """Rebuild a fitted scaler from `to_dict` output."""
        if not isinstance(d, dict) or d.get("method") != cls.method:
            raise InvalidInputError(f"Expected a temperature calibrator (method 'temperature'), got {str(d)[:80]!r}.")
        _require_keys(d, ("temperature",), "temperature calibrator")
        t = d["temperature"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise InvalidInputError(f"The calibrator's temperature must be a positive number, got {t!r}.")
        obj = cls()
        obj.temperature_ = float(t)
        obj.input_ = d.get("input", "logits") if d.get("input") in ("logits", "log_probs") else "logits"
        obj._read_fit_record(d.get("fit"))
        return obj

    def __repr__(self) -> str:
        t = "unfitted" if self.temperature_ is None else f"T={self.temperature_:.4g}"
        return f"TemperatureScaler({t})"


class VectorScaler(_Calibrator):
    """Per-class scale and bias on the logits, ``softmax(scale * z + bias)``, fitted by NLL.

    Parameters
    ----------
    mode : {"vector", "shared", "bias"}, default="vector"
        ``"vector"``: a scale and a bias per class (vector scaling, 2 *
        n_classes parameters). ``"shared"``: one scale for all classes plus a
        bias per class (temperature scaling with class biases). ``"bias"``:
        the scale is fixed at 1 and only the biases are fitted (a shift of the
        scores between classes, such as a prior or threshold correction).
    l2 : float, default=1e-3
        Ridge penalty pulling the scale towards its starting point (``1/T``
        of a temperature fit; 1 in ``"bias"`` mode) and the bias towards 0.
    max_fit_samples : int or None, default=50000
        Fit on at most this many rows (a seeded random subset).
    seed : int, default=0

    Attributes
    ----------
    scale_, bias_ : ndarray of shape (n_classes,)
    temperature_ : float
        Temperature of the starting point (fitted first).
    input_ : {"logits", "log_probs"}
    n_samples_ : int
    log_loss_before_, log_loss_after_ : float
        In-sample NLL before and after.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 3000)
    >>> z = rng.normal(size=(3000, 3)) + 3 * np.eye(3)[y]
    >>> shifted = z + np.array([2.0, 0.0, 0.0])  # class 0 favoured by a constant shift
    >>> vs = VectorScaler(mode="bias").fit(y, logits=shifted)
    >>> bool(vs.log_loss_after_ < vs.log_loss_before_ - 0.1)
    True
    """

    method = "vector"
    _MODES = ("vector", "shared", "bias")

    def __init__(self, mode: str = "vector", l2: float = 1e-3, max_fit_samples: int | None = 50_000, seed: int = 0):
        if mode not in self._MODES:
            raise InvalidInputError(f"mode must be one of {self._MODES}, got {mode!r}.")
        if not (isinstance(l2, (int, float)) and l2 >= 0 and math.isfinite(l2)):
            raise InvalidInputError(f"l2 must be a non-negative number, got {l2!r}.")
        self.mode = mode
        self.l2 = float(l2)
        self.max_fit_samples = max_fit_samples
        self.seed = seed
        self.scale_: np.ndarray | None = None
        self.bias_: np.ndarray | None = None
        self.temperature_: float | None = None
        self.input_: str | None = None
        self.n_samples_ = 0
        self.log_loss_before_ = math.nan
        self.log_loss_after_ = math.nan

    def fit(self, y_true, logits=None, probs=None) -> VectorScaler:
        """Fit scale and bias on labelled scores (same arguments as `TemperatureScaler.fit`)."""
        z, kind = to_logits(logits, probs)
        y = _check_labels(y_true, z.shape[0], z.shape[1])
        return self._fit_trusted(y, z, kind)

    def _fit_trusted(self, y: np.ndarray, z: np.ndarray, kind: str) -> VectorScaler:
        idx = _subsample(z.shape[0], self.max_fit_samples, self.seed)
        if idx is not None:
            y, z = y[idx], z[idx]
        n, k = z.shape
        ts = TemperatureScaler(max_fit_samples=None)
        if self.mode == "bias":
            ts.temperature_ = 1.0
            ts.log_loss_before_ = float(np.mean(nll_rows(y, z)))
        else:
            ts._fit_z(y, z)
        w0 = 1.0 / ts.temperature_
        n_scale = {"vector": k, "shared": 1, "bias": 0}[self.mode]
        l2 = self.l2
        rows = np.arange(n)

        def unpack(theta: np.ndarray):
            w = np.full(k, w0) if n_scale == 0 else np.broadcast_to(theta[:n_scale], (k,))
            return w, theta[n_scale:]

        def fun(theta: np.ndarray):
            w, b = unpack(theta)
            loss = 0.0
            gw = np.zeros(k)
            gb = np.zeros(k)
            for sl in _blocks(n, k):
                s = z[sl] * w + b
                r = rows[sl] - sl.start
                target = s[r, y[sl]]
                m = s.max(axis=1, keepdims=True)
                g = np.exp(s - m)
                total = g.sum(axis=1, keepdims=True)
                loss += float(np.sum(np.log(total[:, 0]) + m[:, 0] - target))
                g /= total
                g[r, y[sl]] -= 1.0
                if n_scale:
                    gw += np.einsum("ij,ij->j", g, z[sl])
                gb += g.sum(axis=0)
            dw = theta[:n_scale] - w0
            loss = loss / n + 0.5 * l2 * (dw @ dw + b @ b)
            gscale = (gw / n if n_scale == k else np.array([gw.sum() / n]))[:n_scale] + l2 * dw
            return loss, np.concatenate([gscale, gb / n + l2 * b])

        theta0 = np.concatenate([np.full(n_scale, w0), np.zeros(k)])
        # BFGS (numpy only) for small problems: L-BFGS-B's tiny multithreaded BLAS calls are slow on busy machines
        method = "BFGS" if theta0.size <= 400 else "L-BFGS-B"
        res = optimize.minimize(fun, theta0, jac=True, method=method, options={"maxiter": 500})
        theta = res.x if res.fun <= fun(theta0)[0] else theta0
        w, b = unpack(theta)
        self.scale_, self.bias_ = np.array(w, dtype=np.float64), np.array(b, dtype=np.float64)
        self.temperature_ = ts.temperature_
        self.input_ = kind
        self.n_samples_ = n
        self.log_loss_before_ = ts.log_loss_before_
        self.log_loss_after_ = float(np.mean(nll_rows(y, z, self.scale_, self.bias_)))
        return self

    def transform(self, logits=None, probs=None) -> np.ndarray:
        """Calibrated probabilities ``softmax(scale * z + bias)``, shape (n_samples, n_classes)."""
        self._check_fitted()
        z, kind = to_logits(logits, probs)
        if z.shape[1] != self.scale_.shape[0]:
            raise InvalidInputError(
                f"This vector scaler was fitted on {self.scale_.shape[0]} classes but the scores have {z.shape[1]} columns."
            )
        return self._transform_trusted(z, kind)

    def _transform_trusted(self, z: np.ndarray, kind: str) -> np.ndarray:
        if self.input_ == "log_probs" and kind == "logits":
            z = log_softmax(z)
        elif self.input_ == "logits" and kind == "log_probs":
            raise InvalidInputError(
                "This vector scaler was fitted on logits, so it needs logits=; probabilities lose the per-row offset it depends on."
            )
        return _softmax(z * self.scale_ + self.bias_)

    def to_dict(self) -> dict:
        """JSON-able description, read back by `from_dict`."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "method": self.method,
            "mode": self.mode,
            "n_classes": int(self.scale_.shape[0]),
            "scale": [float(v) for v in self.scale_],
            "bias": [float(v) for v in self.bias_],
            "temperature": self.temperature_,
            "input": self.input_,
            "fit": self._fit_record(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> VectorScaler:
        """Rebuild a fitted scaler from `to_dict` output."""
        if not isinstance(d, dict) or d.get("method") != cls.method:
            raise InvalidInputError(f"Expected a vector calibrator (method 'vector'), got {str(d)[:80]!r}.")
        _require_keys(d, ("scale", "bias", "input"), "vector calibrator")
        try:
            scale = np.asarray(d["scale"], dtype=np.float64)
            bias = np.asarray(d["bias"], dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError("The vector calibrator's scale and bias must be lists of numbers.") from None
        if scale.ndim != 1 or scale.shape != bias.shape or scale.size < 2 or not (np.isfinite(scale).all() and np.isfinite(bias).all()):
            raise InvalidInputError(
                f"The vector calibrator's scale and bias must be finite lists of equal length (one per class), "
                f"got lengths {scale.size} and {bias.size}."
            )
        if d["input"] not in ("logits", "log_probs"):
            raise InvalidInputError(f"The vector calibrator's input must be 'logits' or 'log_probs', got {d['input']!r}.")
        obj = cls(mode=d.get("mode", "vector") if d.get("mode") in cls._MODES else "vector")
        obj.scale_, obj.bias_, obj.input_ = scale, bias, d["input"]
        t = d.get("temperature")
        obj.temperature_ = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None
        obj._read_fit_record(d.get("fit"))
        return obj

    def __repr__(self) -> str:
        k = "unfitted" if self.scale_ is None else f"n_classes={self.scale_.shape[0]}"
        return f"VectorScaler({k})"


def calibrator_from_dict(d: dict) -> TemperatureScaler | VectorScaler:
    """Rebuild a temperature or vector calibrator from its JSON dict."""
    if not isinstance(d, dict):
        raise InvalidInputError(f"A calibrator must be a JSON object, got {type(d).__name__}.")
    if d.get("format") != FORMAT:
        raise InvalidInputError(f"Not a whylow calibrator: its format is {d.get('format')!r}, expected {FORMAT!r}.")
    kinds = {c.method: c for c in (TemperatureScaler, VectorScaler)}
    if d.get("method") not in kinds:
        raise InvalidInputError(f"Unknown calibrator method {d.get('method')!r}; expected 'temperature' or 'vector'.")
    return kinds[d["method"]].from_dict(d)


def load_calibrator(path) -> TemperatureScaler | VectorScaler:
    """Read a calibrator JSON file written by ``save`` or ``whylow calibrate``."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"The calibrator file {str(p)!r} does not exist.")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"The calibrator file {str(p)!r} is not valid JSON ({exc}).") from None
    return calibrator_from_dict(d)


def cross_fit(make, y_true: np.ndarray, z: np.ndarray, seed: int = 0, kind: str = "logits"):
    """Held-out calibrated probabilities by two-fold cross-fitting.

    Parameters
    ----------
    make : callable
        ``make() -> calibrator`` (a fresh `TemperatureScaler` or `VectorScaler`).
    y_true : ndarray of shape (n_samples,)
    z : ndarray of shape (n_samples, n_classes)
        Logits or log-probabilities, already validated (as `to_logits` returns them).
    seed : int
        Seed of the stratified halves.
    kind : {"logits", "log_probs"}
        What ``z`` holds.

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes)
        Row ``i`` comes from the calibrator fitted on the half without ``i``.
    calibrators : list of two fitted calibrators
        Fitted on the first and on the second half.
    """
    y_true = np.asarray(y_true)
    first, second = stratified_halves(y_true, seed)
    out = np.empty(z.shape, dtype=z.dtype)
    fitted = []
    for fit_idx, apply_idx in ((first, second), (second, first)):
        cal = make()._fit_trusted(y_true[fit_idx].astype(np.int64), z[fit_idx], kind)
        out[apply_idx] = cal._transform_trusted(z[apply_idx], kind)
        fitted.append(cal)
    return out, fitted
