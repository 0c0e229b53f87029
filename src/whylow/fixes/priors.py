"""Prior correction and logit adjustment: fixes for label shift and class imbalance.

Both fixes re-weight a classifier's probabilities class by class; neither
needs the model again.

Prior correction (label shift)
------------------------------
A classifier trained on data with class priors ``pi`` estimates
``p_s(y | x) ∝ p(x | y) pi_y``. If the deployment priors are ``q`` and the
class-conditional ``p(x | y)`` is unchanged (the label-shift assumption),
Bayes' rule gives the deployment posterior::

    p_t(y = k | x) ∝ p_s(y = k | x) · q_k / pi_k            (adjust_priors)

``q`` is unknown without deployment labels; two estimators are provided:

* `em_priors` — the EM algorithm of Saerens, Latinne & Decaestecker (2002,
  "Adjusting the outputs of a classifier to new a priori probabilities").
  E-step: adjust every row with the current ``q``; M-step: ``q`` ← the mean
  adjusted row. It converges to the maximum-likelihood priors of the
  unlabelled data under the model, assuming the model is calibrated.
* `bbse_priors` — black-box shift estimation (Lipton, Wang & Smola 2018).
  With ``C[i, j] = P_val(ŷ = i, y = j)`` from labelled validation data and
  ``mu_i = P_test(ŷ = i)`` from unlabelled test predictions, label shift
  implies ``mu = C w`` with ``w_j = q_j / pi_val_j``; solve for ``w`` (least
  squares, clipped at 0) and set ``q = w · pi_val`` normalised. It needs
  only that ``C`` is invertible, not calibration.

Logit adjustment (class imbalance)
----------------------------------
Post-hoc logit adjustment (Menon et al. 2021, "Long-tail learning via logit
adjustment") subtracts ``tau · log pi_k`` from the logits, i.e.
``p'_k ∝ p_k / pi_k^tau``. With ``tau = 1`` it is the prior correction to a
uniform target, which maximises balanced accuracy for a calibrated model;
`fit_tau` picks ``tau`` on held-out data. `class_weights` gives the
training-time alternative: loss weights per class.
"""

from __future__ import annotations

import numpy as np

from whylow.errors import InvalidInputError

__all__ = [
    "adjust_priors",
    "bbse_priors",
    "class_weights",
    "em_priors",
    "fit_tau",
    "logit_adjust",
    "smoothed_priors",
]

#: Floor on priors before division, so a class never seen in training cannot produce inf.
_PRIOR_FLOOR = 1e-6


def _check_priors(priors, n_classes: int, name: str) -> np.ndarray:
    """Validate a prior vector and return it as float64 summing to one."""
    p = np.asarray(priors, dtype=np.float64)
    if p.shape != (n_classes,) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise InvalidInputError(
            f"{name} must be {n_classes} finite non-negative numbers (one per class) with a positive sum, "
            f"got an array of shape {p.shape}; pass class counts or frequencies."
        )
    return p / p.sum()


def _check_probs(probs, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] == 0:
        raise InvalidInputError(f"{name} must have shape (n_samples, n_classes) with n_classes >= 2, got {p.shape}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise InvalidInputError(f"{name} must hold finite non-negative probabilities; found NaN, inf or negative values.")
    return p


def _renormalise(p: np.ndarray) -> np.ndarray:
    s = p.sum(axis=1, keepdims=True)
    s[s <= 0] = 1.0
    return p / s


def smoothed_priors(y_true: np.ndarray, n_classes: int, alpha: float = 1.0) -> np.ndarray:
    """Class frequencies with add-``alpha`` (Laplace) smoothing, so no class gets prior 0.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    n_classes : int
    alpha : float
        Pseudo-count added to every class.

    Returns
    -------
    ndarray of shape (n_classes,)

    Examples
    --------
    >>> smoothed_priors(np.array([0, 0, 1]), 3, alpha=1.0)
    array([0.5       , 0.33333333, 0.16666667])
    """
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=n_classes).astype(np.float64)
    return (counts + alpha) / (counts.sum() + alpha * n_classes)


def adjust_priors(probs: np.ndarray, source_priors, target_priors) -> np.ndarray:
    """Re-weight probabilities from training priors to deployment priors.

    ``p'_k ∝ p_k · target_k / source_k`` (Saerens et al. 2002), row-normalised.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities of a model trained under ``source_priors``.
    source_priors : array-like of shape (n_classes,)
        Class priors (or counts) of the training data.
    target_priors : array-like of shape (n_classes,)
        Class priors (or counts) of the data the predictions are for.

    Returns
    -------
    ndarray of shape (n_samples, n_classes)

    Examples
    --------
    >>> adjust_priors(np.array([[0.5, 0.5]]), [0.5, 0.5], [0.9, 0.1])
    array([[0.9, 0.1]])
    """
    p = _check_probs(probs)
    k = p.shape[1]
    src = np.maximum(_check_priors(source_priors, k, "source_priors"), _PRIOR_FLOOR)
    tgt = _check_priors(target_priors, k, "target_priors")
    return _renormalise(p * (tgt / src))


def logit_adjust(probs: np.ndarray, priors, tau: float = 1.0) -> np.ndarray:
    """Post-hoc logit adjustment: subtract ``tau · log(prior)`` from the logits.

    Equivalent to ``p'_k ∝ p_k / prior_k ** tau`` (Menon et al. 2021).

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
    priors : array-like of shape (n_classes,)
        Training class priors (or counts).
    tau : float
        Strength; 1 targets balanced accuracy, 0 leaves ``probs`` unchanged.

    Returns
    -------
    ndarray of shape (n_samples, n_classes)

    Examples
    --------
    >>> logit_adjust(np.array([[0.8, 0.2]]), [0.8, 0.2], tau=1.0)
    array([[0.5, 0.5]])
    """
    p = _check_probs(probs)
    pri = np.maximum(_check_priors(priors, p.shape[1], "priors"), _PRIOR_FLOOR)
    if not np.isfinite(tau):
        raise InvalidInputError(f"tau must be a finite number, got {tau!r}.")
    return _renormalise(p * pri ** (-float(tau)))


def _balanced_accuracy(y_true: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    support = np.bincount(y_true, minlength=n_classes)
    tp = np.bincount(y_true[pred == y_true], minlength=n_classes)
    present = support > 0
    return float(np.mean(tp[present] / support[present]))


def fit_tau(y_true: np.ndarray, probs: np.ndarray, priors, grid=None) -> tuple[float, float]:
    """Choose the logit-adjustment strength that maximises balanced accuracy on held-out data.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    probs : ndarray of shape (n_samples, n_classes)
    priors : array-like of shape (n_classes,)
        Training class priors (or counts).
    grid : sequence of float, optional
        Candidate values; default 0, 0.25, ..., 2. Ties go to the value closest to 1.

    Returns
    -------
    tau : float
    balanced_accuracy : float
        Balanced accuracy at ``tau`` on the data it was fitted on.
    """
    p = _check_probs(probs)
    y = np.asarray(y_true, dtype=np.int64)
    grid = np.arange(0.0, 2.01, 0.25) if grid is None else np.asarray(grid, dtype=np.float64)
    pri = np.maximum(_check_priors(priors, p.shape[1], "priors"), _PRIOR_FLOOR)
    logp = np.log(np.maximum(p, 1e-300))
    scores = np.array([_balanced_accuracy(y, (logp - t * np.log(pri)).argmax(axis=1), p.shape[1]) for t in grid])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    i = best[np.argmin(np.abs(grid[best] - 1.0))]
    return float(grid[i]), float(scores[i])


def em_priors(
    probs: np.ndarray, source_priors, max_iter: int = 1000, tol: float = 1e-7
) -> tuple[np.ndarray, int]:
    """Estimate the class priors of unlabelled data by EM (Saerens et al. 2002).

    One EM step is two matrix-vector products: with ``v = q / pi``,
    ``r_i = probs_i · v`` and ``q' = v ⊙ (probsᵀ (1 / r)) / n_samples``, so
    no adjusted (n_samples, n_classes) matrix is ever built. Steps are
    accelerated with SQUAREM (Varadhan & Roland 2008), falling back to the
    plain step whenever the extrapolation would lower the likelihood
    ``Σ_i log r_i``, so the estimate is the same maximum-likelihood fixed
    point, reached in far fewer passes over ``probs``.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
        Predicted probabilities on the unlabelled data, from a model trained under ``source_priors``.
    source_priors : array-like of shape (n_classes,)
        Training class priors (or counts).
    max_iter : int
        Maximum number of passes (EM steps) over ``probs``.
    tol : float
        Stop when the priors change by less than ``tol`` (max absolute change),
        or when an accelerated cycle raises the mean log-likelihood by less than 1e-7.

    Returns
    -------
    priors : ndarray of shape (n_classes,)
        Estimated class priors of the unlabelled data.
    n_iter : int
        EM steps used.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.choice(2, size=4000, p=[0.8, 0.2])                  # test priors (0.8, 0.2)
    >>> looks_like_0 = rng.random(4000) < np.where(y == 0, 0.7, 0.3)  # evidence: P(x | y)
    >>> probs = np.where(looks_like_0[:, None], [0.7, 0.3], [0.3, 0.7])  # exact posterior under priors (0.5, 0.5)
    >>> q, _ = em_priors(probs, [0.5, 0.5])
    >>> bool(abs(q[0] - 0.8) < 0.05)
    True
    """
    p = _check_probs(probs)
    n = p.shape[0]
    src = np.maximum(_check_priors(source_priors, p.shape[1], "source_priors"), _PRIOR_FLOOR)

    def step(q: np.ndarray) -> tuple[np.ndarray, float]:
        v = q / src
        r = np.maximum(p @ v, 1e-300)
        q_new = v * (p.T @ (1.0 / r)) / n
        return q_new / q_new.sum(), float(np.log(r).sum())

    def project(q: np.ndarray) -> np.ndarray:
        q = np.clip(q, 1e-12, None)
        return q / q.sum()

    q = src.copy()
    q1, ll = step(q)  # q1 = F(q); ll = log-likelihood at q
    n_iter = 1
    while n_iter < max_iter:
        # stop when the priors stop moving, or when the mean log-likelihood gained less than 1e-7
        # (classes whose prior tends to 0 converge sublinearly without changing the fit)
        if np.max(np.abs(q1 - q)) < tol:
            q = q1
            break
        q2, _ = step(q1)
        n_iter += 1
        r = q1 - q
        v = (q2 - q1) - r
        if not np.any(v):
            q = q2
            break
        alpha = min(-float(np.linalg.norm(r) / np.linalg.norm(v)), -1.0)
        q_acc = project(q - 2 * alpha * r + alpha**2 * v)
        f_acc, ll_acc = step(q_acc)
        f_2, ll_2 = step(q2)
        n_iter += 2
        # keep the extrapolation only if it does not lower the likelihood (the plain EM path never does)
        q_next, f_next, ll_next = (q_acc, f_acc, ll_acc) if ll_acc >= ll_2 else (q2, f_2, ll_2)
        gain = ll_next - ll
        q, q1, ll = q_next, f_next, ll_next
        if gain < 1e-7 * n:
            break
    return q / q.sum(), n_iter


def bbse_priors(
    y_val: np.ndarray, probs_val: np.ndarray, probs_test: np.ndarray
) -> tuple[np.ndarray, float]:
    """Estimate the test class priors by black-box shift estimation (Lipton et al. 2018).

    Parameters
    ----------
    y_val : ndarray of shape (n_val,)
        Labels of held-out data from the training distribution.
    probs_val : ndarray of shape (n_val, n_classes)
        The model's probabilities on that data.
    probs_test : ndarray of shape (n_test, n_classes)
        The model's probabilities on the unlabelled test data.

    Returns
    -------
    priors : ndarray of shape (n_classes,)
        Estimated test class priors.
    condition : float
        Smallest singular value of the joint confusion matrix ``C`` (times
        ``n_classes``); near 0 means ``C`` is close to singular and the
        estimate unreliable.
    """
    pv = _check_probs(probs_val, "probs_val")
    pt = _check_probs(probs_test, "probs_test")
    k = pv.shape[1]
    y = np.asarray(y_val, dtype=np.int64)
    pred_val = pv.argmax(axis=1)
    joint = np.bincount(pred_val * k + y, minlength=k * k).reshape(k, k) / len(y)  # C[i, j] = P(ŷ=i, y=j)
    mu = np.bincount(pt.argmax(axis=1), minlength=k) / len(pt)
    w, *_ = np.linalg.lstsq(joint, mu, rcond=None)
    w = np.clip(w, 0.0, None)
    pi_val = np.bincount(y, minlength=k) / len(y)
    q = w * pi_val
    if q.sum() <= 0:
        q = pi_val.copy()
    sv = np.linalg.svd(joint, compute_uv=False)
    return q / q.sum(), float(sv.min() * k)


def class_weights(counts, scheme: str = "inverse") -> np.ndarray:
    """Loss weights per class that counteract a skewed training set.

    Parameters
    ----------
    counts : array-like of shape (n_classes,)
        Training examples per class.
    scheme : {"inverse", "sqrt_inverse"}
        ``inverse``: ``n / (n_classes · n_k)`` (scikit-learn's "balanced");
        ``sqrt_inverse``: its square root, a milder correction.

    Returns
    -------
    ndarray of shape (n_classes,)
        Mean weight per training example is 1 for ``inverse``. Classes with no
        examples get weight 0 (nothing to weight).

    Examples
    --------
    >>> class_weights([90, 10])
    array([0.55555556, 5.        ])
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or np.any(c < 0) or not np.all(np.isfinite(c)) or c.sum() <= 0:
        raise InvalidInputError(f"counts must be non-negative class counts of shape (n_classes,), got {c!r}.")
    if scheme not in ("inverse", "sqrt_inverse"):
        raise InvalidInputError(f"scheme must be 'inverse' or 'sqrt_inverse', got {scheme!r}.")
    with np.errstate(divide="ignore"):
        w = np.where(c > 0, c.sum() / (len(c) * np.maximum(c, 1e-300)), 0.0)
    return np.sqrt(w) if scheme == "sqrt_inverse" else w
