"""Vectorised classification and calibration metrics.

Every function here trusts its array inputs: the caller has already checked
that ``y_true`` is an integer array of shape (n_samples,) with values in
``[0, n_classes)`` and that ``probs`` is a float array of shape
(n_samples, n_classes) whose rows sum to one (binary problems arrive as
(n_samples, 2)). Only the options (``n_bins``, ``binning``, ``alpha``,
metric names, priors...) are checked, because they are cheap to check and
come straight from users.

Cost model: a metric reads the (n_samples, n_classes) matrix at most twice
(one ``argmax`` pass, and one sum-of-squares pass for the Brier score);
everything else works on per-sample vectors of length n_samples or on
per-class / per-bin sums of length n_classes / n_bins. No one-hot matrix is
ever built. float32 ``probs`` stay float32 for the matrix passes; per-sample
values are accumulated in float64.

Conventions
-----------
- The predicted class is ``argmax`` over the row; ties go to the lowest class
  index, as with :func:`numpy.argmax`.
- Calibration measures are *top-label*: the confidence of a sample is its
  largest probability, and the outcome is whether the predicted class is
  the true class.
- Equal-width bins are ``[k / n_bins, (k + 1) / n_bins)``, the last one closed
  at 1. Equal-mass bins use the empirical quantiles of the confidences as
  edges (ties stay together in one bin, so bins may hold unequal counts).
- A *signed* calibration error is ``mean confidence - accuracy`` weighted
  per bin; positive means overconfident.
- The Brier score of a binary problem is scikit-learn's
  ``brier_score_loss(y, p_positive)``: the mean squared error of the
  positive-class probability, in [0, 1]. With three or more classes it is
  the multiclass form ``mean sum_k (p_k - onehot_k)^2``, in [0, 2] (reports
  name it "Brier (multiclass)"). One rule for `brier_score`, `summary`,
  `baselines`, the bootstrap rows and the streaming accumulator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from whylow.errors import InvalidInputError

__all__ = sorted(
    [
        "CalibrationAccumulator",
        "accuracy",
        "balanced_accuracy",
        "baselines",
        "bootstrap_ci",
        "brier_score",
        "confusion_cells",
        "confusion_matrix",
        "ece",
        "log_loss",
        "mean_confidence",
        "mean_true_prob",
        "per_class_metrics",
        "reliability_curve",
        "signed_ece",
        "smooth_ece",
        "smooth_reliability_curve",
        "summary",
    ]
)

#: Default clipping of probabilities before taking logs.
LOG_EPS = 1e-15

#: Metric names `bootstrap_ci` can resample.
BOOTSTRAP_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "log_loss",
    "brier",
    "ece",
    "mean_confidence",
    "mean_true_prob",
)

_BINNINGS = ("width", "mass")


# --------------------------------------------------------------------------
# option checks (arrays are trusted; options come from users)
# --------------------------------------------------------------------------


def _check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InvalidInputError(
            f"n_bins must be a positive integer, got {n_bins!r}; pass e.g. n_bins=15."
        )
    return int(n_bins)


def _check_binning(binning: Any) -> str:
    if binning not in _BINNINGS:
        raise InvalidInputError(
            f"binning must be 'width' (equal-width bins) or 'mass' (equal-mass bins), "
            f"got {binning!r}."
        )
    return binning


def _check_eps(eps: Any) -> float:
    if not isinstance(eps, (float, int, np.floating)) or not 0 < eps < 0.5:
        raise InvalidInputError(
            f"eps must be a small positive float below 0.5, got {eps!r}; the default is 1e-15."
        )
    return float(eps)


# --------------------------------------------------------------------------
# per-sample building blocks
# --------------------------------------------------------------------------


def _top_label(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and its probability, from one pass over `probs`.

    Returns
    -------
    pred : ndarray of shape (n_samples,), intp
    conf : ndarray of shape (n_samples,), float64
    """
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(probs.shape[0]), pred].astype(np.float64, copy=False)
    return pred, conf


def _true_prob(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Probability given to the true class, shape (n_samples,), float64."""
    return probs[np.arange(probs.shape[0]), y_true].astype(np.float64, copy=False)


def _row_sq_norms(probs: np.ndarray) -> np.ndarray:
    """``sum_k probs[i, k] ** 2`` per row without a temporary matrix.

    Rows are summed in the input dtype (n_classes terms, each in [0, 1]); the
    result is float64 so that sums over samples keep their precision.
    """
    return np.einsum("ij,ij->i", probs, probs).astype(np.float64, copy=False)


#: float32 elements per BLAS dot in `_sq_total`: small enough that float32
#: accumulation inside one dot stays at ~1e-6 relative error.
_SQ_BLOCK = 2**17


def _sq_total(probs: np.ndarray) -> float:
    """``sum_ij probs[i, j] ** 2`` with BLAS dots, accumulated in float64.

    float64 input is one dot over the whole matrix; float32 input is dotted in
    blocks of `_SQ_BLOCK` elements (a single float32 dot over 5e7 elements
    loses ~2e-4 relative precision). Non-contiguous input uses `_row_sq_norms`.
    """
    if not probs.flags.c_contiguous or probs.dtype not in (np.float32, np.float64):
        return float(np.sum(_row_sq_norms(probs)))
    flat = probs.reshape(-1)
    if probs.dtype == np.float64:
        return float(np.dot(flat, flat))
    total = 0.0
    for start in range(0, flat.size, _SQ_BLOCK):
        block = flat[start : start + _SQ_BLOCK]
        total += float(np.dot(block, block))
    return total


def _nll(p_true: np.ndarray, eps: float) -> np.ndarray:
    """Per-sample negative log-likelihood of the true class after clipping."""
    return -np.log(np.clip(p_true, eps, 1.0 - eps))


def _brier_factor(n_classes: int) -> float:
    """1/2 for a binary problem (the positive-class Brier score, as scikit-learn computes it), else 1."""
    return 0.5 if n_classes == 2 else 1.0


def _brier_rows(probs: np.ndarray, p_true: np.ndarray) -> np.ndarray:
    """Per-sample Brier term: ``sum_k (p_k - onehot_k)^2``, halved for a binary problem (module conventions).

    Expanded as ``sum_k p_k^2 - 2 p_true + 1`` so no one-hot matrix is built.
    Rounding can leave tiny negatives for perfect predictions; they are
    clipped to 0.
    """
    out = _row_sq_norms(probs)
    out -= 2.0 * p_true
    out += 1.0
    np.maximum(out, 0.0, out=out)
    if probs.shape[1] == 2:
        out *= 0.5
    return out


def _bin_ids(conf: np.ndarray, n_bins: int, binning: str) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every confidence and the bin edges.

    Returns
    -------
    ids : ndarray of shape (n_samples,), intp, values in [0, n_bins)
    edges : ndarray of shape (n_bins + 1,)
    """
    if binning == "width":
        # k / n_bins is correctly rounded, so a confidence written as 0.6 lands in
        # [0.6, 0.8) with 5 bins (np.linspace would put that edge at 0.6000000000000001)
        edges = np.arange(n_bins + 1) / n_bins
    else:
        edges = np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1))
    ids = np.searchsorted(edges[1:-1], conf, side="right")
    return ids, edges


def _calibration_sums(
    conf: np.ndarray, correct: np.ndarray, n_bins: int, binning: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin count, confidence sum and correct sum, plus the bin edges."""
    ids, edges = _bin_ids(conf, n_bins, binning)
    count = np.bincount(ids, minlength=n_bins)
    conf_sum = np.bincount(ids, weights=conf, minlength=n_bins)
    correct_sum = np.bincount(ids, weights=correct, minlength=n_bins)
    return count, conf_sum, correct_sum, edges


def _balanced_accuracy_from_counts(tp: np.ndarray, support: np.ndarray) -> float:
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(tp[present] / support[present]))


# --------------------------------------------------------------------------
# classification metrics
# --------------------------------------------------------------------------


def accuracy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Fraction of samples whose argmax class is the true class.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.

    Returns
    -------
    float
        Accuracy in [0, 1]; equals ``sklearn.metrics.accuracy_score(y_true,
        probs.argmax(1))``.

    Examples
    --------
    >>> import numpy as np
    >>> accuracy(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    0.6666666666666666
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    return float(np.count_nonzero(pred == y_true) / y_true.shape[0])


#: Above this many K×K cells, K×K state (the accumulator's confusion matrix) is kept sparse.
DENSE_CELLS = 2**22


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, sparse: bool = False) -> np.ndarray:
    """Confusion matrix with true classes as rows.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    y_pred : ndarray of shape (n_samples,)
        Predicted class ids in ``[0, n_classes)``.
    n_classes : int
        Number of classes K.
    sparse : bool, default False
        Return a ``scipy.sparse.csr_array`` holding only the non-zero cells
        (at most n_samples of them): memory O(N) instead of O(K²), for many
        classes (20,000 classes are 3.2 GB dense).

    Returns
    -------
    ndarray of shape (n_classes, n_classes), int64
        ``C[i, j]`` is the number of samples of true class i predicted as j;
        equals ``sklearn.metrics.confusion_matrix(y_true, y_pred,
        labels=range(n_classes))``.

    Examples
    --------
    >>> import numpy as np
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    array([[1, 0],
           [1, 1]])
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2, sparse=True).toarray()
    array([[1, 0],
           [1, 1]])
    """
    k = int(n_classes)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if sparse:
        from scipy import sparse as sp

        cells, counts = np.unique(y_true * k + y_pred, return_counts=True)
        rows, cols = np.divmod(cells, k)
        return sp.csr_array((counts.astype(np.int64), (rows, cols)), shape=(k, k))
    flat = np.bincount(y_true * k + y_pred, minlength=k * k)
    return flat.reshape(k, k).astype(np.int64, copy=False)


def confusion_cells(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, list[int]]:
    """The non-zero cells of the confusion matrix as plain lists: ``n_classes``, ``true``, ``predicted``, ``count``.

    The JSON-ready form of a confusion matrix with many classes (memory O(N), not O(K²)).

    Examples
    --------
    >>> confusion_cells(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    {'n_classes': 2, 'true': [0, 1, 1], 'predicted': [0, 0, 1], 'count': [1, 1, 1]}
    """
    k = int(n_classes)
    cells, counts = np.unique(np.asarray(y_true, dtype=np.int64) * k + np.asarray(y_pred, dtype=np.int64), return_counts=True)
    rows, cols = np.divmod(cells, k)
    return {"n_classes": k, "true": rows.tolist(), "predicted": cols.tolist(), "count": counts.tolist()}


def per_class_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1, support and mean true-class probability per class.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` : ndarray of shape (n_classes,), float64
            As ``sklearn.metrics.precision_recall_fscore_support(y_true,
            probs.argmax(1), labels=range(n_classes), zero_division=0)``:
            0.0 where a class is never predicted (precision), absent from
            ``y_true`` (recall), or both (F1).
        ``support`` : ndarray of shape (n_classes,), int64
            Number of samples of each true class.
        ``mean_true_prob`` : ndarray of shape (n_classes,), float64
            Mean probability the model gives to the true class, over the
            samples of that class; NaN where the support is 0.

    Examples
    --------
    >>> import numpy as np
    >>> m = per_class_metrics(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    >>> m["recall"], m["precision"]
    (array([1. , 0.5]), array([0.5, 1. ]))
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    p_true = _true_prob(y_true, probs)
    support = np.bincount(y_true, minlength=k).astype(np.int64, copy=False)
    predicted = np.bincount(pred, minlength=k)
    tp = np.bincount(y_true[pred == y_true], minlength=k).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = predicted + support
        f1 = np.where(denom > 0, 2.0 * tp / denom, 0.0)
        mean_tp = np.bincount(y_true, weights=p_true, minlength=k) / support
    mean_tp[support == 0] = np.nan
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "mean_true_prob": mean_tp,
    }


def balanced_accuracy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean recall over the classes present in `y_true`.

    Classes that are predicted but absent from `y_true` do not count, as in
    ``sklearn.metrics.balanced_accuracy_score``.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.

    Returns
    -------
    float
        Balanced accuracy in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> balanced_accuracy(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    0.75
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    support = np.bincount(y_true, minlength=k)
    tp = np.bincount(y_true[pred == y_true], minlength=k)
    return _balanced_accuracy_from_counts(tp, support)


def log_loss(y_true: np.ndarray, probs: np.ndarray, eps: float = LOG_EPS) -> float:
    """Mean negative log-likelihood of the true class (cross-entropy).

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.
    eps : float, default=1e-15
        Probabilities are clipped to ``[eps, 1 - eps]`` before the log, so a
        zero probability for the true class costs ``-log(eps)`` (34.5 nats)
        rather than infinity.

    Returns
    -------
    float
        Log loss in nats; equals ``sklearn.metrics.log_loss(y_true, probs,
        labels=range(n_classes))`` up to sklearn's own clipping constant
        (the machine epsilon of the dtype).

    Examples
    --------
    >>> import numpy as np
    >>> round(log_loss(np.array([0, 1]), np.array([[0.5, 0.5], [0.2, 0.8]])), 6)
    0.458145
    """
    eps = _check_eps(eps)
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    return float(np.mean(_nll(_true_prob(y_true, probs), eps)))


def brier_score(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Multiclass Brier score: mean over samples of ``sum_k (p_k - onehot_k)^2``.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.

    Returns
    -------
    float
        For a binary problem, scikit-learn's ``brier_score_loss(y_true,
        probs[:, 1])`` in [0, 1]; with three or more classes the multiclass
        form, ``brier_score_loss(y_true, probs, labels=range(n_classes),
        scale_by_half=False)``, in [0, 2].

    Examples
    --------
    >>> import numpy as np
    >>> round(brier_score(np.array([0, 1]), np.array([[0.5, 0.5], [0.2, 0.8]])), 6)
    0.145
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    n = probs.shape[0]
    total = _sq_total(probs) - 2.0 * float(np.sum(_true_prob(y_true, probs))) + n
    return _brier_factor(probs.shape[1]) * max(total, 0.0) / n


def mean_confidence(probs: np.ndarray) -> float:
    """Mean of the largest probability of each row.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.

    Returns
    -------
    float
        Mean top-label confidence in [1 / n_classes, 1].

    Examples
    --------
    >>> import numpy as np
    >>> mean_confidence(np.array([[0.9, 0.1], [0.4, 0.6]]))
    0.75
    """
    probs = np.asarray(probs)
    return float(np.mean(_top_label(probs)[1]))  # argmax + gather beats max


def mean_true_prob(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean probability given to the true class.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.

    Returns
    -------
    float
        Mean of ``probs[i, y_true[i]]``.

    Examples
    --------
    >>> import numpy as np
    >>> mean_true_prob(np.array([0, 1]), np.array([[0.9, 0.1], [0.4, 0.6]]))
    0.75
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    return float(np.mean(_true_prob(y_true, probs)))


# --------------------------------------------------------------------------
# binned calibration
# --------------------------------------------------------------------------


def _top_label_outcomes(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    pred, conf = _top_label(probs)
    return conf, (pred == y_true).astype(np.float64)


def ece(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15, binning: str = "width") -> float:
    """Top-label expected calibration error.

    ``ECE = sum_b (n_b / n_samples) * |acc_b - conf_b|`` over the bins of the
    top-label confidence; empty bins contribute nothing.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.
    n_bins : int, default=15
        Number of bins.
    binning : {"width", "mass"}, default="width"
        Equal-width bins on [0, 1], or equal-mass bins whose edges are the
        quantiles of the confidences.

    Returns
    -------
    float
        ECE in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
    >>> round(ece(np.array([0, 1, 1, 1]), probs, n_bins=3), 6)
    0.225
    """
    n_bins = _check_n_bins(n_bins)
    binning = _check_binning(binning)
    conf, correct = _top_label_outcomes(y_true, probs)
    _, conf_sum, correct_sum, _ = _calibration_sums(conf, correct, n_bins, binning)
    return float(np.sum(np.abs(conf_sum - correct_sum)) / conf.shape[0])


def signed_ece(
    y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15, binning: str = "width"
) -> float:
    """Signed top-label calibration error ``sum_b w_b (conf_b - acc_b)``.

    Positive means overconfident (confidence above accuracy), negative means
    underconfident. Because the per-bin differences are weighted by the bin
    masses, the sum telescopes to ``mean_confidence - accuracy`` for *any*
    binning: `n_bins` and `binning` are accepted for symmetry with `ece`
    and checked, but cannot change the value. Read it next to `ece`: a
    signed error close to the unsigned one means the miscalibration has one
    direction.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.
    n_bins : int, default=15
        Number of bins.
    binning : {"width", "mass"}, default="width"
        Bin layout, as in `ece`.

    Returns
    -------
    float
        Signed error in [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
    >>> round(signed_ece(np.array([0, 1, 1, 1]), probs, n_bins=3), 6)
    0.025
    """
    n_bins = _check_n_bins(n_bins)
    binning = _check_binning(binning)
    conf, correct = _top_label_outcomes(y_true, probs)
    _, conf_sum, correct_sum, _ = _calibration_sums(conf, correct, n_bins, binning)
    return float(np.sum(conf_sum - correct_sum) / conf.shape[0])


def reliability_curve(
    y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15, binning: str = "width"
) -> dict[str, np.ndarray]:
    """Per-bin counts, mean confidence and accuracy: the reliability diagram.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.
    n_bins : int, default=15
        Number of bins.
    binning : {"width", "mass"}, default="width"
        Bin layout, as in `ece`.

    Returns
    -------
    dict
        ``bin_edges`` : ndarray of shape (n_bins + 1,)
            For equal-mass bins these are the confidence quantiles (first =
            smallest confidence, last = largest).
        ``count`` : ndarray of shape (n_bins,), int64
        ``mean_confidence`` : ndarray of shape (n_bins,), NaN for empty bins
        ``accuracy`` : ndarray of shape (n_bins,), NaN for empty bins

    Examples
    --------
    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
    >>> curve = reliability_curve(np.array([0, 1, 1, 1]), probs, n_bins=3)
    >>> curve["count"].tolist(), curve["accuracy"].round(3).tolist()
    ([0, 1, 3], [nan, 1.0, 0.667])
    """
    n_bins = _check_n_bins(n_bins)
    binning = _check_binning(binning)
    conf, correct = _top_label_outcomes(y_true, probs)
    count, conf_sum, correct_sum, edges = _calibration_sums(conf, correct, n_bins, binning)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        acc = np.where(count > 0, correct_sum / count, np.nan)
    return {
        "bin_edges": edges,
        "count": count.astype(np.int64, copy=False),
        "mean_confidence": mean_conf,
        "accuracy": acc,
    }


# --------------------------------------------------------------------------
# smooth ECE (Błasiok & Nakkiran 2023)
# --------------------------------------------------------------------------

#: Grid cells per kernel bandwidth below which the grid is refined.
_SMECE_CELLS_PER_SIGMA = 8
#: Finest grid (cells on [0, 1]); bounds the smallest resolvable bandwidth.
_SMECE_MAX_GRID = 2**17
#: Bisection stops when the bracket is this narrow relative to its upper end.
_SMECE_RTOL = 1e-5


def _linear_bin(x: np.ndarray, weights: np.ndarray, n_grid: int) -> np.ndarray:
    """Linear binning of weighted points in [0, 1] onto cell centres.

    The grid has `n_grid` cells of width ``h = 1 / n_grid`` with nodes at the
    centres ``(a + 0.5) h``. A point between two nodes splits its weight
    between them in proportion to proximity. Points within half a cell of 0
    or 1 would send weight to the node beyond the boundary; that node is the
    mirror image of the first / last node, so the weight goes there, which is
    exactly what reflecting the point at the boundary does.
    """
    u = np.clip(x, 0.0, 1.0) * n_grid - 0.5
    lo = np.floor(u)
    frac = u - lo
    lo = lo.astype(np.intp)
    hi = lo + 1
    np.clip(lo, 0, n_grid - 1, out=lo)
    np.clip(hi, 0, n_grid - 1, out=hi)
    out = np.bincount(lo, weights=weights * (1.0 - frac), minlength=n_grid)
    out += np.bincount(hi, weights=weights * frac, minlength=n_grid)
    return out


class _ReflectedSmoother:
    """Gaussian kernel smoothing on [0, 1] with reflection at both ends.

    The reflected kernel is ``K(t, s) = sum_j phi(t - s + 2j) + phi(t + s + 2j)``
    over all integers j: the density of a Gaussian centred at s folded back
    into [0, 1], so it integrates to one over t for every s. On a grid of
    cell centres, the histogram mirrored once (``[h, h[::-1]]``, period 2) and
    circularly convolved with the Gaussian wrapped to period 2 gives exactly
    this kernel, so one real FFT of length ``2 * n_grid`` smooths all points at
    once. Histograms are cached per grid size; the grid is refined when the
    bandwidth drops below a few cells.
    """

    def __init__(self, x: np.ndarray, weights: dict[str, np.ndarray], n_grid: int, n: int):
        self._x = x
        self._weights = weights
        self.residual = weights["residual"]
        self._n_grid = n_grid
        self._n = n
        self._spectra: dict[int, dict[str, np.ndarray]] = {}

    def grid_size(self, sigma: float) -> int:
        need = int(np.ceil(_SMECE_CELLS_PER_SIGMA / sigma))
        m = self._n_grid
        while m < need and m < _SMECE_MAX_GRID:
            m *= 2
        return m

    def _spectrum(self, m: int) -> dict[str, np.ndarray]:
        if m not in self._spectra:
            spectra = {}
            for name, w in self._weights.items():
                hist = _linear_bin(self._x, w, m) / self._n
                spectra[name] = np.fft.rfft(np.concatenate([hist, hist[::-1]]))
            self._spectra[m] = spectra
        return self._spectra[m]

    @staticmethod
    def _kernel_spectrum(sigma: float, m: int) -> np.ndarray:
        length = 2 * m
        # circular distances 0 .. m cells (0 .. 1 in confidence); beyond 10 sigma the
        # Gaussian is below 2e-22 of its peak and is left at zero
        reach = min(m, int(np.ceil(10.0 * sigma * m)))
        d = np.arange(reach + 1, dtype=np.float64) / m
        n_images = int(np.ceil(5.0 * sigma / 2.0)) + 1
        shifts = 2.0 * np.arange(-n_images, n_images + 1)
        z = (d[:, None] + shifts[None, :]) / sigma
        half = np.exp(-0.5 * z * z).sum(axis=1)
        k = np.zeros(length)
        k[: reach + 1] = half
        mirror = half[1 : min(reach + 1, m)]  # distances 1 .. (reach or m - 1), mirrored
        k[length - mirror.size :] = mirror[::-1]
        k *= m / k.sum()  # discrete kernel integrates to exactly 1 (h = 1/m)
        return np.fft.rfft(k)

    def smooth(self, sigma: float, names: tuple[str, ...]) -> tuple[int, dict[str, np.ndarray]]:
        """Smoothed functions on the cell centres, as densities on [0, 1].

        Returns the grid size and, per name, ``(1/n) sum_i w_i K(t_a, x_i)``
        at ``t_a = (a + 0.5) / m``.
        """
        m = self.grid_size(sigma)
        spec = self._spectrum(m)
        kspec = self._kernel_spectrum(sigma, m)
        out = {}
        for name in names:
            full = np.fft.irfft(spec[name] * kspec, n=2 * m)
            out[name] = full[:m]
        return m, out


def _smece_at(smoother: _ReflectedSmoother, sigma: float) -> float:
    """smECE at a fixed bandwidth: ``integral_0^1 |r_sigma(t)| dt``."""
    m, out = smoother.smooth(sigma, ("residual",))
    return float(np.sum(np.abs(out["residual"])) / m)


def _smece_fixed_point(smoother: _ReflectedSmoother) -> float:
    """Bandwidth sigma* with ``smECE_sigma* = sigma*``, by bisection.

    ``smECE_sigma`` does not increase with sigma, so ``smECE_sigma - sigma``
    is decreasing and crosses zero once. The bracket starts at
    ``[smallest resolvable bandwidth, 1]``; if the crossing lies below it, the
    data are calibrated to grid resolution and the bisection ends at that
    smallest bandwidth. Bandwidths are only evaluated where the bisection
    goes, so a fine grid is built only for small sigma*.
    """
    lo = _SMECE_CELLS_PER_SIGMA / _SMECE_MAX_GRID
    hi = 1.0
    if not np.any(smoother.residual):  # every confidence equals its outcome
        return lo
    if _smece_at(smoother, hi) > hi:  # cannot happen for residuals in [-1, 1]
        return hi
    while hi - lo > _SMECE_RTOL * hi:
        mid = 0.5 * (lo + hi)
        if _smece_at(smoother, mid) > mid:
            lo = mid
        else:
            hi = mid
    return hi


def _check_n_grid(n_grid: Any) -> int:
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 16:
        raise InvalidInputError(
            f"n_grid must be an integer of at least 16, got {n_grid!r}; the default is 1024."
        )
    return int(n_grid)


def _smoother_for(y_true, probs, n_grid: int, with_density: bool) -> _ReflectedSmoother:
    conf, correct = _top_label_outcomes(y_true, probs)
    weights = {"residual": correct - conf}
    if with_density:
        weights["density"] = np.ones_like(conf)
    return _ReflectedSmoother(conf, weights, n_grid, conf.shape[0])


def smooth_ece(
    y_true: np.ndarray, probs: np.ndarray, *, signed: bool = False, n_grid: int = 1024
) -> float:
    """Smooth ECE of the top-label confidence (Błasiok & Nakkiran, 2023).

    A binning-free calibration error. The residuals ``r_i = correct_i -
    conf_i`` are smoothed over the confidence axis with a Gaussian kernel of
    bandwidth sigma, reflected at 0 and 1::

        smECE_sigma = integral_0^1 | (1/n) sum_i K_sigma(t, conf_i) r_i | dt

    and the bandwidth is the fixed point ``sigma*`` with
    ``smECE_sigma* = sigma*``, found by bisection (``smECE_sigma`` does not
    increase with sigma). The kernel is evaluated on a grid of cell centres
    (linear binning of the points, one FFT per bandwidth), never on all
    pairs of samples, so the cost is O(n_samples + n_grid log n_grid) per
    bisection step. The grid is refined automatically when the bandwidth gets
    narrower than a few cells.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.
    signed : bool, default=False
        Return ``-integral_0^1 (1/n) sum_i K(t, conf_i) r_i dt`` at the same
        bandwidth: positive means overconfident. The reflected kernel keeps
        all mass inside [0, 1], so this equals ``mean_confidence - accuracy``
        (to rounding), like `signed_ece`; the unsigned value is the one that
        depends on the smoothing.
    n_grid : int, default=1024
        Number of grid cells on [0, 1] (at least 16).

    Returns
    -------
    float
        smECE in [0, 1] (or the signed value in [-1, 1]).

    References
    ----------
    J. Błasiok and P. Nakkiran, "Smooth ECE: Principled Reliability Diagrams
    via Kernel Smoothing", arXiv:2309.12236, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.5, 1.0, 20000)
    >>> y_true = (rng.uniform(size=20000) > conf).astype(int)  # class 0 right w.p. conf
    >>> probs = np.column_stack([conf, 1 - conf])
    >>> smooth_ece(y_true, probs) < 0.02
    True
    """
    n_grid = _check_n_grid(n_grid)
    smoother = _smoother_for(y_true, probs, n_grid, with_density=False)
    sigma = _smece_fixed_point(smoother)
    if not signed:
        return _smece_at(smoother, sigma)
    m, out = smoother.smooth(sigma, ("residual",))
    return float(-np.sum(out["residual"]) / m)


def smooth_reliability_curve(
    y_true: np.ndarray, probs: np.ndarray, *, n_grid: int = 1024
) -> dict[str, Any]:
    """Kernel-smoothed reliability diagram at the smooth-ECE bandwidth.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.
    n_grid : int, default=1024
        Number of grid cells on [0, 1] (at least 16).

    Returns
    -------
    dict
        ``confidence`` : ndarray of shape (m,)
            Grid of confidences (cell centres on [0, 1]; m >= n_grid).
        ``accuracy`` : ndarray of shape (m,)
            Smoothed accuracy at each confidence: ``t + r(t) / density(t)``;
            NaN where the smoothed density is below 1e-6 (no data nearby).
        ``density`` : ndarray of shape (m,)
            Kernel density of the confidences (integrates to 1 on [0, 1]).
        ``bandwidth`` : float
            The fixed-point bandwidth sigma*.
        ``smooth_ece`` : float
            The smooth ECE, the density-weighted mean of
            ``|accuracy - confidence|``.

    Examples
    --------
    >>> import numpy as np
    >>> curve = smooth_reliability_curve(np.array([0, 1, 0, 0]), np.array(
    ...     [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]))
    >>> sorted(curve)
    ['accuracy', 'bandwidth', 'confidence', 'density', 'smooth_ece']
    """
    n_grid = _check_n_grid(n_grid)
    smoother = _smoother_for(y_true, probs, n_grid, with_density=True)
    sigma = _smece_fixed_point(smoother)
    m, out = smoother.smooth(sigma, ("residual", "density"))
    t = (np.arange(m) + 0.5) / m
    dens = out["density"]
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.where(dens > 1e-6, t + out["residual"] / dens, np.nan)
    return {
        "confidence": t,
        "accuracy": acc,
        "density": dens,
        "bandwidth": float(sigma),
        "smooth_ece": float(np.sum(np.abs(out["residual"])) / m),
    }


# --------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------

#: Float64 elements per block of bootstrap count vectors (bounds working memory).
_BOOT_BLOCK = 2**21


def bootstrap_ci(
    y_true: np.ndarray,
    probs: np.ndarray,
    metrics: tuple[str, ...] = ("accuracy", "balanced_accuracy", "log_loss", "brier", "ece"),
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of the headline metrics.

    Per-sample values (correct, NLL, Brier term, confidence, true-class
    probability) are computed once, in one pass over `probs`. A replicate is
    a vector of resampling counts ``c`` (how often each sample was drawn), so
    every metric of every replicate is a weighted sum: the means are one
    matrix product ``C @ values`` per block of replicates, balanced accuracy
    uses per-class sums of ``c`` and ``c * correct`` (a sparse product), and
    ECE (equal-width, 15 bins) uses per-bin sums of ``c * (conf - correct)``.
    A replicate costs O(n_samples) whatever n_classes is.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.
    metrics : sequence of str
        Any of ``accuracy``, ``balanced_accuracy``, ``log_loss``, ``brier``,
        ``ece``, ``mean_confidence``, ``mean_true_prob``.
    n_boot : int, default=200
        Number of bootstrap replicates.
    alpha : float, default=0.05
        The interval covers ``1 - alpha``: the ``alpha/2`` and
        ``1 - alpha/2`` quantiles of the replicates.
    seed : int, default=0
        Seed of the resampling. Replicate r resamples the indices
        ``numpy.random.default_rng(seed).integers(0, n_samples, n_samples)``
        of the r-th call, whichever metrics are asked for, so the same seed
        gives the same intervals and a metric's interval does not depend on
        the other metrics requested.

    Returns
    -------
    dict
        Metric name -> ``(low, high)``.

    Notes
    -----
    Binned ECE is biased upwards in small samples and its replicates more so
    (a resample repeats points, which adds noise to every bin), so for a
    well-calibrated model the ECE interval can sit above the point estimate.
    Read it as the spread of the estimate, not as a test of zero
    miscalibration.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> probs = rng.dirichlet(np.ones(3), size=500)
    >>> y_true = rng.integers(0, 3, size=500)
    >>> low, high = bootstrap_ci(y_true, probs, metrics=("accuracy",))["accuracy"]
    >>> bool(low < accuracy(y_true, probs) < high)
    True
    """
    names = tuple(dict.fromkeys(metrics))
    unknown = [m for m in names if m not in BOOTSTRAP_METRICS]
    if unknown or not names:
        raise InvalidInputError(
            f"metrics must name at least one of {', '.join(BOOTSTRAP_METRICS)}; "
            f"got {list(metrics)!r}."
        )
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise InvalidInputError(
            f"n_boot must be a positive integer, got {n_boot!r}; 200 or more is usual."
        )
    if not isinstance(alpha, (float, int, np.floating)) or not 0 < alpha < 1:
        raise InvalidInputError(
            f"alpha must be in (0, 1), got {alpha!r}; 0.05 gives a 95% interval."
        )
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    n, k = probs.shape
    n_boot = int(n_boot)

    pred, conf = _top_label(probs)
    correct = (pred == y_true).astype(np.float64)
    p_true = None
    if {"log_loss", "brier", "mean_true_prob"} & set(names):
        p_true = _true_prob(y_true, probs)

    # Every replicate statistic is a count-weighted sum over samples. Mean-type
    # metrics are dense columns; ECE's per-bin residual sums and balanced
    # accuracy's per-class support / correct counts are sparse columns (one
    # non-zero per sample each).
    from scipy import sparse

    dense_cols: list[np.ndarray] = []
    dense_names: list[str] = []
    for name in names:
        if name == "accuracy":
            dense_cols.append(correct)
        elif name == "log_loss":
            dense_cols.append(_nll(p_true, LOG_EPS))
        elif name == "brier":
            dense_cols.append(_brier_rows(probs, p_true))
        elif name == "mean_confidence":
            dense_cols.append(conf)
        elif name == "mean_true_prob":
            dense_cols.append(p_true)
        else:
            continue
        dense_names.append(name)
    dense = np.column_stack(dense_cols) if dense_cols else None

    n_bins = 15
    rows = np.arange(n)
    sp_rows, sp_cols, sp_vals = [], [], []
    width = 0
    if "ece" in names:
        bins, _ = _bin_ids(conf, n_bins, "width")
        sp_rows.append(rows)
        sp_cols.append(bins)
        sp_vals.append(conf - correct)
        ece_cols = slice(0, n_bins)
        width = n_bins
    if "balanced_accuracy" in names:
        labels = y_true.astype(np.intp, copy=False)
        sp_rows += [rows, rows]
        sp_cols += [width + labels, width + k + labels]
        sp_vals += [np.ones(n), correct]
        support_cols, tp_cols = slice(width, width + k), slice(width + k, width + 2 * k)
        width += 2 * k
    grouped = None
    if width:
        grouped = sparse.csr_matrix(
            (np.concatenate(sp_vals), (np.concatenate(sp_rows), np.concatenate(sp_cols))),
            shape=(n, width),
        )

    results = {name: np.empty(n_boot) for name in names}
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, _BOOT_BLOCK // n))
    counts = np.empty((block, n))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        c = counts[:b]
        for r in range(b):
            c[r] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        sl = slice(start, start + b)
        if dense is not None:
            sums = c @ dense  # (b, n_dense)
            for j, name in enumerate(dense_names):
                results[name][sl] = sums[:, j] / n
        if grouped is not None:
            g = np.asarray(c @ grouped)  # (b, width)
            if "ece" in names:
                results["ece"][sl] = np.abs(g[:, ece_cols]).sum(axis=1) / n
            if "balanced_accuracy" in names:
                support, tp = g[:, support_cols], g[:, tp_cols]
                present = support > 0
                with np.errstate(divide="ignore", invalid="ignore"):
                    recall = np.where(present, tp / support, 0.0)
                results["balanced_accuracy"][sl] = recall.sum(axis=1) / present.sum(axis=1)
    q = [alpha / 2.0, 1.0 - alpha / 2.0]
    out = {}
    for name in names:
        low, high = np.quantile(results[name], q)
        out[name] = (float(low), float(high))
    return out


# --------------------------------------------------------------------------
# baselines and summary
# --------------------------------------------------------------------------


def baselines(
    y_true: np.ndarray, n_classes: int, train_priors: np.ndarray | None = None
) -> dict[str, Any]:
    """What a model without inputs would score on `y_true`.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    n_classes : int
        Number of classes K.
    train_priors : ndarray of shape (n_classes,), optional
        Class priors (or counts) of the training data; normalised to sum to
        one. When omitted, the class frequencies of `y_true` itself are used,
        which gives the best any input-blind model can do on this split.

    Returns
    -------
    dict
        ``priors`` : ndarray of shape (n_classes,)
            The priors the baselines predict.
        ``majority_class`` : int
            ``argmax(priors)``: the class a constant model predicts.
        ``majority_accuracy`` : float
            Accuracy of always predicting `majority_class`.
        ``majority_balanced_accuracy`` : float
            Its balanced accuracy: ``1 / (number of classes present)`` if the
            majority class is present in `y_true`, else 0.
        ``prior_log_loss`` : float
            Log loss of predicting `priors` for every sample; priors are
            clipped to ``[1e-15, 1 - 1e-15]`` exactly as in `log_loss`, so a
            class the priors never saw costs 34.5 nats, not infinity.
        ``prior_brier`` : float
            Brier score (module conventions) of predicting `priors` for every sample.
        ``chance_accuracy`` : float
            Expected accuracy of guessing at random from the priors:
            ``sum_k priors_k * freq_k``.

    Examples
    --------
    >>> import numpy as np
    >>> b = baselines(np.array([0, 0, 0, 1]), 2)
    >>> b["majority_accuracy"], b["majority_balanced_accuracy"], b["chance_accuracy"]
    (0.75, 0.5, 0.625)
    """
    k = int(n_classes)
    y_true = np.asarray(y_true)
    n = y_true.shape[0]
    counts = np.bincount(y_true, minlength=k).astype(np.float64)
    freq = counts / n
    if train_priors is None:
        priors = freq.copy()
    else:
        priors = np.asarray(train_priors, dtype=np.float64)
        if (
            priors.shape != (k,)
            or not np.all(np.isfinite(priors))
            or np.any(priors < 0)
            or priors.sum() <= 0
        ):
            raise InvalidInputError(
                f"train_priors must be {k} finite non-negative numbers (one per class) with a "
                f"positive sum, got shape {priors.shape}; pass the training class counts or "
                "frequencies."
            )
        priors = priors / priors.sum()
    majority = int(np.argmax(priors))
    present = counts > 0
    clipped = np.clip(priors, LOG_EPS, 1.0 - LOG_EPS)
    return {
        "priors": priors,
        "majority_class": majority,
        "majority_accuracy": float(freq[majority]),
        "majority_balanced_accuracy": float(present[majority] / present.sum()),
        "prior_log_loss": float(-np.dot(freq, np.log(clipped))),
        "prior_brier": _brier_factor(len(priors)) * float(max(np.dot(priors, priors) - 2.0 * np.dot(freq, priors) + 1.0, 0.0)),
        "chance_accuracy": float(np.dot(priors, freq)),
    }


def summary(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float | int]:
    """The report's headline metrics in one pass over the predictions.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True class ids in ``[0, n_classes)``.
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``log_loss``, ``brier``, ``ece``
        (equal-width, 15 bins), ``mean_confidence`` (floats) and ``n_test``
        (int), each equal to the function of the same name.

    Examples
    --------
    >>> import numpy as np
    >>> s = summary(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    >>> s["accuracy"], s["n_test"]
    (0.6666666666666666, 3)
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    n, k = probs.shape
    pred, conf = _top_label(probs)
    hit = pred == y_true
    correct = hit.astype(np.float64)
    p_true = _true_prob(y_true, probs)
    support = np.bincount(y_true, minlength=k)
    tp = np.bincount(y_true[hit], minlength=k)
    _, conf_sum, correct_sum, _ = _calibration_sums(conf, correct, 15, "width")
    brier_total = _sq_total(probs) - 2.0 * float(np.sum(p_true)) + n
    return {
        "accuracy": float(np.count_nonzero(hit) / n),
        "balanced_accuracy": _balanced_accuracy_from_counts(tp, support),
        "log_loss": float(np.mean(_nll(p_true, LOG_EPS))),
        "brier": _brier_factor(k) * max(brier_total, 0.0) / n,
        "ece": float(np.sum(np.abs(conf_sum - correct_sum)) / n),
        "mean_confidence": float(np.mean(conf)),
        "n_test": int(n),
    }


# --------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------


class CalibrationAccumulator:
    """Streaming, mergeable state for the headline metrics.

    Keeps fixed-size sums only (no per-sample data): a confusion matrix,
    per-class sums of the true-class probability, totals of NLL, Brier terms
    and confidence, and per-bin count / confidence sum / correct sum for the
    equal-width ECE. Chunked updates, and accumulators merged across workers,
    give the same result as one pass (up to float rounding of the sums).

    Parameters
    ----------
    n_classes : int
        Number of classes K.
    n_bins : int, default=15
        Number of equal-width ECE bins.
    eps : float, default=1e-15
        Log-loss clipping, as in `log_loss`.

    Attributes
    ----------
    n_samples : int
    confusion : ndarray of shape (n_classes, n_classes), int64
        A ``scipy.sparse.csr_array`` above ``DENSE_CELLS`` cells (about 2,000
        classes), so many classes cost memory O(samples), not O(K²).
    true_prob_sum : ndarray of shape (n_classes,)
    bin_count : ndarray of shape (n_bins,), int64
    bin_conf_sum, bin_correct_sum : ndarray of shape (n_bins,)

    Examples
    --------
    >>> import numpy as np
    >>> acc = CalibrationAccumulator(n_classes=2)
    >>> acc.update(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    >>> acc.update(np.array([1]), np.array([[0.6, 0.4]]))
    >>> acc.compute()["accuracy"]
    0.6666666666666666
    """

    def __init__(self, n_classes: int, n_bins: int = 15, eps: float = LOG_EPS):
        if (
            isinstance(n_classes, bool)
            or not isinstance(n_classes, (int, np.integer))
            or n_classes < 1
        ):
            raise InvalidInputError(
                f"n_classes must be a positive integer, got {n_classes!r}."
            )
        self.n_classes = int(n_classes)
        self.n_bins = _check_n_bins(n_bins)
        self.eps = _check_eps(eps)
        self.n_samples = 0
        self._sparse = self.n_classes * self.n_classes > DENSE_CELLS
        if self._sparse:  # many classes: only the non-zero cells (at most n_samples)
            from scipy import sparse

            self.confusion = sparse.csr_array((self.n_classes, self.n_classes), dtype=np.int64)
        else:
            self.confusion = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)
        self.true_prob_sum = np.zeros(self.n_classes)
        self.nll_sum = 0.0
        self.brier_sum = 0.0
        self.conf_sum = 0.0
        self.bin_count = np.zeros(self.n_bins, dtype=np.int64)
        self.bin_conf_sum = np.zeros(self.n_bins)
        self.bin_correct_sum = np.zeros(self.n_bins)

    def update(self, y_true: np.ndarray, probs: np.ndarray) -> None:
        """Add a batch.

        Parameters
        ----------
        y_true : ndarray of shape (n_samples,)
            True class ids in ``[0, n_classes)``.
        probs : ndarray of shape (n_samples, n_classes)
            Predicted probabilities.
        """
        y_true = np.asarray(y_true)
        probs = np.asarray(probs)
        if probs.ndim != 2 or probs.shape[1] != self.n_classes or y_true.shape != probs.shape[:1]:
            raise InvalidInputError(
                f"update expects y_true of shape (n_samples,) and probs of shape (n_samples, "
                f"{self.n_classes}), got {y_true.shape} and {probs.shape}; pass the batch with "
                "the class count the accumulator was built for."
            )
        if probs.shape[0] == 0:
            return
        pred, conf = _top_label(probs)
        correct = (pred == y_true).astype(np.float64)
        p_true = _true_prob(y_true, probs)
        self.n_samples += probs.shape[0]
        if self._sparse:
            self.confusion = self.confusion + confusion_matrix(y_true, pred, self.n_classes, sparse=True)
        else:
            self.confusion += confusion_matrix(y_true, pred, self.n_classes)
        self.true_prob_sum += np.bincount(y_true, weights=p_true, minlength=self.n_classes)
        self.nll_sum += float(np.sum(_nll(p_true, self.eps)))
        self.brier_sum += float(np.sum(_brier_rows(probs, p_true)))
        self.conf_sum += float(np.sum(conf))
        count, cs, ks, _ = _calibration_sums(conf, correct, self.n_bins, "width")
        self.bin_count += count
        self.bin_conf_sum += cs
        self.bin_correct_sum += ks

    def merge(self, other: CalibrationAccumulator) -> CalibrationAccumulator:
        """Add the state of `other` (e.g. from another worker) into this one.

        Returns
        -------
        CalibrationAccumulator
            ``self``.
        """
        if not isinstance(other, CalibrationAccumulator) or (
            other.n_classes,
            other.n_bins,
            other.eps,
        ) != (self.n_classes, self.n_bins, self.eps):
            raise InvalidInputError(
                "merge expects a CalibrationAccumulator with the same n_classes, n_bins and eps "
                f"({self.n_classes}, {self.n_bins}, {self.eps}); got {other!r}."
            )
        self.n_samples += other.n_samples
        self.confusion = self.confusion + other.confusion
        self.true_prob_sum += other.true_prob_sum
        self.nll_sum += other.nll_sum
        self.brier_sum += other.brier_sum
        self.conf_sum += other.conf_sum
        self.bin_count += other.bin_count
        self.bin_conf_sum += other.bin_conf_sum
        self.bin_correct_sum += other.bin_correct_sum
        return self

    def _require_samples(self) -> int:
        if self.n_samples == 0:
            raise InvalidInputError(
                "CalibrationAccumulator has no samples; call update(y_true, probs) with at "
                "least one sample before compute()."
            )
        return self.n_samples

    def compute(self) -> dict[str, float | int]:
        """The headline metrics of everything added so far.

        Returns
        -------
        dict
            Same keys and meaning as `summary`.
        """
        n = self._require_samples()
        tp = self.confusion.diagonal()
        support = np.asarray(self.confusion.sum(axis=1)).ravel()
        return {
            "accuracy": float(tp.sum() / n),
            "balanced_accuracy": _balanced_accuracy_from_counts(tp, support),
            "log_loss": self.nll_sum / n,
            "brier": self.brier_sum / n,
            "ece": float(np.sum(np.abs(self.bin_conf_sum - self.bin_correct_sum)) / n),
            "mean_confidence": self.conf_sum / n,
            "n_test": int(n),
        }

    def per_class(self) -> dict[str, np.ndarray]:
        """Per-class metrics of everything added so far.

        Returns
        -------
        dict
            Same keys and meaning as `per_class_metrics`.
        """
        self._require_samples()
        tp = self.confusion.diagonal().astype(np.float64)
        support = np.asarray(self.confusion.sum(axis=1)).ravel()
        predicted = np.asarray(self.confusion.sum(axis=0)).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(predicted > 0, tp / predicted, 0.0)
            recall = np.where(support > 0, tp / support, 0.0)
            denom = predicted + support
            f1 = np.where(denom > 0, 2.0 * tp / denom, 0.0)
            mean_tp = np.where(support > 0, self.true_prob_sum / support, np.nan)
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
            "mean_true_prob": mean_tp,
        }

    def __repr__(self) -> str:
        return (
            f"CalibrationAccumulator(n_classes={self.n_classes}, n_bins={self.n_bins}, "
            f"n_samples={self.n_samples})"
        )
