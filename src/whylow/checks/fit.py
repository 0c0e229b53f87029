"""Fit checks: ``underfitting``, ``overfitting`` and ``no-signal``.

All three compare the model with something that bounds what it *should*
achieve, and report the numbers behind the comparison.

The reference: "what the data allows"
-------------------------------------
A cheap, well-understood model is fitted on the training inputs and scored by
3-fold stratified cross-validation on the training split, so every reference
prediction is out of sample: a multinomial logistic regression (L2, ``C=1``)
on standardised, flattened inputs, images first block-averaged to at most
8×8 pixels per channel, on at most 2,000 training examples (a seeded random
subsample; inputs wider than 1,024 features after pooling are standardised
and randomly projected to 1,024). Cross-validating on *train* (not scoring
on test) keeps the reference blind to shift between the splits, so it
measures only whether the labels are predictable from the inputs. Classes
with fewer than 10 examples in the subsample are left out of it; it is
skipped (and the checks fall back on the model's own numbers) when the
training split has no inputs or fewer than two classes remain.

Statistics
----------
- **underfitting**: on the reference's subsample, the model's *training*
  accuracy (on examples it was fitted on) is compared with the reference's
  *cross-validated* accuracy (on examples it never saw) on the same examples:
  a one-sided exact McNemar test on the discordant pairs (reference right and
  model wrong vs the reverse). A model that fits its training data worse than
  a linear model predicts unseen data underfits. Warning: deficit of at least
  ``warn_deficit`` (10 points) with ``p < alpha`` (0.01); critical: at least
  ``critical_deficit`` (20 points). The history adds whether the training
  loss was still falling at the last epoch (relative drop per epoch over the
  last 3 epochs); without a reference that alone is reported as ``info``.
  The deficit is the cost: accuracy the model leaves on its own training
  data that a linear model gets on unseen data, 10 points being a gap no
  user would accept from a tuned model. ``explains`` states it as part of
  the test shortfall against the reference (reference minus test accuracy).
- **overfitting**: the gaps ``accuracy(train) - accuracy(held-out)`` and
  ``NLL(held-out) - NLL(train)``, held-out being the validation split when it
  is labelled (so a train/test *shift* is not mistaken for overfitting), else
  the test split, each with a percentile bootstrap interval (500 replicates,
  train and held-out resampled independently). A gap alone is not a fault:
  every model fits the examples it was trained on better than others, and
  on a few hundred examples a linear model does too. So the severity comes
  from what the overfitting *costs*, the held-out accuracy or log-loss that
  fixing it would recover, and the rule is: a **warning** needs a cost a
  user would act on, ``min_cost`` (2 accuracy points: more than the one point
  retraining a small network with another seed moves; a retraining with
  early stopping or regularisation is worth scheduling for it) or a
  ``min_log_loss_gain`` (10%) held-out log-loss reduction (where the
  calibration check calls rescaling worth applying), each significant;
  **critical** needs ``critical_gap`` (10 points, interval's lower end at
  least ``critical_gap_low``, 5 points) or ``critical_log_loss_gain`` (20%).
  The costs measured:

  * *below the reference*: held-out accuracy lost to overfitting must be
    both below what the reference reaches on examples it did not see (its
    cross-validated accuracy: held-out accuracy the data demonstrably allow;
    lower bound 1.96 standard errors of the two proportions below) and a
    train/held-out gap beyond the reference's own (its in-sample minus
    cross-validated accuracy, ``reference_gap``: the gap this training-set
    size produces by itself; lower bound from the gap's interval). The cost
    is the smaller of the two, its lower bound the smaller of theirs, which
    must be above 0. A flexible model that fits its training data perfectly
    but generalises as well as the reference has no cost, however large its
    gap (on a few hundred examples ``reference_gap`` is often 10-20
    points); nor has a model whose ordinary gap only looks large because it
    is a little weaker than the reference. Without a reference (no
    training inputs) the gap itself is the cost, a warning from ``warn_gap``
    (8 points, a CNN's ordinary gap on digits is 5-6) with its interval above
    ``warn_gap_low`` (2 points).
  * *early stopping*: from the history, ``val_accuracy`` at the epoch of
    minimum ``val_loss`` minus the final one, when the final weights are not
    already those of the best epoch (the model's validation log-loss is
    compared with both ends of the curve) and the validation size is known;
    its lower bound treats the two accuracies as independent proportions
    (conservative, they share their examples).
  * *memorisation → overconfidence*: when the model memorised its training
    data (training accuracy at least ``memorised_accuracy``, 0.99, the NLL gap's
    interval above 0, and either that gap at least ``nll_gap``, 0.5 nats, or
    the history's validation loss up ``val_rise`` after its minimum while the
    training loss kept falling), the
    held-out log-loss that a temperature, cross-fitted on the held-out split,
    removes (paired test, ``p < alpha``): measured on the test split as the
    calibration check measures it (temperature fitted on validation data),
    or cross-fitted on the held-out split without test labels. That
    overconfidence is then this finding's consequence in the ranking.

  A late rise of ``val_loss`` (``val_rise``, 20%, at least 3 epochs after its
  minimum while the training loss kept falling) or an accuracy gap of
  ``warn_gap`` without such a cost is reported as ``info``: an ordinary
  generalisation gap, or a rise that early stopping would not turn into
  accuracy. ``explains`` is the cost that set the severity: accuracy points
  of the train/held-out gap, or nats of the held-out log-loss.
- **no-signal**: the held-out (test) predictions are tested against three
  input-blind nulls: accuracy and balanced accuracy against a label
  permutation test (499 permutations; the null keeps the model's prediction
  frequencies and the label frequencies, so it is the exact "independent of
  the inputs" baseline), and per-sample NLL against predicting the class
  priors (training priors when train labels are given, else the test
  frequencies) with a one-sided paired t-test. Signal is declared when any
  test has ``p < alpha / 3`` (Bonferroni). The reference, when available, is
  tested the same way on train; if it finds signal the labels *are*
  predictable and no-signal is not reported (the model's failure is then
  underfitting, a learning-rate problem or a shift, diagnosed elsewhere).
  Critical, except when the majority baseline sits at least 20 points above
  uniform guessing (imbalanced data, where accuracy hides the failure): then
  ``misleading-metric`` leads and no-signal is a warning. ``verified``
  compares the model's test log-loss with that of the training priors
  (fitted on train, scored on test) when the priors do better.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from whylow import metrics
from whylow.checks import Check, register
from whylow.context import Context
from whylow.inputs.prepare import SplitData
from whylow.report.finding import SEVERITIES, Finding, make_explains

__all__ = [
    "NoSignalCheck",
    "OverfittingCheck",
    "UnderfittingCheck",
    "bootstrap_mean_diff",
    "fit_evidence",
    "headline_hidden",
    "held_out",
    "loss_still_falling",
    "prior_nll",
    "reference_fit",
    "reference_has_signal",
    "signal_tests",
    "test_accuracy",
    "underfitting_explains",
    "validation_shortfall",
    "wilson_interval",
]

#: Largest training subsample the reference model is fitted on.
REFERENCE_MAX_SAMPLES = 2000
#: Images are block-averaged to at most this many pixels per side for the reference.
REFERENCE_POOL = 8
#: Folds of the reference's cross-validation.
REFERENCE_FOLDS = 3
#: Wider inputs (tabular, or many channels) are randomly projected to this many features for the reference.
REFERENCE_MAX_FEATURES = 1024
#: Minimum examples per class (in the subsample) for the reference to run.
REFERENCE_MIN_PER_CLASS = 10
#: Permutations of the no-signal permutation tests (smallest p-value 1/500, below alpha/3 = 0.0033).
N_PERMUTATIONS = 499
#: Replicates of the overfitting gap bootstrap.
N_BOOT = 500


# --------------------------------------------------------------------------
# small statistics helpers (trusted arrays)
# --------------------------------------------------------------------------


def _nll_rows(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-sample negative log-likelihood, probabilities clipped as in `whylow.metrics.log_loss`."""
    p = probs[np.arange(len(y_true)), y_true].astype(np.float64)
    return -np.log(np.clip(p, metrics.LOG_EPS, 1.0))


def _binom_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``."""
    from scipy.stats import binom

    if n <= 0:
        return 1.0
    return float(binom.sf(k - 1, n, p))


def _paired_t_pvalue(diff: np.ndarray) -> float:
    """One-sided p-value of ``mean(diff) > 0`` (paired t-test)."""
    from scipy.stats import t as t_dist

    n = diff.size
    if n < 2:
        return 1.0
    mean = float(diff.mean())
    sd = float(diff.std(ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return 0.0 if mean > 0 else 1.0
    return float(t_dist.sf(mean / (sd / math.sqrt(n)), n - 1))


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean_diff(a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOT, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a) - mean(b)``, resampling ``a`` and ``b`` independently.

    Parameters
    ----------
    a : ndarray of shape (n_a,)
    b : ndarray of shape (n_b,)
    n_boot : int
    alpha : float
    seed : int

    Returns
    -------
    (low, high) : tuple of float
    """
    rng = np.random.default_rng(seed)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2**21 // max(1, a.size + b.size)))
    for start in range(0, n_boot, chunk):
        c = min(chunk, n_boot - start)
        ma = a[rng.integers(0, a.size, size=(c, a.size))].mean(axis=1)
        mb = b[rng.integers(0, b.size, size=(c, b.size))].mean(axis=1)
        out[start : start + c] = ma - mb
    lo, hi = np.quantile(out, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def prior_nll(ctx: Context) -> float:
    """NLL of predicting the training class priors on the training data (their entropy); ``log(n_classes)`` without train labels."""
    train = ctx.split("train")
    if train is not None and train.y is not None:
        freq = np.bincount(train.y, minlength=ctx.n_classes) / train.n
        freq = freq[freq > 0]
        return float(-(freq * np.log(freq)).sum())
    return float(math.log(ctx.n_classes))


def signal_tests(
    y_true: np.ndarray,
    probs: np.ndarray,
    priors: np.ndarray,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> dict:
    """Is there any signal in ``probs`` about ``y_true`` beyond the class priors?

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    probs : ndarray of shape (n_samples, n_classes)
    priors : ndarray of shape (n_classes,)
        The input-blind prediction the NLL is compared with.
    n_permutations : int
    seed : int

    Returns
    -------
    dict
        ``accuracy``, ``chance_accuracy`` (mean under permutation),
        ``p_accuracy``; ``balanced_accuracy``, ``chance_balanced_accuracy``,
        ``p_balanced_accuracy``; ``log_loss``, ``prior_log_loss``,
        ``p_log_loss`` (one-sided, model better than priors).
    """
    n, k = probs.shape
    pred = probs.argmax(axis=1)
    y = np.asarray(y_true, dtype=np.intp)
    support = np.bincount(y, minlength=k).astype(np.float64)
    present = support > 0
    n_present = int(present.sum())

    def stats(pred_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # pred_rows: (b, n) predicted classes, labels fixed
        correct = pred_rows == y[None, :]
        acc = correct.mean(axis=1)
        b = pred_rows.shape[0]
        keys = (y[None, :] + (np.arange(b) * k)[:, None]).ravel()
        tp = np.bincount(keys, weights=correct.ravel(), minlength=b * k).reshape(b, k)
        recall = np.divide(tp, support[None, :], out=np.zeros_like(tp), where=present[None, :])
        return acc, recall.sum(axis=1) / max(n_present, 1)

    obs_acc, obs_bal = (v[0] for v in stats(pred[None, :]))
    rng = np.random.default_rng(seed)
    acc_null, bal_null = [], []
    chunk = max(1, min(n_permutations, 2**21 // max(n, 1)))
    for start in range(0, n_permutations, chunk):
        c = min(chunk, n_permutations - start)
        perms = rng.permuted(np.broadcast_to(pred, (c, n)), axis=1)
        a, b = stats(perms)
        acc_null.append(a)
        bal_null.append(b)
    acc_null = np.concatenate(acc_null)
    bal_null = np.concatenate(bal_null)
    tol = 1e-12
    p_acc = (1 + int((acc_null >= obs_acc - tol).sum())) / (n_permutations + 1)
    p_bal = (1 + int((bal_null >= obs_bal - tol).sum())) / (n_permutations + 1)
    nll_model = _nll_rows(y, probs)
    pri = np.clip(np.asarray(priors, dtype=np.float64), metrics.LOG_EPS, 1.0)
    nll_prior = -np.log(pri)[y]
    return {
        "n": int(n),
        "accuracy": float(obs_acc),
        "chance_accuracy": float(acc_null.mean()),
        "p_accuracy": float(p_acc),
        "balanced_accuracy": float(obs_bal),
        "chance_balanced_accuracy": float(bal_null.mean()),
        "p_balanced_accuracy": float(p_bal),
        "log_loss": float(nll_model.mean()),
        "prior_log_loss": float(nll_prior.mean()),
        "p_log_loss": _paired_t_pvalue(nll_prior - nll_model),
    }


def _has_signal(tests: dict, alpha: float) -> bool:
    """Any of the three signal tests significant at ``alpha / 3`` (Bonferroni)."""
    return min(tests["p_accuracy"], tests["p_balanced_accuracy"], tests["p_log_loss"]) < alpha / 3


def held_out(ctx: Context) -> SplitData | None:
    """The labelled split that plays "held-out" for fit checks: validation if labelled, else test."""
    for name in ("val", "test"):
        s = ctx.split(name)
        if s is not None and s.y is not None and s.probs is not None:
            return s
    return None


def _round(v, nd=4):
    return None if v is None else round(float(v), nd)


# --------------------------------------------------------------------------
# the reference model
# --------------------------------------------------------------------------


def _pool_images(imgs: np.ndarray, size: int) -> np.ndarray:
    """Block-average N×H×W×C images to at most ``size`` pixels per side; returns (N, features)."""
    n, h, w, c = imgs.shape
    fh, fw = max(1, h // size), max(1, w // size)
    hh, ww = h // fh, w // fw
    x = imgs[:, : hh * fh, : ww * fw, :].astype(np.float32)
    x = x.reshape(n, hh, fh, ww, fw, c).mean(axis=(2, 4))
    return x.reshape(n, -1)


def _reference_features(split: SplitData, idx: np.ndarray, seed: int) -> np.ndarray:
    """Reference features of the rows ``idx``: pooled, flattened images or the tabular columns, shape (len(idx), <= 1024)."""
    if split.is_image:
        x = _pool_images(np.asarray(split.images_nhwc()[idx]), REFERENCE_POOL)
    else:
        x = np.asarray(split.x[idx], dtype=np.float32).reshape(len(idx), -1)
    x = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if x.shape[1] > REFERENCE_MAX_FEATURES:
        # standardise, then a seeded Gaussian random projection (keeps linear structure, bounds the fit's cost)
        x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        proj = np.random.default_rng(seed).normal(size=(x.shape[1], REFERENCE_MAX_FEATURES)) / math.sqrt(REFERENCE_MAX_FEATURES)
        x = x @ proj
    return x


def _compute_reference(ctx: Context) -> dict | None:
    train = ctx.split("train")
    if train is None or train.x is None or train.y is None:
        return None
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    k = ctx.n_classes
    rng = np.random.default_rng(ctx.seed)
    idx = np.arange(train.n)
    if train.n > REFERENCE_MAX_SAMPLES:
        idx = np.sort(rng.choice(train.n, REFERENCE_MAX_SAMPLES, replace=False))
    y = train.y[idx]
    counts = np.bincount(y, minlength=k)
    keep_classes = counts >= REFERENCE_MIN_PER_CLASS
    if keep_classes.sum() < 2:
        return None
    keep = keep_classes[y]
    idx, y = idx[keep], y[keep]
    x = _reference_features(train, idx, ctx.seed)
    probs = np.zeros((len(idx), k))
    in_sample_correct, in_sample_n = 0, 0
    folds = StratifiedKFold(REFERENCE_FOLDS, shuffle=True, random_state=ctx.seed)
    from threadpoolctl import threadpool_limits

    # one BLAS thread: these fits are small, and several BLAS threads on a busy machine are 10-40× slower
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for fit_idx, pred_idx in folds.split(x, y):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
            clf.fit(x[fit_idx], y[fit_idx])
            probs[np.ix_(pred_idx, clf.classes_)] = clf.predict_proba(x[pred_idx])
            in_sample_correct += int((clf.predict(x[fit_idx]) == y[fit_idx]).sum())
            in_sample_n += len(fit_idx)
    probs = np.clip(probs, 1e-12, None)
    probs /= probs.sum(axis=1, keepdims=True)
    priors = np.bincount(y, minlength=k) / len(y)
    tests = signal_tests(y, probs, priors, seed=ctx.seed)
    correct = probs.argmax(axis=1) == y
    return {
        "description": (
            f"logistic regression on standardised inputs"
            f"{' block-averaged to at most 8x8 pixels' if train.is_image else ''}, "
            f"{REFERENCE_FOLDS}-fold cross-validated on {len(idx)} training examples"
        ),
        "idx": idx,
        "y": y,
        "correct": correct,
        "nll": _nll_rows(y, probs),
        "accuracy": float(correct.mean()),
        "in_sample_accuracy": in_sample_correct / max(in_sample_n, 1),
        "log_loss": float(_nll_rows(y, probs).mean()),
        "tests": tests,
    }


def reference_fit(ctx: Context) -> dict | None:
    """The cross-validated reference model's results on the training split (cached per diagnosis).

    Returns
    -------
    dict or None
        ``description``, ``idx`` (training rows used), ``y``, ``correct`` and
        ``nll`` per row, ``accuracy`` and ``log_loss`` (cross-validated),
        ``in_sample_accuracy`` (each fold's model on the rows it was fitted on:
        ``in_sample_accuracy - accuracy`` is the reference's own
        generalisation gap at this training-set size), and ``tests`` (its
        `signal_tests`); None when the training split has no inputs or labels,
        or too few examples per class.
    """
    return ctx.cached("fit:reference", lambda: _compute_reference(ctx))


def reference_has_signal(ctx: Context, alpha: float = 0.01) -> bool | None:
    """Whether the reference finds the training labels predictable from the inputs (None without a reference)."""
    ref = reference_fit(ctx)
    if ref is None:
        return None
    t = ref["tests"]
    lift = max(t["accuracy"] - t["chance_accuracy"], t["balanced_accuracy"] - t["chance_balanced_accuracy"])
    return _has_signal(t, alpha) and lift >= 0.02


# --------------------------------------------------------------------------
# shared fit evidence
# --------------------------------------------------------------------------


def loss_still_falling(loss: list[float] | None, tail: int = 3) -> float | None:
    """Relative drop of the training loss per epoch over the last ``tail`` epochs (None if too short or not finite)."""
    if not loss or len(loss) < tail + 1:
        return None
    arr = np.asarray(loss[-(tail + 1) :], dtype=np.float64)
    if not np.all(np.isfinite(arr)) or arr[-1] <= 0:
        return None
    return float((arr[0] - arr[-1]) / (tail * arr[-1]))


def _compute_fit_evidence(ctx: Context, warn_deficit: float, critical_deficit: float, alpha: float) -> dict | None:
    train = ctx.split("train")
    if train is None or train.y is None or train.probs is None:
        return None
    correct = train.probs.argmax(axis=1) == train.y
    ev: dict = {
        "train_accuracy": float(correct.mean()),
        "train_log_loss": float(_nll_rows(train.y, train.probs).mean()),
        "n_train": int(train.n),
    }
    ho = held_out(ctx)
    if ho is not None:
        ev["held_out_split"] = ho.name
        ev["held_out_accuracy"] = float((ho.probs.argmax(axis=1) == ho.y).mean())
    ref = reference_fit(ctx)
    level = None
    if ref is not None:
        model_correct = correct[ref["idx"]]
        ref_correct = ref["correct"]
        b = int((ref_correct & ~model_correct).sum())
        c = int((model_correct & ~ref_correct).sum())
        deficit = float(ref_correct.mean() - model_correct.mean())
        p = _binom_sf(b, b + c, 0.5)
        ev.update(
            reference=ref["description"],
            reference_accuracy=float(ref["accuracy"]),
            reference_log_loss=float(ref["log_loss"]),
            model_train_accuracy_on_reference_rows=float(model_correct.mean()),
            deficit=deficit,
            discordant_reference_right=b,
            discordant_model_right=c,
            p_value=p,
        )
        if p < alpha and deficit >= critical_deficit:
            level = "critical"
        elif p < alpha and deficit >= warn_deficit:
            level = "warning"
        elif p < alpha and deficit >= warn_deficit / 2:
            level = "info"
    history = ctx.history or {}
    falling = loss_still_falling(history.get("loss"))
    if falling is not None:
        ev["loss_drop_per_epoch_at_end"] = falling
        ev["epochs"] = len(history["loss"])
    ev["level"] = level
    return ev


def fit_evidence(ctx: Context, warn_deficit: float = 0.10, critical_deficit: float = 0.20, alpha: float = 0.01) -> dict | None:
    """How well the model fits its training data compared with the reference (cached per diagnosis).

    Returns
    -------
    dict or None
        ``train_accuracy``, ``train_log_loss``, held-out accuracy, and with a
        reference ``reference_accuracy``, ``deficit`` (reference CV accuracy
        minus the model's training accuracy on the same rows), McNemar
        ``p_value``; ``level`` is ``"critical"``, ``"warning"``, ``"info"`` or
        None by the underfitting thresholds. None without train labels and
        predictions.
    """
    key = f"fit:evidence:{warn_deficit}:{critical_deficit}:{alpha}"
    return ctx.cached(key, lambda: _compute_fit_evidence(ctx, warn_deficit, critical_deficit, alpha))


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------


@register
class UnderfittingCheck(Check):
    """The model does not fit even its training data as well as the data allows."""

    name = "underfitting"
    codes = ("underfitting",)
    requires = ("train.y", "train.probs")
    #: Reference CV accuracy minus model train accuracy for a warning.
    warn_deficit = 0.10
    #: ... and for critical.
    critical_deficit = 0.20
    #: Significance level of the McNemar test.
    alpha = 0.01
    #: Relative training-loss drop per epoch at the end that counts as "still falling".
    still_falling = 0.05
    #: Training accuracy above which there is nothing left to fit (no history-only finding).
    near_perfect = 0.99

    def run(self, ctx: Context) -> list[Finding]:
        ev = fit_evidence(ctx, self.threshold(ctx, "warn_deficit"), self.threshold(ctx, "critical_deficit"), self.threshold(ctx, "alpha"))
        if ev is None:
            return []
        falling = ev.get("loss_drop_per_epoch_at_end")
        is_falling = falling is not None and falling >= self.threshold(ctx, "still_falling")
        level = ev["level"]
        evidence = {k: (_round(v) if isinstance(v, float) else v) for k, v in ev.items() if k != "level"}
        evidence["still_falling"] = bool(is_falling)
        ctx.add_artifact(self.name, "fit", {k: evidence.get(k) for k in ("train_accuracy", "held_out_accuracy", "reference_accuracy")})
        longer = (
            f" The training loss was still falling {falling:.0%} per epoch at the last epoch, so training longer will help."
            if is_falling
            else ""
        )
        if level is None and "reference_accuracy" not in ev and is_falling and ev["train_accuracy"] < self.threshold(ctx, "near_perfect"):
            return [
                Finding(
                    code="underfitting",
                    severity="info",
                    confidence=0.5,
                    title=f"The training loss was still falling {falling:.0%} per epoch when training stopped (training accuracy {ev['train_accuracy']:.2f})",
                    evidence=evidence,
                    fix="Train for more epochs (with early stopping on the validation loss) and check whether the training accuracy keeps rising.",
                    check=self.name,
                )
            ]
        if level is None:
            return []
        ref_acc, train_acc = ev["reference_accuracy"], ev["model_train_accuracy_on_reference_rows"]
        title = (
            f"The model fits only {train_acc:.0%} of its own training data, while a linear model reaches "
            f"{ref_acc:.0%} on training examples it never saw"
        )
        fix = (
            f"Give the model more capacity (wider or deeper layers) or more training (more epochs, a larger learning "
            f"rate if the loss decreases slowly) until its training accuracy clearly exceeds the linear reference "
            f"({ref_acc:.2f}); check that regularisation (weight decay, dropout, label smoothing) is not too strong.{longer}"
        )
        confidence = min(0.99, 1.0 - ev["p_value"]) * min(1.0, 0.5 + ev["deficit"] / (2 * self.threshold(ctx, "warn_deficit")))
        if level == "info":
            title = (
                f"Training accuracy {train_acc:.2f} is {ev['deficit'] * 100:.0f} points below a cross-validated linear "
                f"reference ({ref_acc:.2f}); the model may be slightly under-trained"
            )
            confidence = min(confidence, 0.6)
        return [
            Finding(
                code="underfitting",
                severity=level,
                confidence=confidence,
                title=title,
                evidence=evidence,
                fix=fix,
                check=self.name,
                explains=underfitting_explains(ctx, ev),
            )
        ]


def test_accuracy(ctx: Context) -> float | None:
    """Accuracy of the model on the labelled test split (None without test labels or predictions)."""
    test = ctx.test
    if test.y is None or test.probs is None:
        return None
    return float((test.probs.argmax(axis=1) == test.y).mean())


def validation_shortfall(ctx: Context) -> float | None:
    """Validation minus test accuracy of the model: the test shortfall against data like its training data (None if unknown)."""
    val, acc = ctx.split("val"), test_accuracy(ctx)
    if acc is None or val is None or val.y is None or val.probs is None:
        return None
    return float((val.probs.argmax(axis=1) == val.y).mean()) - acc


def underfitting_explains(ctx: Context, ev: dict) -> dict | None:
    """The accuracy an underfit model loses: its training deficit against the reference, of the test shortfall against it."""
    if "deficit" not in ev:
        return None
    acc = test_accuracy(ctx)
    shortfall = None if acc is None else ev["reference_accuracy"] - acc
    return make_explains("accuracy", ev["deficit"], shortfall, "the reference model (what the data allows)")


@register
class OverfittingCheck(Check):
    """The model fits training data far better than held-out data, at a cost a user would act on."""

    name = "overfitting"
    codes = ("overfitting",)
    requires = ("train.probs|history",)
    #: Accuracy points of a cost worth acting on (a retraining with early stopping or regularisation).
    min_cost = 0.02
    #: Accuracy cost for critical, with its lower bound at least ``critical_gap_low``.
    critical_gap = 0.10
    critical_gap_low = 0.05
    #: Without a reference: the accuracy gap itself is the cost, a warning from ``warn_gap`` with its
    #: 95% interval's lower end above ``warn_gap_low`` (a CNN's ordinary gap on digits is 5-6 points).
    warn_gap = 0.08
    warn_gap_low = 0.02
    #: NLL gap (held-out minus train, nats) that, with its interval above 0, shows memorisation (or the history's val-loss rise).
    nll_gap = 0.5
    #: Training accuracy of a model that memorised its training data.
    memorised_accuracy = 0.99
    #: Relative held-out log-loss reduction by rescaling the scores that is worth acting on (warning) ...
    min_log_loss_gain = 0.10
    #: ... and that makes it critical (the calibration check's thresholds).
    critical_log_loss_gain = 0.20
    #: Significance level of the log-loss test.
    alpha = 0.01
    #: Relative rise of val_loss above its minimum (mean of the last 3 epochs) reported (info).
    val_rise = 0.20
    #: Epochs the minimum must lie before the end.
    min_epochs_after_best = 3
    #: Relative difference within which the model's validation log-loss is the history's final val_loss (final weights).
    same_loss = 0.05

    def run(self, ctx: Context) -> list[Finding]:
        gap = self._gap_evidence(ctx)
        hist = self._history_evidence(ctx)
        if gap is None and hist is None:
            return []
        measured = [c for c in (self._gap_cost(ctx, gap, hist), self._early_stopping_cost(ctx, hist),
                                self._log_loss_cost(ctx, gap, hist)) if c is not None]
        candidates = [c for c in measured if c["severity"] is not None]
        worst = min(candidates, key=lambda c: (SEVERITIES.index(c["severity"]), -c["explains"]["gap"]), default=None)
        evidence = dict(gap or {})
        if hist is not None:
            evidence["history"] = hist
        evidence["costs"] = {c["source"]: {k: v for k, v in c.items() if k not in ("source", "explains", "confidence")} for c in measured}
        if worst is None:
            return self._ordinary(ctx, evidence, gap, hist)
        title, fix = self._words(evidence, hist, worst)
        return [Finding(code="overfitting", severity=worst["severity"], confidence=worst["confidence"], title=title,
                        evidence=evidence, fix=fix, check=self.name, explains=worst["explains"])]

    # -- measurement -------------------------------------------------------------
    def _gap_evidence(self, ctx: Context) -> dict | None:
        """Train vs held-out accuracy and NLL with bootstrap intervals, and the reference's own gap."""
        train, ho = ctx.split("train"), held_out(ctx)
        if train is None or train.y is None or train.probs is None or ho is None:
            return None
        tr_correct = (train.probs.argmax(axis=1) == train.y).astype(np.float64)
        ho_correct = (ho.probs.argmax(axis=1) == ho.y).astype(np.float64)
        tr_nll, ho_nll = _nll_rows(train.y, train.probs), _nll_rows(ho.y, ho.probs)
        acc_ci = bootstrap_mean_diff(tr_correct, ho_correct, seed=ctx.seed)
        nll_ci = bootstrap_mean_diff(ho_nll, tr_nll, seed=ctx.seed + 1)
        ev = {
            "held_out_split": ho.name,
            "n_train": int(train.n),
            "n_held_out": int(ho.n),
            "train_accuracy": _round(tr_correct.mean()),
            "held_out_accuracy": _round(ho_correct.mean()),
            "accuracy_gap": _round(tr_correct.mean() - ho_correct.mean()),
            "accuracy_gap_ci95": [_round(acc_ci[0]), _round(acc_ci[1])],
            "train_log_loss": _round(tr_nll.mean()),
            "held_out_log_loss": _round(ho_nll.mean()),
            "log_loss_gap": _round(ho_nll.mean() - tr_nll.mean()),
            "log_loss_gap_ci95": [_round(nll_ci[0]), _round(nll_ci[1])],
        }
        ref = reference_fit(ctx)
        if ref is not None:
            ev.update(reference=ref["description"], reference_accuracy=_round(ref["accuracy"]),
                      reference_in_sample_accuracy=_round(ref["in_sample_accuracy"]),
                      reference_gap=_round(ref["in_sample_accuracy"] - ref["accuracy"]))
        return ev

    def _history_evidence(self, ctx: Context) -> dict | None:
        """Where val_loss bottomed out, how much it rose, and what val_accuracy did meanwhile."""
        h = ctx.history or {}
        val, loss = h.get("val_loss"), h.get("loss")
        if not val or len(val) < 4:
            return None
        v = np.asarray(val, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            return None
        best = int(np.argmin(v))
        tail = float(v[-3:].mean())
        ctx.add_artifact(self.name, "learning_curves", {k: h[k] for k in ("loss", "val_loss", "accuracy", "val_accuracy") if k in h})
        out = {
            "epochs": len(v),
            "best_epoch": best + 1,
            "val_loss_at_best": _round(v[best]),
            "val_loss_last": _round(v[-1]),
            "val_loss_rise": _round((tail - v[best]) / max(v[best], 1e-12)),
            "epochs_after_best": len(v) - 1 - best,
            "train_loss_fell": False,
        }
        if loss and len(loss) == len(val) and np.all(np.isfinite(loss)):
            out["train_loss_at_best"] = _round(loss[best])
            out["train_loss_last"] = _round(loss[-1])
            out["train_loss_fell"] = bool(loss[-1] < 0.9 * loss[best])
        acc = h.get("val_accuracy")
        if acc and len(acc) == len(val) and np.all(np.isfinite(acc)):
            out["val_accuracy_at_best"] = _round(acc[best])
            out["val_accuracy_last"] = _round(acc[-1])
        val_split = ctx.split("val")
        if val_split is not None and val_split.y is not None and val_split.probs is not None:
            out["n_val"] = int(val_split.n)
            now = float(_nll_rows(val_split.y, val_split.probs).mean())
            # weights restored to the best epoch (Keras EarlyStopping(restore_best_weights=True)): nothing left to gain
            out["weights_restored_to_best"] = bool(out["epochs_after_best"] > 0 and abs(now - v[best]) < abs(now - v[-1]))
            out["val_log_loss_now"] = _round(now)
            # the predictions are those of the last epoch, unrescaled: the history's final val_loss is the model's
            out["final_weights"] = bool(abs(now - v[-1]) <= self.threshold(ctx, "same_loss") * v[-1])
            # early stopping's validation loss: the lowest 3-epoch mean (less optimistic than the single lowest epoch)
            smooth = np.convolve(v, np.ones(3) / 3, mode="valid") if v.size >= 3 else v
            out["val_loss_early_stopping"] = _round(smooth.min())
        return out

    # -- costs: what fixing the overfitting would recover ----------------------------
    def _gap_cost(self, ctx: Context, gap: dict | None, hist: dict | None) -> dict | None:
        """Held-out accuracy below the reference's, by a gap beyond the reference's own (module docstring).

        Without a reference, the gap itself (judged against ``warn_gap``).
        """
        if gap is None:
            return None
        acc_gap = gap["accuracy_gap"]
        if "reference_accuracy" in gap:
            ref = reference_fit(ctx)
            held, n_held = gap["held_out_accuracy"], gap["n_held_out"]
            # below what a linear model reaches on unseen examples of the same training data ...
            below = gap["reference_accuracy"] - held
            below_low = below - 1.96 * math.sqrt(held * (1 - held) / n_held + ref["accuracy"] * (1 - ref["accuracy"]) / len(ref["y"]))
            # ... and by a gap beyond the one that linear model shows itself at this training-set size
            beyond = acc_gap - max(gap["reference_gap"], 0.0)
            beyond_low = gap["accuracy_gap_ci95"][0] - max(gap["reference_gap"], 0.0)
            value, low = min(below, beyond), min(below_low, beyond_low)
            source, warn, warn_low = "below_reference", self.threshold(ctx, "min_cost"), 0.0
            # a model that fits its training data no better than the linear model does, or whose weights early stopping
            # already chose, is a weaker model than the reference, not one that memorised: no cost attributed to overfitting
            attributable = gap["train_accuracy"] >= gap["reference_in_sample_accuracy"] and not (hist or {}).get("weights_restored_to_best")
        else:
            value, low, source = acc_gap, gap["accuracy_gap_ci95"][0], "gap"
            warn, warn_low = self.threshold(ctx, "warn_gap"), self.threshold(ctx, "warn_gap_low")
            attributable = True
        severity = self._accuracy_severity(ctx, value, low, warn, warn_low) if attributable else None
        return {"source": source, "severity": severity, "value": _round(value), "lower_bound": _round(low),
                "confidence": min(0.99, 0.6 + 2 * max(low, 0.0)),
                "explains": make_explains("accuracy", value, acc_gap, "the model's training accuracy")}

    def _early_stopping_cost(self, ctx: Context, hist: dict | None) -> dict | None:
        """Validation accuracy at the lowest validation loss minus the final one (when the weights were not restored)."""
        if hist is None or "val_accuracy_at_best" not in hist or hist.get("weights_restored_to_best"):
            return None
        at_best, last = hist["val_accuracy_at_best"], hist["val_accuracy_last"]
        value = at_best - last
        n = hist.get("n_val")
        if not n:
            return None  # the validation size is unknown: the gain cannot be told from noise
        # conservative: the two accuracies treated as independent proportions (they share their examples)
        se = math.sqrt((at_best * (1 - at_best) + last * (1 - last)) / n)
        low = value - 1.96 * se
        severity = self._accuracy_severity(ctx, value, low, self.threshold(ctx, "min_cost"), 0.0)
        return {"source": "early_stopping", "severity": severity, "value": _round(value), "lower_bound": _round(low),
                "confidence": min(0.95, 0.6 + 2 * max(low, 0.0)),
                "explains": make_explains("accuracy", value, None, "validation accuracy at the best epoch")}

    def _log_loss_cost(self, ctx: Context, gap: dict | None, hist: dict | None) -> dict | None:
        """Held-out log-loss a rescaling of the scores recovers, when the model memorised its training data."""
        if gap is None or gap["log_loss_gap_ci95"][0] <= 0:
            return None
        far_surer = gap["log_loss_gap"] >= self.threshold(ctx, "nll_gap")
        memorised = gap["train_accuracy"] >= self.threshold(ctx, "memorised_accuracy") and (far_surer or self._val_loss_rose(ctx, hist))
        past_best = self._trained_past_best(ctx, hist)
        if past_best:
            return self._past_best_cost(ctx, hist)
        if not memorised or self._rescaled_after_training(gap, hist):
            return None
        res = _held_out_rescaling(ctx, held_out(ctx))
        if res is None:
            return None
        rel = res["relative_gain"]
        severity = None
        if res["temperature"] > 1.0 and res["p_value"] < self.threshold(ctx, "alpha"):
            if rel >= self.threshold(ctx, "critical_log_loss_gain"):
                severity = "critical"
            elif rel >= self.threshold(ctx, "min_log_loss_gain"):
                severity = "warning"
        return {"source": "memorised_overconfidence", "severity": severity, "relative_gain": _round(rel), "trained_past_best": past_best,
                "log_loss_before": _round(res["before"]), "log_loss_after": _round(res["after"]),
                "temperature": _round(res["temperature"], 3), "p_value": res["p_value"],
                "confidence": min(0.95, (1.0 - res["p_value"]) * (0.6 + 0.4 * min(1.0, rel / self.threshold(ctx, "critical_log_loss_gain")))),
                "measured_on": res["split"],
                "explains": make_explains("log_loss", res["before"] - res["after"], res["before"], f"the {res['split']} log-loss")}

    @staticmethod
    def _rescaled_after_training(gap: dict, hist: dict | None, ratio: float = 1.25) -> bool:
        """The deployed scores are not those training left: their validation log-loss is well above the history's last ``val_loss``.

        The scores were then rescaled (sharpened) after training, and their overconfidence is the calibration
        check's finding, not a consequence of memorising (a trained model's own scores match its history within a few %).
        """
        if hist is None or gap.get("held_out_split") != "val" or not hist.get("val_loss_last"):
            return False
        return gap["held_out_log_loss"] > ratio * hist["val_loss_last"]

    def _past_best_cost(self, ctx: Context, hist: dict) -> dict:
        """Validation log-loss that stopping at the best epoch would have kept, when the excess is overconfidence.

        The final weights' validation log-loss against the lowest 3-epoch mean of the history's ``val_loss``; the
        excess counts only when the scores are overconfident on the validation split (a temperature above 1 fitted
        there), the mechanism by which training on memorised examples raises the held-out loss.
        """
        from whylow.fixes.temperature import TemperatureScaler

        val = ctx.split("val")
        now, stopped = hist["val_log_loss_now"], hist["val_loss_early_stopping"]
        rel = 1.0 - stopped / now if now > 0 else 0.0
        scaler = TemperatureScaler(seed=ctx.seed).fit(val.y, probs=val.probs)
        temperature = float(scaler.temperature_)
        severity = None
        if temperature > 1.0:
            if rel >= self.threshold(ctx, "critical_log_loss_gain"):
                severity = "critical"
            elif rel >= self.threshold(ctx, "min_log_loss_gain"):
                severity = "warning"
        return {"source": "memorised_overconfidence", "severity": severity, "relative_gain": _round(rel), "trained_past_best": True,
                "log_loss_before": _round(now), "log_loss_after": _round(stopped), "temperature": _round(temperature, 3),
                "measured_on": "val", "method": "early stopping (history's val_loss) vs the final weights",
                "confidence": min(0.95, 0.6 + 0.35 * min(1.0, rel / self.threshold(ctx, "critical_log_loss_gain"))),
                "explains": make_explains("log_loss", now - stopped, now, "the val log-loss")}

    def _trained_past_best(self, ctx: Context, hist: dict | None) -> bool:
        """The model is the last epoch of a run whose validation loss rose after its minimum while the training loss fell."""
        ho = held_out(ctx)
        return bool(self._val_loss_rose(ctx, hist) and hist.get("final_weights") and ho is not None and ho.name == "val")

    def _val_loss_rose(self, ctx: Context, hist: dict | None) -> bool:
        """The classic signature: validation loss up ``val_rise`` after its minimum while the training loss kept falling."""
        return bool(hist is not None and hist["val_loss_rise"] >= self.threshold(ctx, "val_rise")
                    and hist["epochs_after_best"] >= self.threshold(ctx, "min_epochs_after_best") and hist["train_loss_fell"])

    def _accuracy_severity(self, ctx: Context, value: float, low: float, warn: float, warn_low: float) -> str | None:
        if value >= self.threshold(ctx, "critical_gap") and low >= self.threshold(ctx, "critical_gap_low"):
            return "critical"
        if value >= warn and low > warn_low:
            return "warning"
        return None

    # -- words ------------------------------------------------------------------------
    def _ordinary(self, ctx: Context, evidence: dict, gap: dict | None, hist: dict | None) -> list[Finding]:
        """No cost worth acting on: an info finding when the gap or the val-loss rise would catch the eye, else nothing."""
        big_gap = gap is not None and gap["accuracy_gap"] >= self.threshold(ctx, "warn_gap") and gap["accuracy_gap_ci95"][0] > self.threshold(ctx, "warn_gap_low")
        rise = self._val_loss_rose(ctx, hist)
        if not (big_gap or rise):
            return []
        parts = []
        if big_gap:
            lead = (f"accuracy {gap['train_accuracy']:.2f} on train vs {gap['held_out_accuracy']:.2f} on {gap['held_out_split']}")
            if "reference_accuracy" in gap:
                parts.append(
                    f"{lead}, against {gap['reference_accuracy']:.2f} for a linear model cross-validated on the same training "
                    f"data (whose own train/held-out gap is {gap['reference_gap']:.2f})"
                )
            else:
                parts.append(lead)
        if rise:
            words = f"validation loss rose {hist['val_loss_rise']:.0%} after epoch {hist['best_epoch']}"
            if hist.get("weights_restored_to_best"):
                words += ", but the final weights are those of that epoch"
            elif "val_accuracy_at_best" in hist:
                words += f" while validation accuracy went from {hist['val_accuracy_at_best']:.2f} to {hist['val_accuracy_last']:.2f}"
            parts.append(words)
        title = "The model fits its training data better than held-out data, at no cost worth acting on: " + "; ".join(parts)
        _, fix = self._words(evidence, hist, {"source": "none"})
        return [Finding(code="overfitting", severity="info", confidence=0.5, title=title, evidence=evidence, fix=fix, check=self.name)]

    @staticmethod
    def _words(ev: dict, hist: dict | None, cost: dict) -> tuple[str, str]:
        source = cost["source"]
        if source == "below_reference":
            title = (
                f"The model generalises worse than the data allow: accuracy {ev['train_accuracy']:.2f} on train but "
                f"{ev['held_out_accuracy']:.2f} on {ev['held_out_split']}, where a linear model cross-validated on the same "
                f"training data reaches {ev['reference_accuracy']:.2f} on examples it did not see (and loses only "
                f"{max(ev['reference_gap'], 0) * 100:.0f} points to them, against {ev['accuracy_gap'] * 100:.0f} here)"
            )
        elif source == "early_stopping":
            title = (
                f"Training went on past its best epoch: validation accuracy fell from {hist['val_accuracy_at_best']:.2f} at epoch "
                f"{hist['best_epoch']} (lowest validation loss) to {hist['val_accuracy_last']:.2f} at the end while the training loss kept falling"
            )
        elif source == "memorised_overconfidence" and cost.get("trained_past_best"):
            title = (
                f"Training went on past its best epoch and left the model overconfident on data it has not seen: validation "
                f"log-loss {hist['val_log_loss_now']:.3g} now vs {hist['val_loss_early_stopping']:.3g} around epoch {hist['best_epoch']} "
                f"(lowest validation loss) while the training loss fell to {ev['train_log_loss']:.2g}; stopping there would have "
                f"cut it by {cost['relative_gain']:.0%}, and the scores are overconfident (a temperature of {cost['temperature']:.2f} fits them)"
            )
        elif source == "memorised_overconfidence":
            title = (
                f"The model memorised its training data (accuracy {ev['train_accuracy']:.2f}, log-loss {ev['train_log_loss']:.2f} on train) "
                f"and is overconfident on data it has not seen (accuracy {ev['held_out_accuracy']:.2f}, log-loss {ev['held_out_log_loss']:.2f} "
                f"on {ev['held_out_split']}): rescaling its scores cuts the {cost['measured_on']} log-loss by {cost['relative_gain']:.0%}"
            )
        else:
            lo, hi = ev.get("accuracy_gap_ci95", [0.0, 0.0])
            title = (
                f"The model fits its training data far better than held-out data: accuracy {ev.get('train_accuracy', 0):.2f} "
                f"on train vs {ev.get('held_out_accuracy', 0):.2f} on {ev.get('held_out_split')} (gap {ev.get('accuracy_gap', 0):.2f}, 95% CI {lo:.2f} to {hi:.2f})"
            )
        steps = []
        if hist is not None and hist["epochs_after_best"] >= 2 and hist["val_loss_rise"] > 0.05 and not hist.get("weights_restored_to_best"):
            steps.append(f"stop at epoch {hist['best_epoch']} (early stopping on val_loss; val_loss {hist['val_loss_at_best']:.3g} there vs {hist['val_loss_last']:.3g} at the end)")
        steps.append("add regularisation (weight decay, dropout, data augmentation)")
        n_train = ev.get("n_train")
        steps.append(f"use more training data{f' (only {n_train} examples)' if n_train and n_train < 2000 else ''} or a smaller model")
        if source == "memorised_overconfidence":
            steps.append(f"until retrained, divide the logits by T={cost['temperature']:.2f} (see the overconfidence finding)")
        return title, "; ".join(s[0].upper() + s[1:] if i == 0 else s for i, s in enumerate(steps)) + "."


def _held_out_rescaling(ctx: Context, split: SplitData, cross_fit_only: bool = False) -> dict | None:
    """Relative held-out NLL gain of temperature scaling (None with too few samples).

    Measured as the calibration check measures it when the test split is
    labelled (the temperature fitted on the validation split, or cross-fitted
    on test, shared through ``ctx.cached("temperature")``), else (or with
    ``cross_fit_only``) two-fold cross-fitted on ``split``.
    """
    from whylow.checks.calibration import CalibrationCheck, _fit_calibration, paired_nll_test
    from whylow.fixes.temperature import TemperatureScaler, cross_fit, to_logits

    test = ctx.test
    if not cross_fit_only and test.y is not None and test.probs is not None and test.n >= CalibrationCheck.min_samples and len(np.unique(test.y)) >= 2:
        max_fit = int(ctx.option("calibration", "max_fit_samples", CalibrationCheck.max_fit_samples))
        cal = ctx.cached("temperature", lambda: _fit_calibration(ctx, max_fit))
        res = paired_nll_test(_nll_rows(test.y, test.probs), _nll_rows(test.y, cal["heldout"]["test"]))
        res.update(temperature=float(cal["scaler"].temperature_), split="test")
        return res
    if split.n < CalibrationCheck.min_samples or len(np.unique(split.y)) < 2:
        return None
    z, kind = to_logits(probs=split.probs, dtype=np.float64)
    make = lambda: TemperatureScaler(seed=ctx.seed)  # noqa: E731
    scaled, halves = cross_fit(make, split.y, z, seed=ctx.seed, kind=kind)
    res = paired_nll_test(_nll_rows(split.y, split.probs), _nll_rows(split.y, scaled))
    res.update(temperature=float(np.exp(np.mean([math.log(h.temperature_) for h in halves]))), split=split.name)
    return res


def headline_hidden(y_true: np.ndarray, n_classes: int, min_lift: float = 0.2) -> tuple[bool, float]:
    """Whether the majority-class baseline sits at least ``min_lift`` above uniform guessing (``1 / n_classes``).

    On such data a model that learned nothing still shows a good-looking
    accuracy, so the headline metric hides the failure.

    Returns
    -------
    (hidden, majority_accuracy) : tuple of bool and float
    """
    counts = np.bincount(y_true, minlength=n_classes)
    majority = float(counts.max() / counts.sum())
    return majority - 1.0 / n_classes >= min_lift, majority


@register
class NoSignalCheck(Check):
    """Held-out predictions are indistinguishable from the prior-only baseline."""

    name = "no-signal"
    codes = ("no-signal",)
    requires = ("test.y", "test.probs")
    #: Family-wise significance level of the three signal tests.
    alpha = 0.01
    #: Majority-baseline lift over uniform guessing above which misleading-metric leads.
    min_baseline_lift = 0.2

    def run(self, ctx: Context) -> list[Finding]:
        test = ctx.test
        alpha = self.threshold(ctx, "alpha")
        train = ctx.split("train")
        if train is not None and train.y is not None:
            priors = np.bincount(train.y, minlength=ctx.n_classes) / train.n
            prior_source = "training class frequencies"
        else:
            priors = np.bincount(test.y, minlength=ctx.n_classes) / test.n
            prior_source = "test class frequencies"
        tests = ctx.cached(f"no-signal:tests:{ctx.seed}", lambda: signal_tests(test.y, test.probs, priors, seed=ctx.seed))
        if _has_signal(tests, alpha):
            return []
        ref_signal = reference_has_signal(ctx, alpha)
        if ref_signal:
            return []  # the inputs do predict the labels; the model's failure is diagnosed by other checks
        ref = reference_fit(ctx)
        evidence = {
            "n_test": tests["n"],
            "accuracy": _round(tests["accuracy"]),
            "chance_accuracy": _round(tests["chance_accuracy"]),
            "p_accuracy": _round(tests["p_accuracy"], 5),
            "balanced_accuracy": _round(tests["balanced_accuracy"]),
            "chance_balanced_accuracy": _round(tests["chance_balanced_accuracy"]),
            "p_balanced_accuracy": _round(tests["p_balanced_accuracy"], 5),
            "log_loss": _round(tests["log_loss"]),
            "prior_log_loss": _round(tests["prior_log_loss"]),
            "p_log_loss": _round(tests["p_log_loss"], 5),
            "priors_from": prior_source,
            "tests": "label permutation (accuracy, balanced accuracy), paired t-test of per-sample NLL vs priors; Bonferroni",
        }
        if ref is not None:
            t = ref["tests"]
            evidence["reference"] = ref["description"]
            evidence["reference_accuracy"] = _round(t["accuracy"])
            evidence["reference_chance_accuracy"] = _round(t["chance_accuracy"])
            evidence["reference_log_loss"] = _round(t["log_loss"])
            evidence["reference_prior_log_loss"] = _round(t["prior_log_loss"])
        if train is not None and train.y is not None and train.probs is not None:
            evidence["train_accuracy"] = _round((train.probs.argmax(axis=1) == train.y).mean())
        hidden, majority = headline_hidden(test.y, ctx.n_classes, self.threshold(ctx, "min_baseline_lift"))
        evidence["majority_accuracy"] = _round(majority)
        severity = "warning" if hidden else "critical"
        # confidence: how tightly the data rule out a useful signal (upper end of the accuracy lift)
        se = math.sqrt(max(tests["accuracy"] * (1 - tests["accuracy"]), 1e-4) / tests["n"])
        upper_lift = tests["accuracy"] - tests["chance_accuracy"] + 1.96 * se
        confidence = float(np.clip(0.95 - 2.0 * max(upper_lift - 0.05, 0.0), 0.5, 0.95))
        if ref is not None:
            confidence = min(0.99, confidence + 0.04)
        verified = None
        if train is not None and train.y is not None and tests["prior_log_loss"] < tests["log_loss"]:
            verified = {"metric": "log_loss", "before": round(tests["log_loss"], 4), "after": round(tests["prior_log_loss"], 4)}
        ref_words = ""
        if ref is not None:
            ref_words = f"; a linear model cross-validated on the training data finds none either ({ref['tests']['accuracy']:.2f} vs {ref['tests']['chance_accuracy']:.2f} by chance)"
        title = (
            f"The predictions carry no information about the labels: test accuracy {tests['accuracy']:.2f} vs "
            f"{tests['chance_accuracy']:.2f} by chance, log-loss {tests['log_loss']:.3f} vs {tests['prior_log_loss']:.3f} "
            f"predicting the class frequencies{ref_words}"
        )
        fix = (
            "Check that the labels belong to their inputs (shuffled or mis-joined label files, a wrong label column), "
            "that the inputs contain what the labels describe, and that the model was trained on the right targets; "
            "no tuning of the model can help until the labels are predictable."
        )
        if verified is not None:
            fix += (
                f" Until then, predicting the training class frequencies (log-loss {tests['prior_log_loss']:.3f}) "
                f"beats this model ({tests['log_loss']:.3f})."
            )
        return [Finding(code="no-signal", severity=severity, confidence=confidence, title=title, evidence=evidence, fix=fix, verified=verified, check=self.name)]
