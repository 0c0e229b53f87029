"""Decision thresholds for binary classifiers: choose on one split, verify on another.

The rule: predict the positive class (column 1) when ``p_pos >= threshold``.
The default, ``argmax``, is the same as a threshold just above 0.5.

Choosing a threshold (`fit_threshold`)
--------------------------------------
Every cut between two distinct scores is a candidate. Sorting the scores
once (decreasing) and taking cumulative sums of the labels gives the
confusion counts of every cut in O(n log n), so the whole curve of the
metric comes at once. The chosen threshold is the midpoint between the last
score predicted positive and the next lower distinct score, so it separates
the fitting data exactly as the best cut does. Among cuts with the same
(best) metric, the one whose threshold is closest to 0.5 wins: the smallest
change that achieves it.

Metrics: ``"balanced_accuracy"`` (mean of the true-positive and
true-negative rates; it does not depend on the class balance of the data it
is measured on, which is why it is the default) or ``"f1"``, the F1 score of
the minority class of the fitting data.

Testing the gain (`paired_gain_test`)
-------------------------------------
Before (argmax) and after (the new threshold) are measured on the same
held-out samples, so the test is paired. Per sample,
``d_i = correct_after_i - correct_before_i`` is -1, 0 or +1 (only samples
whose score lies between the two thresholds change). Balanced accuracy is
the mean of the two per-class accuracies, so its gain is
``(mean_pos d + mean_neg d) / 2``, the two class means being independent.
Under the null hypothesis of no gain, ``E[d] = 0`` in each class and
``Var(mean_c d) = (b_c + w_c) / n_c^2`` with ``b_c`` / ``w_c`` the samples of
class c that became right / wrong: the McNemar statistic, stratified by class
and weighted as balanced accuracy weights the classes. ``z = gain / se`` and
the one-sided p-value is ``1 - Phi(z)``; with no changed sample p = 1. With a
``margin`` the null is ``gain <= margin`` and ``z = (gain - margin) / se``
(the null-variance above is kept, which is conservative there). For
F1, which does not decompose over samples, a paired percentile bootstrap of
the gain is used instead (p = share of resamples with gain <= 0).

Without a validation split, `cross_fit_thresholds` chooses a threshold on
each stratified half of the test split and applies it to the other half, so
every sample is judged by a threshold chosen without it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from whylow.errors import InvalidInputError
from whylow.fixes.temperature import stratified_halves

__all__ = [
    "METRICS",
    "cross_fit_thresholds",
    "fit_threshold",
    "paired_gain_test",
    "threshold_curve",
    "threshold_metrics",
]

#: Metrics a threshold can be chosen for.
METRICS = ("balanced_accuracy", "f1")


def _check(y_true, p_pos) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(p_pos, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.ndim != 1 or y.shape != p.shape:
        raise InvalidInputError(
            f"p_pos must be one positive-class probability per sample (shape ({y.shape[0]},)) matching y_true, got {p.shape}."
        )
    if p.size == 0 or not np.isfinite(p).all():
        raise InvalidInputError("p_pos must be a non-empty array of finite probabilities.")
    if not np.isin(y, (0, 1)).all():
        raise InvalidInputError("y_true must hold binary labels 0 and 1 for a decision threshold.")
    return y.astype(np.int64), p


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}.")
    return metric


def _metric_from_counts(tp, fp, n_pos, n_neg, metric: str, minority: int):
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    fn = n_pos - tp
    tn = n_neg - fp
    if metric == "balanced_accuracy":
        tpr = tp / n_pos if n_pos else np.zeros_like(tp)
        tnr = tn / n_neg if n_neg else np.zeros_like(tn)
        return 0.5 * (tpr + tnr)
    if minority == 1:
        num, den = 2 * tp, 2 * tp + fp + fn
    else:
        num, den = 2 * tn, 2 * tn + fn + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def threshold_curve(y_true, p_pos, metric: str = "balanced_accuracy") -> dict[str, np.ndarray]:
    """The metric at every distinct cut of the scores.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels (1 = positive).
    p_pos : array-like of shape (n_samples,) or (n_samples, 2)
        Positive-class probability.
    metric : {"balanced_accuracy", "f1"}

    Returns
    -------
    dict
        ``threshold`` (n_cuts,), decreasing: predicting positive when
        ``p_pos >= threshold``; ``value`` (n_cuts,): the metric there;
        ``minority``: the class whose F1 is meant by ``"f1"``.
    """
    y, p = _check(y_true, p_pos)
    metric = _check_metric(metric)
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    n = p.size
    n_pos = int(ys.sum())
    n_neg = n - n_pos
    tp = np.r_[0, np.cumsum(ys)]
    k = np.arange(n + 1)
    fp = k - tp
    # cuts after k samples are valid only between distinct scores (and at both ends)
    valid = np.r_[True, ps[:-1] > ps[1:], True]
    kk = k[valid]
    thr = np.empty(kk.size)
    inner = (kk > 0) & (kk < n)
    thr[inner] = 0.5 * (ps[kk[inner] - 1] + ps[kk[inner]])
    thr[kk == 0] = np.nextafter(ps[0], np.inf)
    thr[kk == n] = ps[-1]
    minority = 1 if n_pos <= n_neg else 0
    value = _metric_from_counts(tp[kk], fp[kk], n_pos, n_neg, metric, minority)
    return {"threshold": thr, "value": value, "minority": minority}


def fit_threshold(y_true, p_pos, metric: str = "balanced_accuracy") -> tuple[float, float]:
    """The threshold on ``p_pos`` that maximises ``metric`` on this data.

    Returns
    -------
    threshold : float
        Predict positive when ``p_pos >= threshold``.
    value : float
        The metric at that threshold, on this (fitting) data.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 1, 0, 1, 1])
    >>> p = np.array([0.05, 0.1, 0.15, 0.2, 0.3, 0.35, 0.4, 0.6])
    >>> fit_threshold(y, p)
    (0.175, 0.875)
    """
    y, _ = _check(y_true, p_pos)
    if y.min() == y.max():
        raise InvalidInputError("A threshold needs both classes in y_true; only one class is present.")
    curve = threshold_curve(y_true, p_pos, metric)
    v = curve["value"]
    best = np.flatnonzero(v >= v.max() - 1e-12)
    i = best[np.argmin(np.abs(curve["threshold"][best] - 0.5))]
    return float(curve["threshold"][i]), float(v[i])


def threshold_metrics(y_true, y_pred) -> dict[str, float]:
    """Balanced accuracy, TPR, TNR, accuracy and per-class F1 of binary predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Binary labels and predictions.
    """
    y = np.asarray(y_true).astype(bool)
    yp = np.asarray(y_pred).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    tp, fp = int((y & yp).sum()), int((~y & yp).sum())
    fn, tn = n_pos - tp, n_neg - fp
    tpr = tp / n_pos if n_pos else math.nan
    tnr = tn / n_neg if n_neg else math.nan
    return {
        "balanced_accuracy": 0.5 * (tpr + tnr),
        "tpr": tpr,
        "tnr": tnr,
        "accuracy": (tp + tn) / y.size,
        "f1_positive": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "f1_negative": 2 * tn / (2 * tn + fn + fp) if tn + fn + fp else 0.0,
        "predicted_positive_rate": (tp + fp) / y.size,
    }


def cross_fit_thresholds(y_true, p_pos, metric: str = "balanced_accuracy", seed: int = 0):
    """Per-sample thresholds chosen on the other stratified half.

    Returns
    -------
    thresholds : ndarray of shape (n_samples,)
    chosen : tuple of two floats
        The threshold chosen on the first half (applied to the second) and on the second half.
    """
    y, p = _check(y_true, p_pos)
    first, second = stratified_halves(y, seed)
    out = np.empty(p.size)
    chosen = []
    for fit_idx, apply_idx in ((first, second), (second, first)):
        if y[fit_idx].min() == y[fit_idx].max():
            raise InvalidInputError("Cross-fitting a threshold needs both classes in each half of the split.")
        t, _ = fit_threshold(y[fit_idx], p[fit_idx], metric)
        out[apply_idx] = t
        chosen.append(t)
    return out, tuple(chosen)


def paired_gain_test(
    y_true,
    pred_before,
    pred_after,
    metric: str = "balanced_accuracy",
    margin: float = 0.0,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Is ``metric`` of ``pred_after`` higher than of ``pred_before`` (by more than ``margin``) on the same samples?

    Parameters
    ----------
    y_true, pred_before, pred_after : array-like of shape (n_samples,)
        Binary labels and two sets of binary predictions for the same samples.
    metric : {"balanced_accuracy", "f1"}
        ``"f1"`` is the F1 of the minority class in ``y_true``.
    margin : float, default=0.0
        The null hypothesis is ``gain <= margin``: a positive margin asks
        for a gain that is significantly larger than a negligible one.
    n_boot : int
        Bootstrap resamples (F1 only).
    seed : int

    Returns
    -------
    dict
        ``before``, ``after``, ``gain``, ``se``, ``z`` (NaN for F1), ``p_value``
        (one-sided: gain > margin), ``n_better``, ``n_worse`` (samples that became
        right / wrong).
    """
    y = np.asarray(y_true).astype(np.int64)
    b = np.asarray(pred_before).astype(np.int64)
    a = np.asarray(pred_after).astype(np.int64)
    metric = _check_metric(metric)
    d = (a == y).astype(np.int64) - (b == y).astype(np.int64)
    n_better, n_worse = int((d > 0).sum()), int((d < 0).sum())
    minority = 1 if y.sum() <= (y.size - y.sum()) else 0

    def score(pred):
        m = threshold_metrics(y, pred)
        if metric == "balanced_accuracy":
            return m["balanced_accuracy"]
        return m["f1_positive"] if minority == 1 else m["f1_negative"]

    before, after = score(b), score(a)
    gain = after - before
    out = {"before": before, "after": after, "gain": gain, "n_better": n_better, "n_worse": n_worse}
    if n_better + n_worse == 0:
        return {**out, "se": 0.0, "z": 0.0, "p_value": 1.0}
    if metric == "balanced_accuracy":
        var = 0.0
        for c in (0, 1):
            dc = d[y == c]
            if dc.size:
                var += 0.25 * np.count_nonzero(dc) / dc.size**2
        se = math.sqrt(var)
        z = (gain - margin) / se if se > 0 else 0.0
        return {**out, "se": se, "z": z, "p_value": float(stats.norm.sf(z))}
    # paired bootstrap: resampling samples = resampling the counts of the 8 (label, before, after) combinations
    combo = y * 4 + b * 2 + a
    counts = np.random.default_rng(seed).multinomial(y.size, np.bincount(combo, minlength=8) / y.size, size=n_boot)
    gains = _f1_from_combos(counts, 1, minority) - _f1_from_combos(counts, 0, minority)
    return {**out, "se": float(gains.std(ddof=1)), "z": math.nan, "p_value": float((np.sum(gains <= margin) + 1) / (n_boot + 1))}


def _f1_from_combos(counts: np.ndarray, which: int, minority: int) -> np.ndarray:
    """F1 of class ``minority`` per bootstrap row of (label, before, after) combination counts.

    ``which`` = 0 reads the "before" predictions, 1 the "after" ones.
    """
    label = np.arange(8) // 4
    pred = (np.arange(8) >> 1) & 1 if which == 0 else np.arange(8) & 1
    hit = (label == minority) & (pred == minority)
    miss = (label == minority) & (pred != minority)
    false = (label != minority) & (pred == minority)
    tp = counts[:, hit].sum(1)
    den = 2 * tp + counts[:, miss].sum(1) + counts[:, false].sum(1)
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
