"""``decision-threshold``: a binary classifier's 0.5 cut is badly placed for the class balance.

Binary problems only (``n_classes == 2``; class 1 is "positive", its
probability is ``p_pos``). The default decision is the argmax, i.e. a
threshold of 0.5 on ``p_pos``.

Method
------
1. Choose the threshold that maximises the check's ``metric`` on the
   validation split (`whylow.fixes.threshold.fit_threshold`):
   ``"balanced_accuracy"`` by default (the mean of the two per-class
   recalls: it weighs both classes equally whatever their counts, which is
   what "badly placed for the class balance" is measured against), or
   ``"f1"`` of the minority class (option ``decision-threshold.metric``).
   Without a labelled validation split, thresholds are cross-fitted on two
   stratified halves of the test split (each half is judged by the
   threshold chosen on the other).
2. Verify on the test split: the metric at 0.5 (argmax) versus at the chosen
   threshold, on samples the threshold was not chosen on.
3. Test the gain with the paired test of
   `whylow.fixes.threshold.paired_gain_test`: for balanced accuracy a
   McNemar-type score test stratified by class (only samples whose score lies
   between the two thresholds change; one-sided z); for F1 a paired bootstrap.
   The null hypothesis is a negligible gain (``gain <= negligible_gain``,
   0.01), not exactly zero: a perfectly calibrated, balanced model (for which
   0.5 is optimal) then raises nothing even on 300 samples, where a plain
   test at 0.01 fires on about 1 seed in 400.

A finding needs ``p < alpha`` (0.01) **and** a held-out gain of at least
``min_gain`` (0.03); it is ``critical`` when the gain is at least
``critical_gain`` (0.10). Its ``verified`` entry is the test metric before
and after, and ``explains`` the balanced-accuracy gain (the shortfall a
misplaced cut causes, with no whole to share it of).
"""

from __future__ import annotations

import numpy as np

from whylow.checks import Check, register
from whylow.context import Context
from whylow.fixes.threshold import cross_fit_thresholds, fit_threshold, paired_gain_test, threshold_metrics
from whylow.report.finding import Finding, make_explains

__all__ = ["DecisionThresholdCheck"]


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
        if ctx.n_classes != 2:
            return []
        metric = str(self.threshold(ctx, "metric"))
        alpha = float(self.threshold(ctx, "alpha"))
        need = int(self.threshold(ctx, "min_per_class"))
        test = ctx.test
        if np.bincount(test.y, minlength=2).min() < need:
            return []
        p_test = test.probs[:, 1]
        val = next(iter(ctx.labelled("val")), None)
        if val is not None and np.bincount(val.y, minlength=2).min() >= need:
            t, fit_value = fit_threshold(val.y, val.probs[:, 1], metric)
            after = p_test >= t
            fitted_on, halves = "val", None
            fit_at_half = threshold_metrics(val.y, val.probs.argmax(1))
        else:
            if np.bincount(test.y, minlength=2).min() < 2 * need:
                return []
            thresholds, halves = cross_fit_thresholds(test.y, p_test, metric, seed=ctx.seed)
            after = p_test >= thresholds
            t, fit_value = fit_threshold(test.y, p_test, metric)
            fitted_on, fit_at_half = "test", None
        before = test.probs.argmax(axis=1).astype(bool)
        res = paired_gain_test(test.y, before, after, metric, margin=float(self.threshold(ctx, "negligible_gain")), seed=ctx.seed)
        ctx.add_artifact(self.name, "threshold", {"chosen": t, "fitted_on": fitted_on, "metric": metric})
        if not (res["p_value"] < alpha and res["gain"] >= float(self.threshold(ctx, "min_gain"))):
            return []
        severity = "critical" if res["gain"] >= float(self.threshold(ctx, "critical_gain")) else "warning"
        m_before = threshold_metrics(test.y, before)
        m_after = threshold_metrics(test.y, after)
        pos = ctx.class_names[1]
        prior = float(test.y.mean())
        metric_words = "balanced accuracy" if metric == "balanced_accuracy" else "minority-class F1"
        where = (
            "chosen on the validation split"
            if fitted_on == "val"
            else "chosen on the test split; verified by two-fold cross-fitting because there is no validation split"
        )
        title = (
            f"The 0.5 decision threshold is badly placed for the class balance ({prior:.0%} positive '{pos}'): "
            f"predicting '{pos}' when p ≥ {t:.2f} raises test {metric_words} from {res['before']:.2f} to {res['after']:.2f}"
        )
        fix = (
            f"Predict the positive class '{pos}' when p('{pos}') ≥ {t:.2f} instead of 0.5 ({where}, "
            f"maximising {metric_words}). If the training data's class balance caused the shift, "
            f"the same threshold applies until the model is retrained."
        )
        evidence = {
            "metric": metric,
            "threshold": t,
            "fitted_on": fitted_on,
            "metric_on_fitting_split_at_threshold": fit_value,
            "positive_class": pos,
            "test_positive_rate": prior,
            "n_test": int(test.n),
            "at_0.5": m_before,
            "at_threshold": m_after,
            "gain": res["gain"],
            "gain_se": res["se"],
            "p_value": res["p_value"],
            "null_hypothesis": f"gain <= {float(self.threshold(ctx, 'negligible_gain')):g}",
            "alpha": alpha,
            "samples_now_right": res["n_better"],
            "samples_now_wrong": res["n_worse"],
        }
        if fit_at_half is not None:
            evidence["val_at_0.5"] = fit_at_half
        if halves is not None:
            evidence["half_thresholds"] = list(halves)
        return [
            Finding(
                code="decision-threshold",
                severity=severity,
                confidence=(1.0 - res["p_value"]) * min(1.0, 0.6 + 0.4 * res["gain"] / float(self.threshold(ctx, "critical_gain"))),
                title=title,
                evidence=evidence,
                fix=fix,
                verified={"metric": metric if metric == "balanced_accuracy" else "f1", "before": res["before"], "after": res["after"]},
                explains=make_explains("balanced_accuracy", res["gain"]) if metric == "balanced_accuracy" else None,
            )
        ]
