"""``label-noise``: labels that are likely wrong, found by confident learning on out-of-sample predictions.

Confident learning (Northcutt, Jiang & Chuang 2021, JAIR 70)
--------------------------------------------------------------
Given labels ``s`` and out-of-sample probabilities ``P`` (n × K):

1. Per-class thresholds ``t_j = mean(P[i, j] for s_i = j)``: the average
   self-confidence of class j (`confident_thresholds`).
2. The confident joint ``C[i, j]`` counts examples labelled i whose
   probability of class j reaches ``t_j`` (the argmax among such classes when
   several do). It is calibrated so that row i sums to the number of examples
   labelled i and the whole to n, and rounded preserving row totals
   (`confident_joint`). ``1 - trace(C) / n`` estimates the fraction of wrong
   labels (`estimate_noise_rate`).
3. Pruning by noise rate (`find_label_issues`): for every off-diagonal cell
   ``(i, j)``, the ``C[i, j]`` examples labelled i with the largest margin
   ``P[:, j] - P[:, i]`` are flagged; examples whose argmax is their label are
   then unflagged.

This is cleanlab's ``find_label_issues(filter_by="prune_by_noise_rate")``
re-implemented in numpy (the test suite compares the two).

Out-of-sample probabilities
---------------------------
* Evaluation splits (val, test): the model never trained on them, so its
  predictions are out-of-sample.
* The training split: the model's own training predictions are in-sample
  (it has fitted, often memorised, the labels) and are never used. Instead a
  cheap *proxy* is cross-fitted: shrinkage linear discriminant analysis
  (`ProxyLDA`) on the compact features of `whylow.checks.leakage`
  (images area-averaged to 8×8 per channel; tabular features as given),
  K-fold (5), stratified, seeded, each fold fitted on at most 10,000 rows.

Telling label noise from a weak model
-------------------------------------
Confident learning flags every confident disagreement, and a model that is
broken for other reasons (shifted inputs, wrong preprocessing, underfitting)
disagrees confidently too. So a flag counts only when an independent witness
agrees:

* Evaluation split with inputs: the proxy is cross-fitted *within the split*
  (from its own images and labels, so it is immune to train/test shift) and
  an example is confirmed when confident learning flags it on the proxy's
  probabilities too and the proxy predicts the model's suggested class. The
  confirmed fraction is tested against a base rate of ``base_rate`` (2%: a
  healthy model's confident errors that a second model happens to share,
  e.g. genuinely ambiguous images) with a one-sided binomial test. Two
  witnesses only count if they carry signal: Cohen's kappa between the
  model's and the proxy's predicted classes must reach ``min_kappa`` (when
  the labels are unpredictable, both are at chance and agree with each
  other only by chance). Two weak classifiers (a memorising network and a
  linear proxy on hard photos) share many confident errors on clean labels,
  far above 2%; what tells wrong labels apart is that they spare no
  confidence level. So the model's own held-out disagreement must confirm
  the effect: among its most confident predictions (the top 10%, at least
  20 rows, `top_confident_disagreement`) the labels disagree at least
  ``min_rate``, significantly above ``base_rate`` (binomial, ``p < alpha``).
  At a noise rate ``r`` the top rows disagree with about ``r`` of their
  labels while the overall error rate is ``r`` plus the model's own errors,
  so their ratio estimates the share of the model's errors that wrong labels
  explain; it must reach ``min_error_share`` (a third: a cause that explains
  less of the errors is not what makes the predictions low), and stay below
  one half (most confident predictions contradicting the labels is no
  signal, not noise). And the two witnesses must agree with each other more
  often than the better of them agrees with the labels (one-sided sign test
  on the examples where the two differ, ``p < alpha``): with right labels
  that needs them to share most of their errors; wrong labels make it the
  rule (both predict the true class). From a confirmed fraction of
  ``agreement_exempt_rate`` (10%) this last test is waived: a weak proxy
  (linear, on 8×8 thumbnails of shapes) agrees with the model less often
  than the model with the labels even when a fifth of them are wrong, and
  two classifiers that agree beyond chance (kappa) sharing that many
  confident disagreements, with the model's most confident predictions
  contradicted too, is wrong labels.
  Warning: ``p < alpha``, kappa ``>= min_kappa``, confirmed fraction ``>=
  min_rate`` and the model's confirmation; critical: ``>= critical_rate``.
  Without the model's confirmation it is ``info``.
* Test split against the validation split (both with labels and
  predictions, `_validation_reference`), the model held fixed: two
  splits drawn alike get the same accuracy from the same model, at the same
  confidence and in every class. The test accuracy is predicted from
  validation twice, at the test's confidences (`confidence_matched_accuracy`)
  and at its class mix (`class_matched_accuracy`: per-class recall does not
  move with the priors), and the drop below the higher prediction is tested
  (one-sided z-test against each, the larger p-value). Wrong test labels
  lower accuracy at every confidence and in every class; a weak model's
  errors are already in the validation accuracy. A covariate shift also
  lowers test accuracy, so the inputs must not have moved: a domain
  classifier on the compact features and the model's log-probabilities
  (`whylow.checks.shift.domain_classifier`), and chi-square tests of the
  given and predicted class mixes, all ``p >= alpha`` (otherwise ``info``).
  The drop is the measured effect: a warning from ``min_drop`` (5 accuracy
  points, ``p < alpha``), critical from ``critical_drop`` (10 points) when
  it is also ``min_error_share`` of the test errors; the noise rate it
  implies is ``drop / (expected - (1 - expected) / (K - 1))`` (a flipped
  label matches a right prediction only by luck). The examples are the
  model's confident-learning flags. It decides the split's severity when it
  is the stronger evidence (``decided_by``). With validation labels just as
  wrong it sees nothing; the within-split proxy above is for that.
* Evaluation split without inputs (predictions only): the model's flags
  alone, behind a stricter gate. Wrong labels hit the model's most confident
  predictions as often as any others, while the errors of a weak or
  overconfident model concentrate on its less confident ones. So among the
  10% most confident predictions (mean confidence ``c``), the disagreement
  with the labels is tested (one-sided binomial) against the rate a
  calibrated model would show plus a margin, ``1 - c + model_only_base_rate``;
  a warning needs ``p < alpha``, that disagreement and the flagged fraction
  both ``>= model_only_min_rate``, and the disagreement below one half (if
  most confident predictions contradict the labels, the labels carry no
  signal for this model: that is no-signal, not noise). At most a warning.
* Training split: the proxy's flagged fraction on train (cross-fitted) is
  compared with what the same fold proxies (each fitted on 4/5 of train)
  flag on an evaluation split, averaged over the folds. Both measure the
  proxy's own errors at the same training size (a proxy fitted on all of
  train would be stronger on the evaluation split, and small clean training
  sets would look noisy); train labels are
  noisier than the evaluation labels when the train fraction is higher by at
  least ``min_rate`` (one-sided two-proportion z-test, ``p < alpha``) and
  the proxy carries signal (kappa with the training labels ``>=
  min_proxy_kappa``); critical from ``train_critical_excess``. The
  intervention must not refute it: when the proxy re-fitted without the
  flagged training examples scores lower on the evaluation split than the
  proxy fitted on all of train, the flagged examples are hard ones, not
  wrong labels, and the split is ``info``.
* A proxy alone (no model predictions for an evaluation split, or training
  labels without an evaluation split to compare with) is reported as
  evidence only: a weak proxy's disagreements cannot be told from label
  errors.

``explains``: on an evaluation split, the flagged fraction (each flagged
example counts as a model error that a right label would undo), of the
split's error rate, or, when the validation reference decided, the drop
below validation of the split's error rate; for training labels, the
proxy's verified gain.

Verification: on an evaluation split, the model's accuracy on all examples
vs without the flagged examples (the measured effect of excluding them, not
proof that each flagged label is wrong). For training labels only: the proxy
re-fitted without the flagged training examples, scored on the evaluation
split, against the proxy fitted on all of train.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from whylow.checks import Check, register
from whylow.checks.leakage import scan_split
from whylow.context import Context
from whylow.inputs.prepare import SplitData
from whylow.report.finding import Finding, flagged_example, make_explains

__all__ = [
    "LabelNoiseCheck",
    "ProxyLDA",
    "confident_joint",
    "confident_thresholds",
    "cross_fitted_probs",
    "estimate_noise_rate",
    "find_label_issues",
    "fold_proxies",
    "top_confident_disagreement",
]

_SEVERITY_RANK = {None: -1, "info": 0, "warning": 1, "critical": 2}


# -- confident learning --------------------------------------------------------
def confident_thresholds(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Average self-confidence per class: ``t_j = mean(probs[y_true == j, j])``.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        Given (possibly noisy) labels.
    probs : ndarray of shape (n_samples, n_classes)
        Out-of-sample predicted probabilities.

    Returns
    -------
    ndarray of shape (n_classes,)
        Classes without examples get 2.0 (never reached), as in cleanlab.
    """
    k = probs.shape[1]
    counts = np.bincount(y_true, minlength=k)
    sums = np.bincount(y_true, weights=probs[np.arange(len(y_true)), y_true], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(counts > 0, sums / np.maximum(counts, 1), 2.0)
    return np.maximum(t, 1e-6)


def _round_preserving_row_totals(m: np.ndarray) -> np.ndarray:
    """Round each row to integers keeping its rounded total.

    Entries are rounded to nearest; a row whose rounded entries miss its
    rounded total is corrected by ±1 on the entries with the largest rounding
    error in the needed direction (the rule cleanlab uses, so the counts match).
    """
    out = np.round(m)
    target = np.round(m.sum(axis=1))
    for r in np.flatnonzero(np.abs(out.sum(axis=1) - target) > 1e-6):
        while abs(out[r].sum() - target[r]) > 1e-6:
            diff = target[r] - out[r].sum()
            step = 1 if diff > 0 else -1
            changes = min(int(abs(round(diff))), m.shape[1])
            idx = np.argsort(m[r] - out[r])[::-step][:changes]
            out[r, idx] += step
    return out.astype(np.int64)


#: Above this many K×K cells the confident joint is built sparse (its non-zeros are at most N + K).
_DENSE_JOINT_CELLS = 2**22


def confident_joint(y_true: np.ndarray, probs: np.ndarray, calibrate: bool = True, chunk: int = 65536) -> np.ndarray:
    """The confident joint ``C[given, true]`` of confident learning.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    probs : ndarray of shape (n_samples, n_classes)
    calibrate : bool
        Scale rows to the given-label counts and the total to ``n_samples``, then round.

    Returns
    -------
    ndarray of int64, shape (n_classes, n_classes)
        A ``scipy.sparse.csr_array`` when K×K exceeds ``_DENSE_JOINT_CELLS``
        (20,000 classes would take 3.2 GB dense; the joint has at most N + K
        non-zeros).

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1])
    >>> p = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.2, 0.8]])
    >>> confident_joint(y, p)
    array([[1, 1],
           [0, 2]])
    """
    k = probs.shape[1]
    t = confident_thresholds(y_true, probs)
    rows_per_chunk = max(1, min(chunk, 2**24 // max(k, 1)))  # the boolean mask below stays under 16 MB
    codes = []
    for i in range(0, len(y_true), rows_per_chunk):
        p = probs[i : i + rows_per_chunk]
        above = p >= t - 1e-6
        n_above = above.sum(axis=1)
        guess = np.where(n_above > 1, p.argmax(axis=1), above.argmax(axis=1))
        ok = n_above > 0
        codes.append(y_true[i : i + rows_per_chunk][ok].astype(np.int64) * k + guess[ok])
    codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    if k * k > _DENSE_JOINT_CELLS:
        return _sparse_confident_joint(codes, y_true, k, calibrate)
    cj = np.bincount(codes, minlength=k * k).astype(np.int64).reshape(k, k)
    np.fill_diagonal(cj, np.maximum(np.diag(cj), 1))
    if not calibrate:
        return cj
    counts = np.bincount(y_true, minlength=k).astype(np.float64)
    cal = cj / np.maximum(cj.sum(axis=1, keepdims=True), 1e-100) * counts[:, None]
    cal = cal / max(cal.sum(), 1e-100) * counts.sum()
    return _round_preserving_row_totals(cal)


def _sparse_confident_joint(codes: np.ndarray, y_true: np.ndarray, k: int, calibrate: bool):
    """`confident_joint` for many classes, on the non-zero cells only (same rules, CSR result)."""
    from scipy import sparse

    cells, counts_of = np.unique(codes, return_counts=True)
    r, c = np.divmod(cells, k)
    on_diag = r == c
    diag = np.zeros(k, dtype=np.int64)
    diag[r[on_diag]] = counts_of[on_diag]
    rows = np.concatenate([r[~on_diag], np.arange(k)])
    cols = np.concatenate([c[~on_diag], np.arange(k)])
    vals = np.concatenate([counts_of[~on_diag], np.maximum(diag, 1)]).astype(np.float64)
    order = np.lexsort((cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    if calibrate:
        counts = np.bincount(y_true, minlength=k).astype(np.float64)
        row_sums = np.bincount(rows, weights=vals, minlength=k)
        vals = vals / np.maximum(row_sums[rows], 1e-100) * counts[rows]
        vals = vals / max(vals.sum(), 1e-100) * counts.sum()
        out = np.round(vals)
        target = np.round(np.bincount(rows, weights=vals, minlength=k))
        starts = np.searchsorted(rows, np.arange(k + 1))
        for row in np.flatnonzero(np.abs(np.bincount(rows, weights=out, minlength=k) - target) > 1e-6):
            a, b = starts[row], starts[row + 1]
            m, o = vals[a:b], out[a:b]
            while abs(o.sum() - target[row]) > 1e-6:
                diff = target[row] - o.sum()
                step = 1 if diff > 0 else -1
                changes = min(int(abs(round(diff))), len(m))
                idx = np.argsort(m - o)[::-step][:changes]
                o[idx] += step
            out[a:b] = o
        vals = out
    joint = sparse.csr_array((vals.astype(np.int64), (rows, cols)), shape=(k, k))
    joint.eliminate_zeros()
    return joint


def estimate_noise_rate(joint: np.ndarray) -> float:
    """Estimated fraction of wrong labels: the off-diagonal mass of a calibrated confident joint."""
    total = joint.sum()
    return float(1.0 - joint.diagonal().sum() / total) if total > 0 else 0.0


def find_label_issues(y_true: np.ndarray, probs: np.ndarray, joint: np.ndarray | None = None) -> np.ndarray:
    """Flag likely label errors by confident learning, pruning by noise rate.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        Given labels.
    probs : ndarray of shape (n_samples, n_classes)
        Out-of-sample predicted probabilities.
    joint : ndarray or sparse array of shape (n_classes, n_classes), optional
        A calibrated confident joint (computed when omitted).

    Returns
    -------
    ndarray of bool, shape (n_samples,)
        True for examples whose label is likely wrong.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    k = probs.shape[1]
    if joint is None:
        joint = confident_joint(y_true, probs)
    flagged = np.zeros(len(y_true), dtype=bool)
    by_class = np.argsort(y_true, kind="stable")  # members of class c, ascending: by_class[starts[c]:starts[c + 1]]
    starts = np.searchsorted(y_true[by_class], np.arange(k + 1))
    if hasattr(joint, "tocoo"):  # sparse (many classes)
        coo = joint.tocoo()
        rows, cols, vals = coo.row, coo.col, coo.data
    else:
        rows, cols = np.nonzero(joint)
        vals = joint[rows, cols]
    for i, j, v in zip(rows, cols, vals):
        if i == j or v == 0:
            continue
        members = by_class[starts[i] : starts[i + 1]]
        if len(members) <= 1:
            continue
        n_prune = int(min(v, len(members) - 1))
        margin = probs[members, j] - probs[members, i]
        if n_prune >= len(members):
            top = np.arange(len(members))
        else:
            top = np.argpartition(-margin, n_prune - 1)[:n_prune]
        flagged[members[top]] = True
    flagged &= probs.argmax(axis=1) != y_true
    return flagged


# -- proxy model ---------------------------------------------------------------
class ProxyLDA:
    """Shrinkage linear discriminant analysis: a fast, closed-form proxy classifier.

    Features are standardised; the pooled within-class covariance ``S`` is
    shrunk towards ``trace(S)/d · I`` by ``shrinkage``; scores are
    ``x S⁻¹ mu_kᵀ - ½ mu_k S⁻¹ mu_kᵀ + log prior_k`` and probabilities their softmax.
    """

    def __init__(self, n_classes: int, shrinkage: float = 0.1):
        self.n_classes = n_classes
        self.shrinkage = shrinkage

    def fit(self, x: np.ndarray, y: np.ndarray) -> "ProxyLDA":
        x = np.asarray(x, dtype=np.float64)
        k = self.n_classes
        self.mean_ = x.mean(axis=0)
        sd = x.std(axis=0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        z = (x - self.mean_) / self.scale_
        counts = np.bincount(y, minlength=k).astype(np.float64)
        mu = np.zeros((k, z.shape[1]))
        np.add.at(mu, y, z)
        mu /= np.maximum(counts, 1.0)[:, None]
        zc = z - mu[y]
        d = z.shape[1]
        cov = zc.T @ zc / max(len(y) - int((counts > 0).sum()), 1)
        scale = np.trace(cov) / d if np.trace(cov) > 0 else 1.0
        cov = (1 - self.shrinkage) * cov + (self.shrinkage * scale + 1e-9) * np.eye(d)
        self.coef_ = np.linalg.solve(cov, mu.T)
        self.intercept_ = -0.5 * np.einsum("kd,dk->k", mu, self.coef_) + np.log(np.maximum(counts, 1e-12) / counts.sum())
        self.intercept_[counts == 0] = -1e30
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return np.maximum(z, 1e-12) / np.maximum(z, 1e-12).sum(axis=1, keepdims=True)


def _stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (np.arange(len(idx)) + offset) % n_folds
        offset += len(idx)
    return fold


def cross_fitted_probs(features: np.ndarray, y_true: np.ndarray, n_classes: int, n_folds: int = 5,
                       seed: int = 0, max_fit: int = 10000) -> np.ndarray:
    """Out-of-sample probabilities of a proxy classifier by stratified K-fold cross-fitting.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    y_true : ndarray of shape (n_samples,)
    n_classes : int
    n_folds : int
    seed : int
    max_fit : int
        Each fold's proxy is fitted on at most this many (random) rows.

    Returns
    -------
    ndarray of shape (n_samples, n_classes)
    """
    return fold_proxies(features, y_true, n_classes, n_folds, seed, max_fit)[0]


def fold_proxies(features: np.ndarray, y_true: np.ndarray, n_classes: int, n_folds: int = 5,
                 seed: int = 0, max_fit: int = 10000) -> tuple[np.ndarray, list[ProxyLDA]]:
    """`cross_fitted_probs` and the fold proxies behind them (each fitted without its fold).

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes)
    proxies : list of ProxyLDA, one per fold
    """
    fold = _stratified_folds(y_true, n_folds, seed)
    rng = np.random.default_rng(seed + 1)
    out = np.empty((len(y_true), n_classes))
    proxies = []
    for f in range(n_folds):
        fit = np.flatnonzero(fold != f)
        if len(fit) > max_fit:
            fit = np.sort(rng.choice(fit, size=max_fit, replace=False))
        held = fold == f
        proxies.append(ProxyLDA(n_classes).fit(features[fit], y_true[fit]))
        out[held] = proxies[-1].predict_proba(features[held])
    return out, proxies


def _fit_proxy(features: np.ndarray, y_true: np.ndarray, n_classes: int, seed: int, max_fit: int = 10000) -> ProxyLDA:
    idx = np.arange(len(y_true))
    if len(idx) > max_fit:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=max_fit, replace=False))
    return ProxyLDA(n_classes).fit(features[idx], y_true[idx])


def _kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Cohen's kappa between two predicted-class vectors (agreement beyond chance)."""
    agree = float(np.mean(a == b))
    chance = float(np.dot(np.bincount(a, minlength=n_classes), np.bincount(b, minlength=n_classes))) / len(a) ** 2
    return (agree - chance) / (1.0 - chance) if chance < 1.0 else 0.0


def top_confident_disagreement(y_true: np.ndarray, probs: np.ndarray, fraction: float = 0.1, min_rows: int = 20) -> dict:
    """How often the labels contradict the model's most confident predictions.

    Wrong labels hit the most confident predictions as often as any others;
    the errors of a weak or overconfident model concentrate on its less
    confident ones.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    probs : ndarray of shape (n_samples, n_classes)
    fraction : float
        Share of the rows, most confident first, that is looked at ...
    min_rows : int
        ... but at least this many (all rows when there are fewer).

    Returns
    -------
    dict
        ``n_top``, ``confidence`` (their mean top probability) and
        ``disagreement`` (fraction whose label is not the predicted class).
    """
    conf = probs.max(axis=1)
    n_top = min(len(y_true), max(min_rows, int(len(y_true) * fraction)))
    top = np.argsort(-conf, kind="stable")[:n_top]
    return {
        "n_top": int(n_top),
        "confidence": float(conf[top].mean()),
        "disagreement": float((probs[top].argmax(axis=1) != y_true[top]).mean()),
    }


def confidence_matched_accuracy(conf_ref: np.ndarray, correct_ref: np.ndarray, conf_tst: np.ndarray,
                                n_bins: int = 5) -> tuple[float, float]:
    """Accuracy a split should have if each of its predictions were right as often as reference predictions as confident.

    The reference rows are binned by the model's confidence (quantiles of both
    splits pooled); each bin's reference accuracy is weighted by the share of
    the split's rows in that bin.

    Parameters
    ----------
    conf_ref, correct_ref : ndarray of shape (n_ref,)
        Reference confidences (top probability) and whether the prediction is right.
    conf_tst : ndarray of shape (n_tst,)
        Confidences on the split to predict.
    n_bins : int

    Returns
    -------
    expected : float
    variance : float
        Sampling variance of ``expected`` from the reference rows (binomial per bin).
    """
    edges = np.unique(np.quantile(np.concatenate([conf_ref, conf_tst]), np.linspace(0, 1, n_bins + 1)[1:-1]))
    b_ref, b_tst = np.searchsorted(edges, conf_ref), np.searchsorted(edges, conf_tst)
    n_b = len(edges) + 1
    # a bin without reference rows borrows the nearest bin that has some
    cnt = np.bincount(b_ref, minlength=n_b)
    hits = np.bincount(b_ref, weights=correct_ref.astype(np.float64), minlength=n_b)
    filled = np.flatnonzero(cnt > 0)
    nearest = filled[np.abs(np.arange(n_b)[:, None] - filled[None, :]).argmin(axis=1)]
    acc, cnt = (hits / np.maximum(cnt, 1))[nearest], cnt[nearest]
    w = np.bincount(b_tst, minlength=n_b) / len(conf_tst)
    expected = float(w @ acc)
    variance = float(np.sum(w**2 * np.maximum(acc * (1 - acc), 0.25 / cnt) / cnt))
    return expected, variance


def class_matched_accuracy(y_ref: np.ndarray, correct_ref: np.ndarray, y_tst: np.ndarray, n_classes: int) -> tuple[float, float]:
    """Accuracy a split should have if each class were recalled as often as in the reference split.

    Per-class recall does not depend on the class priors, so this is the
    reference accuracy at the split's class mix. Classes absent from the
    reference take its overall accuracy.

    Returns
    -------
    expected : float
    variance : float
        Sampling variance of ``expected`` from the reference rows.
    """
    cnt = np.bincount(y_ref, minlength=n_classes).astype(np.float64)
    hits = np.bincount(y_ref, weights=correct_ref.astype(np.float64), minlength=n_classes)
    overall = float(correct_ref.mean())
    rec = np.where(cnt > 0, hits / np.maximum(cnt, 1), overall)
    n_eff = np.where(cnt > 0, cnt, len(y_ref))
    w = np.bincount(y_tst, minlength=n_classes) / len(y_tst)
    expected = float(w @ rec)
    variance = float(np.sum(w**2 * np.maximum(rec * (1 - rec), 0.25 / n_eff) / n_eff))
    return expected, variance


def _mix_p(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Chi-square test p-value that two samples of class indices come from the same class mix."""
    table = np.stack([np.bincount(a, minlength=n_classes), np.bincount(b, minlength=n_classes)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table)[1])


def _binom_p(k: int, n: int, p0: float) -> float:
    return float(stats.binom.sf(k - 1, n, p0)) if k > 0 else 1.0


def _proxy_desc(s: SplitData) -> str:
    inputs = "8×8 area-averaged pixels" if s.is_image else "the standardised features"
    return f"shrinkage LDA on {inputs}, 5-fold cross-fitted"


@register
class LabelNoiseCheck(Check):
    """Likely wrong labels in the training or evaluation splits."""

    name = "label-noise"
    codes = ("label-noise",)
    requires = ("train.y|val.y|test.y", "train.x|val.x|test.x|val.probs|test.probs")

    #: Significance level of the binomial / z tests.
    alpha = 0.01
    #: Rate of confirmed flags a healthy model produces (null of the binomial test).
    base_rate = 0.02
    #: Confirmed flagged fraction from which a warning is raised.
    min_rate = 0.05
    #: Agreement (Cohen's kappa) between the model's and the proxy's predictions needed for them to confirm anything.
    min_kappa = 0.4
    #: Training split: agreement (kappa) of the proxy's predictions with the training labels needed to trust its flags.
    min_proxy_kappa = 0.2
    #: Share of the model's errors that the labels its most confident predictions contradict must account for.
    min_error_share = 1 / 3
    #: Confirmed flagged fraction from which the two witnesses need not agree with each other more than with the labels.
    agreement_exempt_rate = 0.10
    #: Confirmed flagged fraction that makes the finding critical.
    critical_rate = 0.10
    #: Predictions-only: flagged fraction, and disagreement among the 10% most confident predictions, needed.
    model_only_min_rate = 0.10
    #: Predictions-only: margin over the top decile's calibrated error rate (1 - mean confidence) in the null.
    model_only_base_rate = 0.05
    #: Training split: excess of its flagged fraction over the evaluation split's that makes it critical.
    train_critical_excess = 0.15
    #: Smallest split (and examples per class on average) the proxy is cross-fitted on.
    min_proxy_samples = 100
    #: Flagged examples listed in the evidence.
    max_examples = 20
    #: Test split judged against validation: smallest size of either split.
    min_reference_samples = 50
    #: Test accuracy below what validation predicts at the same confidences that makes a warning ...
    min_drop = 0.05
    #: ... and a critical finding (when it is also ``min_error_share`` of the test errors).
    critical_drop = 0.10

    def run(self, ctx: Context) -> list[Finding]:
        self._all_flagged: dict[str, list[dict]] = {}  # split -> every flagged example (`_examples`)
        results = []
        for name in ("test", "val"):
            s = ctx.split(name)
            if s is not None and s.y is not None and (s.probs is not None or s.x is not None):
                r = self._eval_split(ctx, s)
                if r is not None:
                    results.append(r)
        train = ctx.split("train")
        if train is not None and train.y is not None and train.x is not None and self._proxy_ok(ctx, train):
            r = self._train_split(ctx, train)
            if r is not None:
                results.append(r)
        if not results:
            return []
        ctx.add_artifact(self.name, "rates", {r["split"]: r["flagged_rate"] for r in results})
        worst = max(results, key=lambda r: (_SEVERITY_RANK[r["severity"]], r["flagged_rate"]))
        if worst["severity"] is None:
            return []
        splits = [{key: v for key, v in r.items() if key not in ("verified", "confidence")} for r in results]
        evidence = {"splits": splits, "method": "confident learning (Northcutt et al. 2021), pruning by noise rate"}
        title = self._title(worst)
        fix = (
            f"Review the flagged {worst['split']} examples (indices, given and suggested class in the evidence) and relabel or "
            "drop the wrong ones; for training data, train on the cleaned labels, or use a noise-robust loss "
            "(label smoothing, symmetric or generalised cross-entropy, co-teaching) when relabelling is not possible."
        )
        verified, conf = worst.get("verified"), worst["confidence"]
        ctx.add_artifact(self.name, "examples:likely wrong labels", [  # thumbnails in the HTML report
            {"split": worst["split"], "index": e["index"], "caption": f"given {e['given']}, likely {e['suggested']}"}
            for e in worst.get("examples", [])
        ])
        ctx.add_artifact(self.name, "examples_total:likely wrong labels", len(self._all_flagged.get(worst["split"], [])))
        return [Finding("label-noise", worst["severity"], conf, title, evidence, fix, verified, explains=self._explains(worst),
                        examples=self._all_flagged.get(worst["split"], []))]

    @staticmethod
    def _explains(r: dict) -> dict | None:
        """On an evaluation split every flagged example is a model "error" that a right label would undo, of all its errors."""
        if r.get("decided_by") == "validation reference":
            return make_explains("accuracy", r["accuracy_drop_vs_val"], 1.0 - r["accuracy_all"],
                                 "validation accuracy at the same confidence")
        if "accuracy_all" in r:
            return make_explains("accuracy", r["flagged_rate"], 1.0 - r["accuracy_all"], f"a perfect score on the {r['split']} labels")
        v = r.get("verified")
        if v is not None:
            return make_explains("accuracy", v["after"] - v["before"], None, "the proxy trained with the flagged labels")
        return None

    # -- per split -------------------------------------------------------------
    def _proxy_ok(self, ctx: Context, s: SplitData) -> bool:
        n_min = self.threshold(ctx, "min_proxy_samples")
        return s.x is not None and s.n >= max(n_min, 5 * ctx.n_classes) and len(np.unique(s.y)) >= 2

    def _features(self, ctx: Context, s: SplitData) -> np.ndarray:
        return ctx.cached(f"scan:{s.name}:False", lambda: scan_split(s))["features"]

    def _examples(self, ctx, s, flagged, suggested, probs) -> list[dict]:
        """The first ``max_examples`` flagged examples for the evidence, most confidently mislabelled first.

        All of them, in the same order, are kept for the finding's ``examples`` (``--examples-csv``).
        """
        idx = np.flatnonzero(flagged)
        margin = probs[idx, suggested[idx]] - probs[idx, s.y[idx]]
        idx = idx[np.argsort(-margin, kind="stable")]
        names = ctx.class_names
        self._all_flagged[s.name] = [
            flagged_example(s, i, given=names[s.y[i]], suggested=names[suggested[i]], score=probs[i, suggested[i]],
                            note="likely wrong label")
            for i in idx
        ]
        idx = idx[: int(self.threshold(ctx, "max_examples"))]
        return [
            {
                "index": int(i),
                "given": names[s.y[i]],
                "suggested": names[suggested[i]],
                "prob_given": round(float(probs[i, s.y[i]]), 4),
                "prob_suggested": round(float(probs[i, suggested[i]]), 4),
            }
            for i in idx
        ]

    def _validation_reference(self, ctx: Context, s: SplitData) -> dict | None:
        """Test labels judged against validation labels, with the model held fixed.

        Returns None without a labelled validation split with predictions.
        Otherwise: the test accuracy the validation split predicts at the
        test's confidences (`confidence_matched_accuracy`), the observed drop
        below it and its one-sided z-test, and a domain classifier between the
        two splits (the inputs' compact features and the model's
        probabilities, `whylow.checks.shift.domain_classifier`). Wrong test
        labels lower test accuracy at every confidence level while the inputs,
        and so the model's outputs, stay distributed like validation's.
        """
        from whylow.checks.shift import domain_classifier

        val = ctx.split("val")
        if s.name != "test" or val is None or val.y is None or val.probs is None or s.probs is None:
            return None
        n_min = self.threshold(ctx, "min_reference_samples")
        if min(val.n, s.n) < n_min:
            return None
        conf_v, conf_t = val.probs.max(axis=1), s.probs.max(axis=1)
        correct_t = s.probs.argmax(axis=1) == s.y
        n_bins = int(np.clip(min(val.n, s.n) // 25, 2, 5))
        correct_v = val.probs.argmax(axis=1) == val.y
        acc = float(correct_t.mean())
        var_t = max(acc * (1 - acc), 0.25 / s.n) / s.n
        # two predictions of the test accuracy from validation: at the test's confidences, and at its class mix
        # (per-class recall does not move with the class priors; wrong labels lower it in every class); the drop
        # must hold against both
        by_conf = confidence_matched_accuracy(conf_v, correct_v, conf_t, n_bins)
        by_class = class_matched_accuracy(val.y, correct_v, s.y, ctx.n_classes)
        expected, var = min(by_conf, by_class)
        drop = expected - acc
        p_value = max(float(stats.norm.sf((e - acc) / np.sqrt(v + var_t))) for e, v in (by_conf, by_class))
        x_v, x_t = np.log(np.clip(val.probs, 1e-12, 1.0)), np.log(np.clip(s.probs, 1e-12, 1.0))
        if val.x is not None and s.x is not None and val.x.shape[1:] == s.x.shape[1:]:
            x_v = np.hstack([x_v, self._features(ctx, val)])
            x_t = np.hstack([x_t, self._features(ctx, s)])
        dom = domain_classifier(x_v, x_t, seed=ctx.seed, n_folds=3)
        k = ctx.n_classes
        # a different class mix (label shift, a balanced test against imbalanced training data) changes accuracy at a
        # given confidence too; uniform label noise leaves the predicted classes' mix as it was
        mix_p = min(_mix_p(val.y, s.y, k), _mix_p(val.probs.argmax(axis=1), s.probs.argmax(axis=1), k))
        # wrong labels, flipped to another class, leave a right prediction right only by luck (1 / (K - 1))
        floor = (1 - expected) / max(k - 1, 1)
        noise = drop / (expected - floor) if expected > floor else None
        return {
            "expected_accuracy_from_val": round(expected, 4),
            "expected_accuracy_by_confidence": round(by_conf[0], 4),
            "expected_accuracy_by_class": round(by_class[0], 4),
            "accuracy_drop_vs_val": round(drop, 4),
            "val_reference_p_value": p_value,
            "val_reference_noise_rate": None if noise is None else round(float(np.clip(noise, 0, 1)), 4),
            "val_test_domain_auc": round(dom["auc"], 4),
            "val_test_domain_p_value": round(dom["p_value"], 4),
            "val_test_class_mix_p_value": round(mix_p, 4),
            "error_share_vs_val": round(drop / (1 - acc), 4) if acc < 1 else None,
        }

    def _reference_severity(self, ctx: Context, ref: dict) -> str | None:
        """Severity of wrong test labels as the validation split measures them (None: not shown)."""
        alpha = self.threshold(ctx, "alpha")
        drop = ref["accuracy_drop_vs_val"]
        if ref["val_reference_p_value"] >= alpha or drop < self.threshold(ctx, "min_drop"):
            return None
        if min(ref["val_test_domain_p_value"], ref["val_test_class_mix_p_value"]) < alpha:
            # the inputs or the class mix moved: a shift, not (only) the labels
            return "info"
        if drop >= self.threshold(ctx, "critical_drop") and ref["error_share_vs_val"] >= self.threshold(ctx, "min_error_share"):
            return "critical"
        return "warning"

    def _eval_split(self, ctx: Context, s: SplitData) -> dict | None:
        k = ctx.n_classes
        alpha = self.threshold(ctx, "alpha")
        proxy_probs = None
        if self._proxy_ok(ctx, s):
            proxy_probs = cross_fitted_probs(self._features(ctx, s), s.y, k, seed=ctx.seed)
        if s.probs is None:
            if proxy_probs is None:
                return None
            flagged = find_label_issues(s.y, proxy_probs)
            joint = confident_joint(s.y, proxy_probs)
            return {
                "split": s.name,
                "source": f"proxy only ({_proxy_desc(s)} within the split); the model's predictions are missing",
                "n": int(s.n),
                "estimated_noise_rate": round(estimate_noise_rate(joint), 4),
                "n_flagged": int(flagged.sum()),
                "flagged_rate": round(float(flagged.mean()), 4),
                "proxy_accuracy": round(float((proxy_probs.argmax(axis=1) == s.y).mean()), 4),
                "severity": None,
                "confidence": 0.3,
                "examples": self._examples(ctx, s, flagged, proxy_probs.argmax(axis=1), proxy_probs),
            }
        probs = s.probs
        joint = confident_joint(s.y, probs)
        model_flags = find_label_issues(s.y, probs, joint)
        suggested = probs.argmax(axis=1)
        res = {
            "split": s.name,
            "n": int(s.n),
            "estimated_noise_rate": round(estimate_noise_rate(joint), 4),
            "n_flagged_by_model": int(model_flags.sum()),
        }
        if proxy_probs is not None:
            proxy_pred = proxy_probs.argmax(axis=1)
            proxy_flags = find_label_issues(s.y, proxy_probs)
            confirmed = model_flags & proxy_flags & (proxy_pred == suggested)
            rate = float(confirmed.mean())
            p_value = _binom_p(int(confirmed.sum()), s.n, self.threshold(ctx, "base_rate"))
            kappa = _kappa(suggested, proxy_pred, k)
            res.update(
                source=f"model's out-of-sample predictions, confirmed by a proxy ({_proxy_desc(s)} within the {s.name} split)",
                proxy_accuracy=round(float((proxy_pred == s.y).mean()), 4),
                model_proxy_kappa=round(kappa, 4),
                model_proxy_agreement=round(float((proxy_pred == suggested).mean()), 4),
                model_accuracy=round(float((suggested == s.y).mean()), 4),
                n_flagged=int(confirmed.sum()),
                flagged_rate=round(rate, 4),
                p_value=p_value,
            )
            top = top_confident_disagreement(s.y, probs)
            p_top = _binom_p(int(round(top["disagreement"] * top["n_top"])), top["n_top"], self.threshold(ctx, "base_rate"))
            res.update(top_confidence=round(top["confidence"], 4), top_disagreement=round(top["disagreement"], 4),
                       n_top=top["n_top"], top_p_value=p_top)
            # the model's own most confident predictions must contradict the labels too: wrong labels spare no
            # confidence level, a weak model's errors do; their rate there estimates the noise rate, which must
            # account for a real share of the model's errors
            error_rate = float((suggested != s.y).mean())
            res["error_share_of_top_disagreement"] = round(top["disagreement"] / error_rate, 4) if error_rate > 0 else None
            # and with right labels no two classifiers agree with each other more often than the better one agrees
            # with the labels (short of sharing most of their errors); wrong labels make them do so
            agree = proxy_pred == suggested
            better = suggested if error_rate <= float((proxy_pred != s.y).mean()) else proxy_pred
            agreement, label_agreement = float(agree.mean()), float((better == s.y).mean())
            # sign test on the examples where the two comparisons differ
            p_agree = _binom_p(int((agree & (better != s.y)).sum()), int((agree != (better == s.y)).sum()), 0.5)
            res["agreement_p_value"] = p_agree
            model_confirms = (p_top < alpha and self.threshold(ctx, "min_rate") <= top["disagreement"] < 0.5
                              and top["disagreement"] >= self.threshold(ctx, "min_error_share") * error_rate
                              and (rate >= self.threshold(ctx, "agreement_exempt_rate")
                                   or (agreement > label_agreement and p_agree < alpha)))
            severity = None
            if kappa < self.threshold(ctx, "min_kappa"):
                res["note"] = (
                    f"the model and the proxy agree little beyond chance (kappa {kappa:.2f}): their shared "
                    "disagreement with the labels is not evidence of wrong labels"
                )
            elif rate >= self.threshold(ctx, "min_rate"):
                severity = "info"
                if p_value < alpha and model_confirms:
                    severity = "critical" if rate >= self.threshold(ctx, "critical_rate") else "warning"
                elif p_value < alpha:
                    res["note"] = (
                        f"not confirmed by the model: its {top['n_top']} most confident predictions disagree with "
                        f"{top['disagreement']:.0%} of their labels (error rate {error_rate:.0%}), and it agrees with the proxy on "
                        f"{agreement:.0%} of the examples against {label_agreement:.0%} with the labels: the flagged examples "
                        "are ones both classifiers find hard, not wrong labels"
                    )
            conf = min(0.97, 1.0 - p_value) * min(1.0, rate / self.threshold(ctx, "min_rate"))
            flagged = confirmed
        else:
            rate = float(model_flags.mean())
            # label errors do not spare the model's most confident predictions; a weak or
            # overconfident model's errors do: test the disagreement rate of the top decile
            # against what its confidence allows (calibrated errors plus a margin)
            top = top_confident_disagreement(s.y, probs, min_rows=1)
            c_top, d_top = top["confidence"], top["disagreement"]
            null = min(1.0 - c_top + self.threshold(ctx, "model_only_base_rate"), 1.0)
            p_value = _binom_p(int(round(d_top * top["n_top"])), top["n_top"], null)
            res.update(
                source="model's out-of-sample predictions only (no inputs x to confirm with a proxy)",
                n_flagged=int(model_flags.sum()),
                flagged_rate=round(rate, 4),
                top_decile_confidence=round(c_top, 4),
                top_decile_disagreement=round(d_top, 4),
                p_value=p_value,
            )
            severity = None
            if d_top >= 0.5:
                res["note"] = "most of the model's most confident predictions contradict the labels: the labels carry no signal for this model (no-signal), which is not label noise"
            elif rate >= self.threshold(ctx, "model_only_min_rate"):
                severity = "info"
                if p_value < alpha and d_top >= self.threshold(ctx, "model_only_min_rate"):
                    severity = "warning"
            conf = 0.7 * min(1.0, 1.0 - p_value)
            flagged = model_flags
        ref = self._validation_reference(ctx, s)
        if ref is not None:
            res.update(ref)
            ref_severity = self._reference_severity(ctx, ref)
            if _SEVERITY_RANK[ref_severity] > _SEVERITY_RANK[severity]:
                # the model's own flags are the examples; the drop below validation is the measured effect
                severity, flagged = ref_severity, model_flags
                res.update(decided_by="validation reference", n_flagged=int(model_flags.sum()),
                           flagged_rate=round(float(model_flags.mean()), 4))
                conf = min(0.97, 1.0 - ref["val_reference_p_value"]) * min(1.0, ref["accuracy_drop_vs_val"] / self.threshold(ctx, "min_drop"))
        res["severity"] = severity
        res["confidence"] = float(conf)
        res["examples"] = self._examples(ctx, s, flagged, suggested, probs)
        correct = suggested == s.y
        res["accuracy_all"] = round(float(correct.mean()), 4)
        if (~flagged).any():
            res["accuracy_without_flagged"] = round(float(correct[~flagged].mean()), 4)
            res["verified"] = {
                "metric": "accuracy",
                "before": res["accuracy_all"],
                "after": res["accuracy_without_flagged"],
                "note": f"model accuracy on the {s.name} split with vs without the flagged examples (the measured effect of excluding them)",
            }
        return res

    def _train_split(self, ctx: Context, train: SplitData) -> dict | None:
        k = ctx.n_classes
        feats = self._features(ctx, train)
        probs, proxies = fold_proxies(feats, train.y, k, seed=ctx.seed)
        joint = confident_joint(train.y, probs)
        flagged = find_label_issues(train.y, probs, joint)
        rate = float(flagged.mean())
        res = {
            "split": "train",
            "source": f"proxy ({_proxy_desc(train)} on train); the model's own training predictions are in-sample and not used",
            "n": int(train.n),
            "proxy_accuracy": round(float((probs.argmax(axis=1) == train.y).mean()), 4),
            "estimated_noise_rate": round(estimate_noise_rate(joint), 4),
            "n_flagged": int(flagged.sum()),
            "flagged_rate": round(rate, 4),
            "severity": None,
            "confidence": 0.4,
            "examples": self._examples(ctx, train, flagged, probs.argmax(axis=1), probs),
        }
        ref = next(
            (s for s in (ctx.split("test"), ctx.split("val")) if s is not None and s.y is not None and s.x is not None
             and s.x.shape[1:] == train.x.shape[1:] and s.layout == train.layout),
            None,
        )
        if ref is None:
            res["note"] = "no labelled evaluation split with inputs to compare the proxy's flag rate with; reported as evidence only"
            return res
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref_feats = self._features(ctx, ref)
            # like with like: the same fold proxies that scored train (each fitted on 4/5 of it) score the comparison
            # split; a proxy fitted on all of train would be stronger there and make train look noisier than it is
            ref_rate = float(np.mean([find_label_issues(ref.y, m.predict_proba(ref_feats)).mean() for m in proxies]))
            proxy = _fit_proxy(feats, train.y, k, ctx.seed)
            ref_probs = proxy.predict_proba(ref_feats)
        excess = rate - ref_rate
        n1, n0 = train.n, ref.n
        pooled = (flagged.sum() + ref_rate * n0) / (n1 + n0)
        se = np.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n1 + 1 / n0))
        p_value = float(stats.norm.sf(excess / se))
        res.update(
            comparison_split=ref.name,
            comparison_flagged_rate=round(ref_rate, 4),
            excess_rate=round(excess, 4),
            p_value=p_value,
        )
        proxy_kappa = _kappa(probs.argmax(axis=1), train.y, k)
        res["proxy_label_kappa"] = round(proxy_kappa, 4)
        if proxy_kappa < self.threshold(ctx, "min_proxy_kappa"):
            res["note"] = f"the proxy barely predicts the training labels (kappa {proxy_kappa:.2f}); its flags are not evidence"
        elif p_value < self.threshold(ctx, "alpha") and excess >= self.threshold(ctx, "min_rate"):
            res["severity"] = "critical" if excess >= self.threshold(ctx, "train_critical_excess") else "warning"
            res["confidence"] = float(min(0.9, 1.0 - p_value) * min(1.0, excess / self.threshold(ctx, "min_rate")))
            # verification: the proxy re-fitted without the flagged training examples, scored on the evaluation split
            keep = ~flagged
            cleaned = _fit_proxy(feats[keep], train.y[keep], k, ctx.seed)
            before = float((ref_probs.argmax(axis=1) == ref.y).mean())
            after = float((cleaned.predict_proba(ref_feats).argmax(axis=1) == ref.y).mean())
            res["verified"] = {
                "metric": "accuracy",
                "before": round(before, 4),
                "after": round(after, 4),
                "note": f"proxy ({_proxy_desc(train).split(',')[0]}) trained with vs without the flagged training examples, scored on the {ref.name} split",
            }
            if after < before:  # the intervention refutes it: dropping the flagged labels made the proxy worse
                res["severity"] = "info"
                res["note"] = (f"training the proxy without the flagged examples lowers its {ref.name} accuracy "
                               f"({before:.3f} to {after:.3f}): they are hard examples, not wrong labels")
        return res

    @staticmethod
    def _title(r: dict) -> str:
        est = r.get("estimated_noise_rate")
        text = f"About {r['flagged_rate']:.0%} of {r['split']} labels look wrong ({r['n_flagged']} of {r['n']} flagged"
        if r["split"] == "train" and "comparison_flagged_rate" in r:
            text += f"; {r['comparison_flagged_rate']:.0%} on {r['comparison_split']} by the same proxy"
        elif est is not None:
            text += f"; confident-learning noise estimate {est:.0%}"
        text += ")"
        if "accuracy_without_flagged" in r:
            text += f"; accuracy {r['accuracy_all']:.3f} with them vs {r['accuracy_without_flagged']:.3f} without"
        if r.get("decided_by") == "validation reference":
            text += (f"; the same model scores {r['expected_accuracy_from_val']:.3f} on validation labels at the same "
                     "confidence and class mix")
        return text
