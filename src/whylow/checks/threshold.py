"""``decision-threshold``: a binary classifier's 0.5 cut is badly placed for the class balance.

Binary problems only (``n_classes == 2``; class 1 is "positive", its
probability is ``p_pos``). The default decision is the argmax, i.e. a
threshold of 0.5 on ``p_pos``.

Method: an intervention
-----------------------
1. Choose the threshold that maximises the check's ``metric`` on the
   validation split (`whylow.fixes.threshold.fit_threshold`):
   ``"balanced_accuracy"`` by default (the mean of the two per-class
   recalls: it weighs both classes equally whatever their counts, which is
   what "badly placed for the class balance" is measured against), or
   ``"f1"`` of the minority class (option ``decision-threshold.metric``).
   Without a labelled validation split, thresholds are cross-fitted on two
   stratified halves of the test split (each half is judged by the
   threshold chosen on the other).
2. Apply it to the test split and compare, on the same test samples, the
   metric at 0.5 (argmax) with the metric at the chosen threshold: samples
   the threshold was not chosen on.
3. Test the gain on those paired test rows. The null hypothesis is a
   negligible gain (``gain <= negligible_gain``, 0.01), not exactly zero: a
   perfectly calibrated, balanced model (for which 0.5 is optimal) then
   raises nothing even on 300 samples. For balanced accuracy
   (`balanced_accuracy_gain_test`) only samples whose score lies between the
   two thresholds change (``d_i`` = +1 now right, -1 now wrong, else 0); the
   gain is the mean of the two class means of ``d`` and its standard error
   the Wald one, from the variance of ``d`` within each class (the
   McNemar null variance assumes a gain of exactly zero, which is not the
   null hypothesis here, and understates the power against a margin). For
   F1, which does not decompose over samples, the paired bootstrap of
   `whylow.fixes.threshold.paired_gain_test`.

A finding needs ``p < alpha`` (0.01) **and** a held-out gain of at least
``min_gain`` (3 points); it is ``critical`` when the gain is at least
``critical_gain`` (10 points). Severity is the measured gain, nothing else.

Its ``verified`` entry is the test metric before and after. ``explains`` is
the balanced-accuracy gain as a share of the balanced accuracy lost to the
gap between the two classes' recalls at 0.5 (``max(TPR, TNR) - balanced
accuracy``): the part of the shortfall that a misplaced cut can cause, and
the same whole that class-imbalance's logit adjustment is measured against.
The intervention is computed once per diagnosis (`threshold_intervention`)
and shared: misleading-metric asks it whether the cut, not a lack of skill,
is what the accuracy hides.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from whylow.checks import Check, register
from whylow.context import Context
from whylow.fixes.threshold import cross_fit_thresholds, fit_threshold, paired_gain_test, threshold_metrics
from whylow.report.finding import Finding, make_explains

__all__ = ["DecisionThresholdCheck", "balanced_accuracy_gain_test", "threshold_intervention"]


def balanced_accuracy_gain_test(y_true, pred_before, pred_after, margin: float = 0.0) -> dict[str, float]:
    """One-sided paired test that balanced accuracy rose by more than ``margin``.

    Parameters
    ----------
    y_true, pred_before, pred_after : array-like of shape (n_samples,)
        Binary labels and two sets of binary predictions for the same samples.
    margin : float, default=0.0
        The null hypothesis is ``gain <= margin``.

    Returns
    -------
    dict
        ``before``, ``after``, ``gain``, ``se`` (Wald: per class the variance
        of the mean of ``d = correct_after - correct_before``, Agresti-Min
        adjusted, weighted 1/4 as balanced accuracy weighs each class mean 1/2),
        ``z = (gain - margin) / se``, ``p_value`` (one-sided), ``n_better``
        and ``n_worse`` (samples that became right / wrong). With no changed
        sample, ``p_value`` is 1.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0] * 80 + [1] * 20)
    >>> before = np.zeros(100, dtype=int)
    >>> after = np.r_[np.zeros(75), np.ones(5), np.ones(15), np.zeros(5)].astype(int)
    >>> res = balanced_accuracy_gain_test(y, before, after, margin=0.01)
    >>> round(res["gain"], 3), res["p_value"] < 1e-6
    (0.344, True)
    """
    y = np.asarray(y_true).astype(np.int64)
    d = (np.asarray(pred_after).astype(np.int64) == y).astype(np.int64) - (np.asarray(pred_before).astype(np.int64) == y)
    before = threshold_metrics(y, pred_before)["balanced_accuracy"]
    after = threshold_metrics(y, pred_after)["balanced_accuracy"]
    out = {"before": before, "after": after, "gain": after - before,
           "n_better": int((d > 0).sum()), "n_worse": int((d < 0).sum())}
    if out["n_better"] + out["n_worse"] == 0:
        return {**out, "se": 0.0, "z": 0.0, "p_value": 1.0}
    se = math.sqrt(sum(_class_mean_variance(d[y == c]) for c in (0, 1)) / 4)
    z = (out["gain"] - margin) / se
    return {**out, "se": se, "z": z, "p_value": float(stats.norm.sf(z))}


def _class_mean_variance(d: np.ndarray) -> float:
    """Wald variance of the mean of ``d`` (values -1, 0, +1), Agresti-Min adjusted.

    Half a sample is added to each of the four paired cells (now right / now
    wrong / both / neither), so a class in which every changed sample went
    the same way still gets a positive variance.
    """
    b, w = np.count_nonzero(d > 0) + 0.5, np.count_nonzero(d < 0) + 0.5
    n = d.size + 2.0
    return ((b + w) / n - ((b - w) / n) ** 2) / n


def _fit(ctx: Context, metric: str, need: int) -> dict | None:
    """Step 1: the threshold, chosen on validation data or cross-fitted on the test split."""
    test = ctx.test
    p_test = test.probs[:, 1]
    val = next(iter(ctx.labelled("val")), None)
    if val is not None and np.bincount(val.y, minlength=2).min() >= need:
        t, fit_value = fit_threshold(val.y, val.probs[:, 1], metric)
        return {"threshold": t, "fit_value": fit_value, "fitted_on": "val", "halves": None,
                "after": p_test >= t, "val_at_0.5": threshold_metrics(val.y, val.probs.argmax(1))}
    if np.bincount(test.y, minlength=2).min() < 2 * need:
        return None
    thresholds, halves = cross_fit_thresholds(test.y, p_test, metric, seed=ctx.seed)
    t, fit_value = fit_threshold(test.y, p_test, metric)
    return {"threshold": t, "fit_value": fit_value, "fitted_on": "test", "halves": list(halves),
            "after": p_test >= thresholds, "val_at_0.5": None}


def _intervene(check: Check, ctx: Context) -> dict | None:
    if ctx.n_classes != 2:
        return None
    metric = str(check.threshold(ctx, "metric"))
    need = int(check.threshold(ctx, "min_per_class"))
    test = ctx.test
    if np.bincount(test.y, minlength=2).min() < need:
        return None
    fit = _fit(ctx, metric, need)
    if fit is None:
        return None
    before = test.probs.argmax(axis=1).astype(bool)
    margin = float(check.threshold(ctx, "negligible_gain"))
    if metric == "balanced_accuracy":
        res = balanced_accuracy_gain_test(test.y, before, fit["after"], margin)
    else:
        res = paired_gain_test(test.y, before, fit["after"], metric, margin=margin, seed=ctx.seed)
    proven = res["p_value"] < float(check.threshold(ctx, "alpha")) and res["gain"] >= float(check.threshold(ctx, "min_gain"))
    return {**fit, "metric": metric, "before": before, "test": res, "proven": bool(proven),
            "at_0.5": threshold_metrics(test.y, before), "at_threshold": threshold_metrics(test.y, fit["after"])}


def threshold_intervention(ctx: Context) -> dict | None:
    """Move the binary cut to the threshold chosen on held-out data and re-measure on the test split.

    Computed once per diagnosis and shared between checks.

    Returns
    -------
    dict or None
        None unless the problem is binary with enough samples of each class.
        Otherwise ``threshold``, ``fitted_on`` ("val" or "test"), ``metric``,
        ``before`` / ``after`` (boolean test predictions at 0.5 and at the
        threshold), ``at_0.5`` / ``at_threshold`` (`threshold_metrics` on the
        test split), ``test`` (the paired test's result: ``gain``,
        ``p_value``, ...), and ``proven`` (significant and at least
        ``min_gain``).
    """
    check = DecisionThresholdCheck()
    return ctx.cached(f"decision-threshold:intervention:{ctx.seed}", lambda: _intervene(check, ctx))


@register
class DecisionThresholdCheck(Check):
    """Binary problems: is a threshold other than 0.5 clearly better on held-out data?"""

    name = "decision-threshold"
    codes = ("decision-threshold",)
    requires = ("test.y", "test.probs")

    #: Metric the threshold is chosen for: "balanced_accuracy" or "f1" (of the minority class).
    metric = "balanced_accuracy"
    #: Level of the one-sided paired test.
    alpha = 0.01
    #: Smallest held-out gain that matters.
    min_gain = 0.03
    #: The test's null hypothesis is "the gain is at most this" (a negligible gain), not "no gain".
    negligible_gain = 0.01
    #: Held-out gain that makes it critical.
    critical_gain = 0.10
    #: Fewest samples of each class on the test split (and on the fitting split) to judge at all.
    min_per_class = 10

    def run(self, ctx: Context) -> list[Finding]:
        iv = threshold_intervention(ctx)
        if iv is None:
            return []
        ctx.add_artifact(self.name, "threshold", {"chosen": iv["threshold"], "fitted_on": iv["fitted_on"], "metric": iv["metric"]})
        if not iv["proven"]:
            return []
        res = iv["test"]
        severity = "critical" if res["gain"] >= float(self.threshold(ctx, "critical_gain")) else "warning"
        confidence = (1.0 - res["p_value"]) * min(1.0, 0.6 + 0.4 * res["gain"] / float(self.threshold(ctx, "critical_gain")))
        verified = {"metric": iv["metric"], "before": res["before"], "after": res["after"]}
        return [Finding(code="decision-threshold", severity=severity, confidence=confidence, title=self._title(ctx, iv),
                        evidence=self._evidence(ctx, iv), fix=self._fix(ctx, iv), verified=verified,
                        explains=self._explains(iv))]

    @staticmethod
    def _metric_words(iv: dict) -> str:
        return "balanced accuracy" if iv["metric"] == "balanced_accuracy" else "minority-class F1"

    def _title(self, ctx: Context, iv: dict) -> str:
        pos, res = ctx.class_names[1], iv["test"]
        return (
            f"The 0.5 decision threshold is badly placed for the class balance ({float(ctx.test.y.mean()):.0%} positive "
            f"'{pos}'): predicting '{pos}' when p ≥ {iv['threshold']:.2f} raises test {self._metric_words(iv)} from "
            f"{res['before']:.2f} to {res['after']:.2f} (recall of '{pos}' {iv['at_0.5']['tpr']:.2f} → {iv['at_threshold']['tpr']:.2f})"
        )

    def _fix(self, ctx: Context, iv: dict) -> str:
        pos = ctx.class_names[1]
        where = (
            "chosen on the validation split"
            if iv["fitted_on"] == "val"
            else "chosen on the test split; verified by two-fold cross-fitting because there is no validation split"
        )
        return (
            f"Predict the positive class '{pos}' when p('{pos}') ≥ {iv['threshold']:.2f} instead of 0.5 ({where}, "
            f"maximising {self._metric_words(iv)}). If the training data's class balance or class weights caused the "
            "shift, the same threshold applies until the model is retrained."
        )

    def _evidence(self, ctx: Context, iv: dict) -> dict:
        res, test = iv["test"], ctx.test
        evidence = {
            "metric": iv["metric"],
            "threshold": iv["threshold"],
            "fitted_on": iv["fitted_on"],
            "metric_on_fitting_split_at_threshold": iv["fit_value"],
            "positive_class": ctx.class_names[1],
            "test_positive_rate": float(test.y.mean()),
            "mean_predicted_positive_probability": float(test.probs[:, 1].mean()),
            "n_test": int(test.n),
            "at_0.5": iv["at_0.5"],
            "at_threshold": iv["at_threshold"],
            "gain": res["gain"],
            "gain_se": res["se"],
            "p_value": res["p_value"],
            "test": "one-sided paired Wald test on the test rows" if iv["metric"] == "balanced_accuracy" else "paired bootstrap",
            "null_hypothesis": f"gain <= {float(self.threshold(ctx, 'negligible_gain')):g}",
            "alpha": float(self.threshold(ctx, "alpha")),
            "samples_now_right": res["n_better"],
            "samples_now_wrong": res["n_worse"],
        }
        if iv["val_at_0.5"] is not None:
            evidence["val_at_0.5"] = iv["val_at_0.5"]
        if iv["halves"] is not None:
            evidence["half_thresholds"] = iv["halves"]
        return evidence

    @staticmethod
    def _explains(iv: dict) -> dict | None:
        """Balanced-accuracy gain, as a share of what the gap between the two recalls costs at 0.5."""
        if iv["metric"] != "balanced_accuracy":
            return None
        m = iv["at_0.5"]
        lost = max(m["tpr"], m["tnr"]) - m["balanced_accuracy"]
        return make_explains("balanced_accuracy", iv["test"]["gain"], lost, "the better-recognised class's recall at 0.5")
