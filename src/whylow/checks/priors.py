"""Class-prior checks: ``label-shift`` and ``class-imbalance``.

Both look at class priors, and both are fixed by re-weighting the outputs
class by class (`whylow.fixes.priors`), so they are told apart explicitly.

label-shift
-----------
The training priors ``pi`` come from the training labels (the validation
labels when there is no training split): that is the prior a model trained
on that data has built into its outputs.

*With test labels*, the test histogram ``q`` is compared with ``pi`` by a
chi-square test of homogeneity on the 2×K contingency table of counts, and
the effect size is the total-variation distance ``TV = ½ Σ_k |pi_k - q_k|``
(the largest difference in probability any set of classes gets). A warning
needs ``p < alpha`` **and** ``TV >= min_tv``. The fix (prior correction,
``p'_k ∝ p_k q_k / pi_k``) is verified by two-fold cross-fitting on the test
split: priors estimated (add-one smoothed) on one stratified half, applied to
the other half, and the two halves' adjusted predictions scored together
against the unadjusted ones (accuracy and log loss, each with a 99% normal
interval of the mean per-sample gain). It is critical when the gain reaches
``critical_accuracy_gain`` or ``critical_log_loss_gain`` (relative) and its
interval excludes 0. The label-free EM
estimate of Saerens et al. is also scored (EM never reads the labels, so
scoring it on all test labels is out-of-sample for the fit).

*Without test labels*, the priors are estimated from the predictions: BBSE
(Lipton et al. 2018) with the validation confusion matrix when a labelled,
predicted validation split exists and its confusion matrix is well
conditioned, EM otherwise. Significance is the chi-square test of the
predicted-class histograms (reference split vs test), which under pure
label shift detects the shift without labels (BBSD); the effect size is the
TV distance between the estimated test priors and ``pi``. Nothing can be
re-measured without labels, so the finding is at most a warning. A covariate
shift moves the predicted-class histogram too, so the label-shift
explanation is tested on the inputs: under label shift ``p(x | y)`` is
unchanged, hence the reference split's inputs re-weighted by
``q_y / pi_ref_y`` must match the test inputs. The means of the top 10
principal components of the compact features (8×8 area averages) are
compared (sum of squared z statistics, chi-square with 10 degrees of
freedom; effect size the RMS standardised mean difference). When a
significant difference of at least ``max_residual_smd`` remains after
re-weighting, the finding is only informational and points to
covariate-shift.

Telling it apart from class-imbalance: when the training priors are skewed
(max/min count ratio ``>= imbalance_ratio``) and the test priors are much
closer to uniform than the training priors (``TV(q, uniform) <= ½ TV(pi,
uniform)``), the prior difference *is* the training imbalance meeting a
balanced test set. That is reported by class-imbalance; label-shift then
only adds an info finding pointing to it.

class-imbalance
---------------
Training class counts ``n_k`` give the imbalance ratio ``max n_k / min n_k``;
the training set counts as imbalanced when that ratio reaches
``imbalance_ratio`` and a chi-square goodness-of-fit test rejects equal
class frequencies (``p < alpha``: with many small classes, max/min alone is
mostly sampling noise).
Minority classes are those with ``n_k <= max n / imbalance_ratio``. On the
labelled test split, the bias a skewed training set builds in is tested
directly: minority examples predicted as a majority class are counted
against majority examples predicted as a minority class, and a one-sided
exact binomial (sign) test asks whether errors flow towards the majority
classes more often (McNemar-style; it has far more power on a small test
set than comparing recalls, since a balanced model errs both ways). The
effect size is the recall gap between the pooled majority and minority
classes (the one-sided two-proportion z-test of that gap is reported too).
Spearman's correlation of per-class recall with ``log n_k`` and the mean
true-class probability per class are reported as evidence. Under-prediction
is blamed on the imbalance only when the model still *ranks* minority
examples above the others: the mean one-vs-rest AUROC of the minority
classes' probabilities must reach ``min_minority_auroc`` with a significant
Mann-Whitney test (Stouffer-combined over minority classes). Without that
the outputs carry no usable signal about those classes (no-signal data, an
untrained model) and the finding stays informational. The fix is verified
by post-hoc logit adjustment (``p'_k ∝ p_k / pi_k^tau``, Menon et al. 2021)
with ``tau`` (grid 0 to 4) chosen for balanced accuracy on the validation
split when it has enough samples of every class, otherwise ``tau = 1`` (the
Bayes-consistent correction for balanced error; a tau fitted on halves of
a small test split is mostly noise), scored by balanced accuracy on the
test split, with a 95% paired-bootstrap interval of the gain. A warning needs
``p < alpha``, a gap of at least ``min_recall_gap`` and the ranking signal;
it is critical when logit adjustment recovers at least ``critical_gain``
balanced accuracy and the interval of the gain excludes 0.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from whylow import metrics
from whylow.checks import Check, register
from whylow.checks.fit import validation_shortfall
from whylow.context import Context
from whylow.fixes.priors import (
    adjust_priors,
    bbse_priors,
    class_weights,
    em_priors,
    fit_tau,
    logit_adjust,
    smoothed_priors,
)
from whylow.report.finding import Finding, make_explains

__all__ = ["LabelShiftCheck", "ClassImbalanceCheck", "imbalance_explains_shift", "total_variation"]


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance ``½ Σ |p - q|`` between two distributions over classes."""
    return float(0.5 * np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


def imbalance_ratio(counts: np.ndarray) -> float:
    """``max / min`` of the class counts (inf when a class has no example)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.min() <= 0:
        return float("inf")
    return float(counts.max() / counts.min())


def imbalance_explains_shift(train_priors: np.ndarray, test_priors: np.ndarray, ratio: float, ratio_threshold: float) -> bool:
    """True when a prior difference is a skewed training set meeting a (near-)balanced test set.

    Parameters
    ----------
    train_priors, test_priors : ndarray of shape (n_classes,)
    ratio : float
        Imbalance ratio of the training counts.
    ratio_threshold : float
        Ratio from which the training set counts as imbalanced.
    """
    k = len(train_priors)
    uniform = np.full(k, 1.0 / k)
    return bool(ratio >= ratio_threshold and total_variation(test_priors, uniform) <= 0.5 * total_variation(train_priors, uniform))


def _stratified_halves(y: np.ndarray, seed: int) -> np.ndarray:
    """Fold id (0/1) per sample, each class split evenly between the two halves."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        fold[idx] = (np.arange(len(idx)) + offset) % 2
        offset += len(idx)  # alternate which half gets the odd one out
    return fold


def _chi2_homogeneity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Chi-square test that two count vectors come from one distribution; returns (statistic, p_value)."""
    table = np.vstack([a, b]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


def _ovr_auroc(y: np.ndarray, scores: np.ndarray, k: int) -> tuple[float, float]:
    """One-vs-rest AUROC of class ``k`` from its probability column, and the Mann-Whitney z statistic."""
    pos = y == k
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan"), 0.0
    ranks = stats.rankdata(scores)
    auc = (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    z = (auc - 0.5) / np.sqrt((n1 + n0 + 1) / (12.0 * n1 * n0))
    return float(auc), float(z)


def _balanced_accuracy_gain_ci(y: np.ndarray, before: np.ndarray, after: np.ndarray, k: int, seed: int,
                               n_boot: int = 200, level: float = 0.95) -> tuple[float, float]:
    """Paired bootstrap interval of ``balanced_accuracy(after) - balanced_accuracy(before)`` (predicted classes)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    rows = min(n_boot, max(1, 20_000_000 // max(n, 1)))
    idx = rng.integers(0, n, size=(rows, n))
    yb = y[idx]
    offset = (np.arange(rows)[:, None] * k + yb).ravel()
    support = np.bincount(offset, minlength=rows * k).reshape(rows, k)
    gains = []
    for pred in (before, after):
        hit = (pred[idx] == yb).ravel()
        tp = np.bincount(offset[hit], minlength=rows * k).reshape(rows, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            gains.append(np.nanmean(np.where(support > 0, tp / np.maximum(support, 1), np.nan), axis=1))
    diff = gains[1] - gains[0]
    a = (1 - level) / 2
    return float(np.quantile(diff, a)), float(np.quantile(diff, 1 - a))


def _mean_ci(d: np.ndarray, z: float = 2.576) -> list[float]:
    """99% normal interval of the mean of per-sample differences ``d``."""
    half = z * float(d.std(ddof=1)) / np.sqrt(len(d)) if len(d) > 1 else float("inf")
    return [round(float(d.mean()) - half, 5), round(float(d.mean()) + half, 5)]


def _named(values: np.ndarray, names: list[str], digits: int = 3) -> dict:
    return {names[k]: round(float(v), digits) for k, v in enumerate(values)}


def _score(y: np.ndarray, probs: np.ndarray) -> dict:
    return {"accuracy": metrics.accuracy(y, probs), "log_loss": metrics.log_loss(y, probs)}


def _prior_correction_explains(ctx: Context, evidence: dict) -> dict | None:
    """What the cross-fitted prior correction recovers: accuracy (of the test shortfall against validation) or log-loss."""
    pc = evidence.get("prior_correction")
    if pc is None:
        return None
    acc_gain = pc["accuracy_after"] - pc["accuracy_before"]
    if acc_gain > 0 and pc["accuracy_gain_99ci"][0] > 0:
        return make_explains("accuracy", acc_gain, validation_shortfall(ctx), "validation (at the training priors)")
    return make_explains("log_loss", pc["log_loss_before"] - pc["log_loss_after"], pc["log_loss_before"], "the test log-loss")


def _pick_verified(before: dict, after: dict, note: str) -> dict:
    """The verified block for the metric with the larger gain (accuracy points vs relative log-loss reduction)."""
    acc_gain = after["accuracy"] - before["accuracy"]
    ll_gain = (before["log_loss"] - after["log_loss"]) / before["log_loss"] if before["log_loss"] > 0 else 0.0
    metric = "accuracy" if acc_gain >= ll_gain else "log_loss"
    return {"metric": metric, "before": round(before[metric], 4), "after": round(after[metric], 4), "note": note}


def _reweighted_residual(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Chi-square (sum of squared z) and RMS standardised difference of the column means of ``b`` vs ``a`` weighted by ``w``."""
    w = w / w.sum()
    ma = w @ a
    va = w @ (a - ma) ** 2
    n_eff = 1.0 / np.sum(w**2)
    mb, vb = b.mean(axis=0), b.var(axis=0)
    z = (mb - ma) / np.sqrt(va / n_eff + vb / len(b) + 1e-12)
    smd = (mb - ma) / np.sqrt((va + vb) / 2 + 1e-12)
    return float(np.sum(z**2)), float(np.sqrt(np.mean(smd**2)))


@register
class LabelShiftCheck(Check):
    """Class priors differ between training and test data."""

    name = "label-shift"
    codes = ("label-shift",)
    requires = ("train.y|val.y", "test.y|test.probs")

    #: Significance level of the chi-square test.
    alpha = 0.01
    #: Smallest total-variation distance between priors that matters.
    min_tv = 0.10
    #: A verified accuracy gain (points) at or above this makes the finding critical.
    critical_accuracy_gain = 0.05
    #: A verified relative log-loss reduction at or above this makes the finding critical.
    critical_log_loss_gain = 0.20
    #: Training max/min count ratio from which the training set counts as imbalanced.
    imbalance_ratio = 3.0
    #: Without test labels: residual input difference (RMS standardised mean difference after re-weighting
    #: the reference inputs to the estimated priors) beyond which the shift is not label shift.
    max_residual_smd = 0.25

    def run(self, ctx: Context) -> list[Finding]:
        k = ctx.n_classes
        names = ctx.class_names
        src = ctx.split("train") if ctx.has("train.y") else ctx.split("val")
        src_counts = np.bincount(src.y, minlength=k)
        pi = src_counts / src_counts.sum()
        test = ctx.test
        alpha = self.threshold(ctx, "alpha")
        min_tv = self.threshold(ctx, "min_tv")
        ratio = imbalance_ratio(src_counts)
        if float(stats.chisquare(src_counts).pvalue) >= self.threshold(ctx, "alpha"):
            ratio = 1.0  # counts consistent with equal class frequencies: not an imbalanced training set
        evidence: dict = {
            "train_split": src.name,
            "train_priors": _named(pi, names),
        }
        verified = None
        if test.y is not None:
            q_counts = np.bincount(test.y, minlength=k)
            q = q_counts / q_counts.sum()
            stat, p_value = _chi2_homogeneity(src_counts, q_counts)
            tv = total_variation(pi, q)
            evidence.update(method="label histograms", test_priors=_named(q, names), chi2=round(stat, 3), p_value=p_value, tv_distance=round(tv, 4))
            if test.probs is not None:
                verified = self._verify_with_labels(ctx, test.y, test.probs, pi, evidence)
        else:
            q, stat, p_value = self._estimate_without_labels(ctx, test.probs, pi, evidence)
            tv = total_variation(pi, q)
            evidence.update(test_priors=_named(q, names), chi2=round(stat, 3), p_value=p_value, tv_distance=round(tv, 4))
        ctx.add_artifact(self.name, "priors", {"classes": list(names), "train": pi.tolist(), "test": q.tolist(), "test_source": evidence["method"]})

        significant = p_value < alpha
        if not significant or tv < min_tv / 2:
            return []
        shift = np.argsort(-(q - pi))
        up, down = names[shift[0]], names[shift[-1]]
        if test.y is None:
            beyond = self._inputs_beyond_label_shift(ctx, q, evidence)
            if beyond:
                return [
                    Finding(
                        code="label-shift",
                        severity="info",
                        confidence=0.3,
                        title=(
                            f"The predicted-class histogram moved (TV distance {tv:.2f} from training priors), but the test inputs "
                            "changed beyond what new class priors explain: this is more likely covariate shift (see covariate-shift)"
                        ),
                        evidence=evidence,
                        fix="Check the covariate-shift and preprocessing findings first; label priors cannot be estimated from predictions when the inputs shifted.",
                        verified=None,
                    )
                ]
        from_imbalance = imbalance_explains_shift(pi, q, ratio, self.threshold(ctx, "imbalance_ratio"))
        if from_imbalance:
            evidence["train_imbalance_ratio"] = round(ratio, 2) if np.isfinite(ratio) else None
            return [
                Finding(
                    code="label-shift",
                    severity="info",
                    confidence=0.5,
                    title=(
                        f"Test class priors differ from training priors (TV distance {tv:.2f}) because the training set is "
                        + (f"imbalanced (max/min count ratio {ratio:.1f})" if np.isfinite(ratio) else "missing some classes")
                        + " and the test set is not; see class-imbalance"
                    ),
                    evidence=evidence,
                    fix="Treat this as class imbalance: re-weight classes in training or apply logit adjustment (see the class-imbalance finding).",
                    verified=verified,
                )
            ]
        severity = "info"
        if tv >= min_tv:
            severity = "warning"
            if verified is not None and self._critical(ctx, evidence):
                severity = "critical"
        confidence = float(min(0.99, (1.0 - p_value) * min(1.0, tv / min_tv) * (0.95 if test.y is not None else 0.75)))
        how = "measured on test labels" if test.y is not None else f"estimated from predictions ({evidence['method']})"
        title = (
            f"Class priors differ between {src.name} and test data (TV distance {tv:.2f}, {how}): "
            f"class {up} is {q[shift[0]]:.0%} of test vs {pi[shift[0]]:.0%} of {src.name}, class {down} {q[shift[-1]]:.0%} vs {pi[shift[-1]]:.0%}"
        )
        fix = (
            "Correct the model's outputs for the deployment priors: p'_k ∝ p_k · q_k / pi_k "
            "(whylow.fixes.priors.adjust_priors), with q from labelled deployment data or estimated without labels by "
            "EM (whylow.fixes.priors.em_priors) or BBSE (bbse_priors); or re-train/fine-tune with data sampled at the deployment priors."
        )
        return [Finding("label-shift", severity, confidence, title, evidence, fix, verified, explains=_prior_correction_explains(ctx, evidence))]

    # -- measurement ---------------------------------------------------------
    def _verify_with_labels(self, ctx: Context, y: np.ndarray, probs: np.ndarray, pi: np.ndarray, evidence: dict) -> dict:
        k = ctx.n_classes
        fold = _stratified_halves(y, ctx.seed)
        adjusted = np.empty_like(probs)
        for f in (0, 1):
            fit, ev = fold != f, fold == f
            adjusted[ev] = adjust_priors(probs[ev], pi, smoothed_priors(y[fit], k))
        before, after = _score(y, probs), _score(y, adjusted)
        rows = np.arange(len(y))
        d_acc = (adjusted.argmax(axis=1) == y).astype(float) - (probs.argmax(axis=1) == y)
        d_ll = np.log(np.clip(adjusted[rows, y], 1e-15, 1)) - np.log(np.clip(probs[rows, y], 1e-15, 1))  # loss reduction
        q_em, n_iter = em_priors(probs, pi)
        em_after = _score(y, adjust_priors(probs, pi, q_em))
        evidence["prior_correction"] = {
            "cross_fitted": "priors fitted on one stratified half of test, applied to the other, both halves scored",
            "accuracy_before": round(before["accuracy"], 4),
            "accuracy_after": round(after["accuracy"], 4),
            "log_loss_before": round(before["log_loss"], 4),
            "log_loss_after": round(after["log_loss"], 4),
            "accuracy_gain_99ci": _mean_ci(d_acc),
            "log_loss_reduction_99ci": _mean_ci(d_ll),
        }
        evidence["em_estimate"] = {
            "priors": _named(q_em, ctx.class_names),
            "iterations": n_iter,
            "tv_to_true_test_priors": round(total_variation(q_em, np.bincount(y, minlength=k) / len(y)), 4),
            "accuracy_after": round(em_after["accuracy"], 4),
            "log_loss_after": round(em_after["log_loss"], 4),
        }
        return _pick_verified(before, after, "prior correction, two-fold cross-fitted on the test split")

    def _estimate_without_labels(self, ctx: Context, probs: np.ndarray, pi: np.ndarray, evidence: dict):
        k = ctx.n_classes
        q_em, n_iter = em_priors(probs, pi)
        evidence["em_estimate"] = {"priors": _named(q_em, ctx.class_names), "iterations": n_iter}
        q, method = q_em, "EM (Saerens et al. 2002) on test predictions"
        val = ctx.split("val")
        if val is not None and val.y is not None and val.probs is not None:
            q_bbse, cond = bbse_priors(val.y, val.probs, probs)
            evidence["bbse_estimate"] = {"priors": _named(q_bbse, ctx.class_names), "confusion_condition": round(cond, 4)}
            if cond >= 0.1:
                q, method = q_bbse, "BBSE (Lipton et al. 2018) with the validation confusion matrix"
        ref = next((s for s in (ctx.split("val"), ctx.split("train")) if s is not None and s.probs is not None), None)
        test_pred_counts = np.bincount(probs.argmax(axis=1), minlength=k)
        if ref is not None:
            ref_counts = np.bincount(ref.y_pred, minlength=k)
            evidence["significance"] = f"chi-square of predicted-class histograms, {ref.name} vs test (BBSD)"
        else:
            src = ctx.split("train") if ctx.has("train.y") else ctx.split("val")
            ref_counts = np.bincount(src.y, minlength=k)
            evidence["significance"] = f"chi-square of {src.name} label histogram vs test predicted-class histogram"
        stat, p_value = _chi2_homogeneity(ref_counts, test_pred_counts)
        evidence["method"] = method
        return q, stat, p_value

    def _inputs_beyond_label_shift(self, ctx: Context, q: np.ndarray, evidence: dict) -> bool:
        """Whether the test inputs differ from reference inputs re-weighted to the estimated test priors.

        Under label shift ``p(x | y)`` is unchanged, so the labelled reference
        inputs (training and validation pooled, so the class means are as
        precise as the data allow) weighted by ``w_y = q_y / pi_ref_y`` match
        the test inputs in distribution. Compared on the top principal
        components of the compact features: a chi-square sum of squared z
        statistics of the mean differences, and the root-mean-square
        standardised mean difference as the effect size.
        """
        ref = self._reference_inputs(ctx)
        if ref is None:
            evidence["input_check"] = "not possible (needs inputs x for test and a labelled reference split)"
            return False
        fr, yr, ft, ref_names = ref
        k = ctx.n_classes
        mu, sd = fr.mean(axis=0), fr.std(axis=0) + 1e-9
        zr, zt = (fr - mu) / sd, (ft - mu) / sd
        m = min(10, zr.shape[1])
        _, vecs = np.linalg.eigh(np.cov(zr.T))
        proj = vecs[:, ::-1][:, :m]
        a, b = zr @ proj, zt @ proj
        pi_ref = np.bincount(yr, minlength=k) / len(yr)
        raw = _reweighted_residual(a, b, np.ones(len(yr)))
        after = _reweighted_residual(a, b, (q / np.maximum(pi_ref, 1e-12))[yr])
        p_resid = float(stats.chi2.sf(after[0], m))
        evidence["input_check"] = {
            "reference_splits": ref_names,
            "components": m,
            "chi2_raw": round(raw[0], 2),
            "chi2_after_reweighting": round(after[0], 2),
            "p_value_after_reweighting": p_resid,
            "rms_smd_raw": round(raw[1], 4),
            "rms_smd_after_reweighting": round(after[1], 4),
        }
        return p_resid < self.threshold(ctx, "alpha") and after[1] >= self.threshold(ctx, "max_residual_smd")

    @staticmethod
    def _reference_inputs(ctx: Context):
        """Compact features and labels of the labelled splits shaped like test (train and val pooled), and test's features."""
        from whylow.checks.leakage import scan_split

        test = ctx.test
        if test.x is None:
            return None
        refs = [s for s in (ctx.split("train"), ctx.split("val"))
                if s is not None and s.y is not None and s.x is not None and s.x.shape[1:] == test.x.shape[1:] and s.layout == test.layout]
        if not refs:
            return None
        feats = [ctx.cached(f"scan:{s.name}:False", lambda s=s: scan_split(s))["features"].astype(np.float64) for s in refs]
        ft = ctx.cached(f"scan:{test.name}:False", lambda: scan_split(test))["features"].astype(np.float64)
        return np.concatenate(feats), np.concatenate([s.y for s in refs]), ft, [s.name for s in refs]

    def _critical(self, ctx: Context, evidence: dict) -> bool:
        pc = evidence["prior_correction"]
        acc_gain = pc["accuracy_after"] - pc["accuracy_before"]
        ll_gain = (pc["log_loss_before"] - pc["log_loss_after"]) / max(pc["log_loss_before"], 1e-12)
        acc_ok = acc_gain >= self.threshold(ctx, "critical_accuracy_gain") and pc["accuracy_gain_99ci"][0] > 0
        ll_ok = ll_gain >= self.threshold(ctx, "critical_log_loss_gain") and pc["log_loss_reduction_99ci"][0] > 0
        return acc_ok or ll_ok


@register
class ClassImbalanceCheck(Check):
    """Training classes are skewed and minority classes are under-predicted on held-out data."""

    name = "class-imbalance"
    codes = ("class-imbalance",)
    requires = ("train.y", "test.y", "test.probs")

    #: Training max/min count ratio from which the training set counts as imbalanced; classes with
    #: at most ``max count / imbalance_ratio`` examples are minority classes.
    imbalance_ratio = 3.0
    #: Significance level of the one-sided sign test (errors flow from minority to majority classes).
    alpha = 0.01
    #: Smallest recall gap between majority and minority classes that matters.
    min_recall_gap = 0.10
    #: Balanced-accuracy gain of logit adjustment that makes the finding critical (its 95% bootstrap interval must exclude 0).
    critical_gain = 0.05
    #: Mean one-vs-rest AUROC of the minority classes needed (the model must rank them, only too low).
    min_minority_auroc = 0.6
    #: Validation samples needed in every class to fit tau there (else tau is cross-fitted on the test split).
    min_val_per_class = 10

    def run(self, ctx: Context) -> list[Finding]:
        k = ctx.n_classes
        names = ctx.class_names
        counts = np.bincount(ctx.split("train").y, minlength=k)
        ratio_threshold = self.threshold(ctx, "imbalance_ratio")
        ratio = imbalance_ratio(counts)
        ctx.add_artifact(self.name, "train_counts", {"classes": list(names), "counts": counts.tolist()})
        # skewed beyond sampling noise: max/min ratio above the threshold and counts unlike a uniform draw
        uniform_p = float(stats.chisquare(counts).pvalue) if counts.sum() > 0 else 1.0
        if ratio < ratio_threshold or uniform_p >= self.threshold(ctx, "alpha"):
            return []
        test = ctx.test
        y, probs = test.y, test.probs
        pi = counts / counts.sum()
        minority = counts <= counts.max() / ratio_threshold
        support = np.bincount(y, minlength=k)
        pcm = metrics.per_class_metrics(y, probs)
        correct = probs.argmax(axis=1) == y
        tp = np.bincount(y[correct], minlength=k)
        m_sup, M_sup = support[minority].sum(), support[~minority].sum()
        evidence: dict = {
            "train_counts": {names[i]: int(c) for i, c in enumerate(counts)},
            "imbalance_ratio": round(ratio, 2) if np.isfinite(ratio) else None,
            "uniform_counts_p_value": uniform_p,
            "classes_without_training_examples": [names[i] for i in np.flatnonzero(counts == 0)],
            "minority_classes": [names[i] for i in np.flatnonzero(minority)],
            "test_support": {names[i]: int(s) for i, s in enumerate(support)},
            "recall": _named(pcm["recall"], names),
            "mean_true_prob": {names[i]: (None if np.isnan(v) else round(float(v), 3)) for i, v in enumerate(pcm["mean_true_prob"])},
        }
        if m_sup == 0 or M_sup == 0:
            evidence["note"] = "the test split has no samples of the minority (or majority) classes; recall cannot be compared"
            return [self._info(ratio, evidence, counts, names)]
        rec_min, rec_maj = tp[minority].sum() / m_sup, tp[~minority].sum() / M_sup
        gap = rec_maj - rec_min
        pooled = (tp[minority].sum() + tp[~minority].sum()) / (m_sup + M_sup)
        se = np.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / m_sup + 1 / M_sup))
        z = gap / se
        p_gap = float(stats.norm.sf(z))
        # the bias itself: errors flow from minority to majority classes far more than the other way
        pred = probs.argmax(axis=1)
        to_majority = int((minority[y] & ~minority[pred]).sum())
        to_minority = int((~minority[y] & minority[pred]).sum())
        p_value = float(stats.binomtest(to_majority, to_majority + to_minority, 0.5, alternative="greater").pvalue) if to_majority + to_minority else 1.0
        present = support > 0
        rho, rho_p = (float("nan"), float("nan"))
        if present.sum() >= 3 and np.ptp(np.log1p(counts[present])) > 0 and np.ptp(pcm["recall"][present]) > 0:
            res = stats.spearmanr(np.log1p(counts[present]), pcm["recall"][present])
            rho, rho_p = float(res.statistic), float(res.pvalue)
        evidence.update(
            minority_recall=round(float(rec_min), 4),
            majority_recall=round(float(rec_maj), 4),
            recall_gap=round(float(gap), 4),
            z=round(float(z), 3),
            recall_gap_p_value=p_gap,
            minority_predicted_as_majority=to_majority,
            majority_predicted_as_minority=to_minority,
            p_value=p_value,
            spearman_recall_vs_log_count=None if np.isnan(rho) else round(rho, 3),
            spearman_p_value=None if np.isnan(rho_p) else rho_p,
        )
        # verification: post-hoc logit adjustment, tau fitted on the validation split when it has enough samples
        # of every class, else tau = 1 (the Bayes-consistent correction for balanced error, nothing fitted on test)
        grid = np.arange(0.0, 4.01, 0.25)
        val = ctx.split("val")
        if (val is not None and val.y is not None and val.probs is not None
                and np.bincount(val.y, minlength=k).min() >= self.threshold(ctx, "min_val_per_class")):
            tau, _ = fit_tau(val.y, val.probs, pi, grid)
            tau_source = "fitted on the validation split (max balanced accuracy)"
            adjusted = logit_adjust(probs, pi, tau)
        else:
            tau = 1.0
            tau_source = ("the default tau = 1 (Menon et al. 2021: Bayes-consistent for balanced error), as the validation split "
                          "has too few examples of some class to fit it")
            adjusted = logit_adjust(probs, pi, tau)
        ba_before, ba_after = metrics.balanced_accuracy(y, probs), metrics.balanced_accuracy(y, adjusted)
        pcm_after = metrics.per_class_metrics(y, adjusted)
        gain = ba_after - ba_before
        gain_lo, gain_hi = _balanced_accuracy_gain_ci(y, probs.argmax(axis=1), adjusted.argmax(axis=1), k, ctx.seed)
        evidence["logit_adjustment"] = {
            "tau": tau,
            "tau_source": tau_source,
            "balanced_accuracy_before": round(ba_before, 4),
            "balanced_accuracy_after": round(ba_after, 4),
            "gain_95ci": [round(gain_lo, 4), round(gain_hi, 4)],
            "accuracy_before": round(metrics.accuracy(y, probs), 4),
            "accuracy_after": round(metrics.accuracy(y, adjusted), 4),
            "minority_recall_after": round(float(pcm_after["recall"][minority & present].mean()), 4) if (minority & present).any() else None,
        }
        test_q = support / support.sum()
        evidence["test_priors_vs_training"] = {
            "tv_distance": round(total_variation(pi, test_q), 4),
            "test_is_more_balanced": imbalance_explains_shift(pi, test_q, ratio, ratio_threshold),
        }
        ctx.add_artifact(self.name, "recall_vs_count", {"classes": list(names), "counts": counts.tolist(), "recall": pcm["recall"].tolist(), "recall_after_adjustment": pcm_after["recall"].tolist()})
        verified = {
            "metric": "balanced_accuracy",
            "before": round(ba_before, 4),
            "after": round(ba_after, 4),
            "note": f"post-hoc logit adjustment with tau={tau:g} ({tau_source}), scored on the test split",
        }
        if ba_after <= ba_before:  # a fix that did not help verifies nothing; what it did stays in the evidence
            evidence["logit_adjustment_tried"] = {**verified, "note": verified["note"] + "; it did not raise balanced accuracy"}
            verified = None
        # does the model rank minority examples above the others? (signal that a bias, not blindness, hides them)
        aucs, zs = [], []
        for c in np.flatnonzero(minority & present):
            auc_c, z_c = _ovr_auroc(y, probs[:, c], c)
            aucs.append(auc_c)
            zs.append(z_c)
        minority_auc = float(np.mean(aucs)) if aucs else float("nan")
        auc_p = float(stats.norm.sf(np.sum(zs) / np.sqrt(len(zs)))) if zs else 1.0
        evidence["minority_auroc"] = None if np.isnan(minority_auc) else round(minority_auc, 4)
        evidence["minority_auroc_p_value"] = auc_p
        alpha = self.threshold(ctx, "alpha")
        if p_value >= alpha or gap < self.threshold(ctx, "min_recall_gap"):
            return [self._info(ratio, evidence, counts, names, verified)]
        if auc_p >= alpha or minority_auc < self.threshold(ctx, "min_minority_auroc"):
            evidence["note"] = (
                "minority classes are under-predicted, but the model does not rank their examples above the others "
                f"(AUROC {minority_auc:.2f}): its outputs carry too little signal about them for re-weighting to help"
            )
            return [self._info(ratio, evidence, counts, names, verified, "its minority classes are hardly recognised at all, so re-weighting cannot help")]
        proven = gain_lo > 0
        severity = "critical" if gain >= self.threshold(ctx, "critical_gain") and proven else "warning"
        confidence = float(min(0.99, (1 - p_value) * (0.9 if proven else 0.7)))
        n_min = int(minority.sum())
        skew = f"max/min class count {ratio:.0f}×" if np.isfinite(ratio) else f"{int((counts == 0).sum())} class(es) without any training example"
        title = (
            f"Training set is imbalanced ({skew}) and its {n_min} minority "
            f"class{'es are' if n_min > 1 else ' is'} under-predicted: recall {rec_min:.0%} vs {rec_maj:.0%}"
        )
        # what logit adjustment recovers, of the balanced accuracy lost against the majority classes' recall
        explains = make_explains("balanced_accuracy", gain, rec_maj - ba_before, "the majority classes' recall")
        return [Finding("class-imbalance", severity, confidence, title, evidence, self._fix(counts, names, tau, ba_before, ba_after), verified,
                        explains=explains)]

    def _info(self, ratio, evidence, counts, names, verified=None, but: str = "minority classes are not clearly under-predicted on test data") -> Finding:
        skew = f"max/min class count {ratio:.1f}×" if np.isfinite(ratio) else f"{int((counts == 0).sum())} class(es) without any training example"
        return Finding(
            code="class-imbalance",
            severity="info",
            confidence=0.5,
            title=f"Training set is imbalanced ({skew}), but {but}",
            evidence=evidence,
            fix=self._fix(counts, names, None, None, None),
            verified=verified,
        )

    @staticmethod
    def _fix(counts, names, tau, ba_before, ba_after) -> str:
        w = class_weights(counts)
        shown = ", ".join(f"{names[i]}: {w[i]:.2f}" for i in np.argsort(-w)[:10])
        more = "" if len(w) <= 10 else f" (and {len(w) - 10} more; largest shown)"
        text = (
            f"Train with class weights n / (n_classes · n_k) — {{{shown}}}{more} — e.g. "
            "torch.nn.CrossEntropyLoss(weight=...) or Keras class_weight=..., or oversample minority classes "
            "(WeightedRandomSampler with weight 1/n_k per sample) or collect more minority examples."
        )
        if tau is not None:
            text += (
                f" Without re-training: subtract tau·log(train prior) from the logits (whylow.fixes.priors.logit_adjust, "
                f"tau={tau:g}); this moved balanced accuracy from {ba_before:.3f} to {ba_after:.3f} on the test split."
            )
        return text
