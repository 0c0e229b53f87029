"""Evaluation checks: ``misleading-metric`` and ``small-sample``.

Both judge how the model was *measured* on the test split, not the model.

misleading-metric
-----------------
The headline metric is accuracy. It misleads in two ways:

1. **Accuracy no better than a constant.** The majority-class baseline (always
   predicting the most frequent test class) is compared with the model's
   accuracy by a one-sided exact binomial test (H0: accuracy equals the
   baseline). When the baseline sits at least ``min_baseline_lift`` (20
   points) above uniform guessing (``1 / n_classes``), so that it *looks* like
   a result, and the model is not significantly better (``p >= alpha``, 0.01)
   or better by less than ``min_gain`` (2 points), accuracy cannot tell this
   model from a constant. Critical when the model has no per-class skill at
   any cut: balanced accuracy (at 0.5, or at a binary threshold proven on
   held-out data, below) less than ``min_balanced_gain`` (10 points) above
   the constant's; the headline is then meaningless. Warning when there is
   per-class skill that accuracy hides.
2. **A class failure hidden by the average.** A class with at least
   ``min_support`` (10) examples whose recall is near zero (Wilson 95% upper
   bound at most ``max_hidden_recall``, 0.25) while accuracy is at least
   ``hidden_gap`` (0.5) above that upper bound (a weak model with one
   uncertain, poorly recognised class is not "hidden" by an accuracy that
   is itself low); or balanced accuracy ``hidden_gap_balanced`` (10 points)
   below accuracy with the paired bootstrap 95% interval of the difference
   (500 replicates) above 5 points. Warning.

**The cut, not the model.** On a binary problem the decision-threshold
intervention (`whylow.checks.threshold.threshold_intervention`: a threshold
chosen on validation data, re-measured on the test rows with a paired test)
says whether moving the 0.5 cut recovers what accuracy hides. When it is
proven and raises balanced accuracy by at least ``threshold_share`` (half)
of ``accuracy - balanced accuracy``, the model has the skill and the cut
hides it: decision-threshold is the cause, and this finding is ``info``,
naming it. Its numbers are in ``evidence["threshold_fix"]``.

Evidence always carries what the seed recommends reporting instead:
accuracy, balanced accuracy, the majority baseline, per-class recall of the
worst classes, and log-loss and Brier score next to their prior-only
baselines (predicting the test class frequencies for every sample).

small-sample
------------
Accuracy is a proportion, so its 95% interval is the Wilson score interval
(a bootstrap percentile interval collapses to a point when the model makes
no error, or only errors, on a small split; the bootstrap intervals of
accuracy, balanced accuracy and log-loss, 200 replicates from
`whylow.metrics.bootstrap_ci`, are reported beside it). Warning when the
accuracy interval is wider than ``warn_width`` (0.20: accuracy known only to
within about ±10 points, too wide to tell a good model from a mediocre one),
or when more than half of the classes have fewer than ``warn_class_support``
(8) examples (each such class's recall interval is wider than ±0.35).
An ordinary test set of a hundred-odd images is info, not a warning: its
numbers are uncertain, but it is no reason for low predictions. Info when the interval is wider than ``info_width``
(0.10) or some class has fewer than ``min_class_support`` (30) examples (its
recall interval is then wider than about ±0.15). The evidence gives the test
size needed for a ``target_width`` (0.05) interval, from the normal
approximation ``n = (2 · 1.96)² p (1 − p) / width²``.
"""

from __future__ import annotations

import math

import numpy as np

from whylow import metrics
from whylow.checks import Check, register
from whylow.checks.fit import _binom_sf, _round, headline_hidden, wilson_interval
from whylow.checks.threshold import threshold_intervention
from whylow.context import Context
from whylow.report.finding import Finding

__all__ = ["MisleadingMetricCheck", "SmallSampleCheck"]


def _paired_bootstrap_acc_minus_bal(y_true: np.ndarray, correct: np.ndarray, n_classes: int, n_boot: int = 500, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of ``accuracy - balanced_accuracy`` (same resamples for both)."""
    rng = np.random.default_rng(seed)
    n = y_true.size
    k = n_classes
    out = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2**21 // max(n, 1)))
    corr = correct.astype(np.float64)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        keys = (y_true[idx] + (np.arange(b) * k)[:, None]).ravel()
        support = np.bincount(keys, minlength=b * k).reshape(b, k)
        tp = np.bincount(keys, weights=corr[idx].ravel(), minlength=b * k).reshape(b, k)
        present = support > 0
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
        bal = recall.sum(axis=1) / present.sum(axis=1)
        out[start : start + b] = corr[idx].mean(axis=1) - bal
    lo, hi = np.quantile(out, [0.025, 0.975])
    return float(lo), float(hi)


@register
class MisleadingMetricCheck(Check):
    """Accuracy hides the failure: a constant scores the same, or a class is silently lost."""

    name = "misleading-metric"
    codes = ("misleading-metric",)
    requires = ("test.y", "test.probs")
    #: Majority baseline minus 1/n_classes above which the baseline "looks like a result".
    min_baseline_lift = 0.2
    #: Significance level of the binomial test vs the majority baseline.
    alpha = 0.01
    #: Accuracy gain over the baseline below which it is not practically better.
    min_gain = 0.02
    #: Balanced-accuracy gain over the constant below which the per-class view shows no skill either.
    min_balanced_gain = 0.10
    #: Smallest class support for a hidden class failure.
    min_support = 10
    #: Wilson upper bound of a class's recall that counts as near zero.
    max_hidden_recall = 0.25
    #: Accuracy minus that recall for it to be "hidden by the average".
    hidden_gap = 0.5
    #: Accuracy minus balanced accuracy for a warning.
    hidden_gap_balanced = 0.10
    #: Share of ``accuracy - balanced accuracy`` that a proven binary threshold fix must recover to make this info.
    threshold_share = 0.5

    def run(self, ctx: Context) -> list[Finding]:
        test = ctx.test
        y, probs, k = test.y, test.probs, ctx.n_classes
        names = ctx.class_names
        n = test.n
        pred = probs.argmax(axis=1)
        correct = pred == y
        acc = float(correct.mean())
        bal = metrics.balanced_accuracy(y, probs)
        base = metrics.baselines(y, k)
        majority = float(base["majority_accuracy"])
        maj_class = int(base["majority_class"])
        pcm = metrics.per_class_metrics(y, probs)
        recall, support = pcm["recall"], pcm["support"]
        p_vs_majority = _binom_sf(int(correct.sum()), n, majority)
        present = np.flatnonzero(support > 0)
        worst = present[np.argsort(recall[present], kind="stable")][:3]
        evidence = {
            "n_test": int(n),
            "accuracy": _round(acc),
            "balanced_accuracy": _round(bal),
            "majority_class": names[maj_class],
            "majority_baseline_accuracy": _round(majority),
            "majority_baseline_balanced_accuracy": _round(base["majority_balanced_accuracy"]),
            "p_accuracy_vs_majority": _round(p_vs_majority, 5),
            "worst_classes": [
                {"class": names[c], "support": int(support[c]), "recall": _round(recall[c]),
                 "recall_ci95": [_round(v) for v in wilson_interval(int(round(recall[c] * support[c])), int(support[c]))]}
                for c in worst
            ],
            "predicted_class_counts": {names[c]: int(v) for c, v in enumerate(np.bincount(pred, minlength=k)) if v},
            "log_loss": _round(metrics.log_loss(y, probs)),
            "prior_log_loss": _round(base["prior_log_loss"]),
            "brier": _round(metrics.brier_score(y, probs)),
            "prior_brier": _round(base["prior_brier"]),
        }
        hidden, _ = headline_hidden(y, k, self.threshold(ctx, "min_baseline_lift"))
        not_better = p_vs_majority >= self.threshold(ctx, "alpha") or acc - majority < self.threshold(ctx, "min_gain")
        worst_c = int(worst[0]) if worst.size else None
        metric_words = (
            f"log-loss {evidence['log_loss']:.3f} vs {evidence['prior_log_loss']:.3f} and Brier {evidence['brier']:.3f} vs "
            f"{evidence['prior_brier']:.3f} for predicting the class frequencies"
        )
        fix = self._threshold_fix(ctx, acc, bal, evidence)
        if hidden and not_better:
            # skill on the classes, at 0.5 or at a threshold proven on held-out data, that accuracy cannot show
            best_bal = bal if fix is None else max(bal, fix["balanced_accuracy_after"])
            per_class_skill = best_bal - base["majority_balanced_accuracy"] >= self.threshold(ctx, "min_balanced_gain")
            severity = "warning" if per_class_skill else "critical"
            title = (
                f"Accuracy {acc:.2f} is no better than always predicting '{names[maj_class]}' ({majority:.2f}); "
                f"balanced accuracy is {bal:.2f}"
            )
            if worst_c is not None and recall[worst_c] <= 0.1:
                title += f" and class '{names[worst_c]}' has recall {recall[worst_c]:.2f}"
            confidence = 0.95 if not per_class_skill else 0.8
            severity, title = self._unless_the_cut(ctx, fix, severity, title)
            return [self._finding(severity, confidence, title, evidence, metric_words, worst_c, recall)]
        findings = []
        if worst_c is not None and n > 0:
            s = int(support[worst_c])
            upper = wilson_interval(int(round(recall[worst_c] * s)), s)[1]
            class_hidden = (
                s >= self.threshold(ctx, "min_support")
                and upper <= self.threshold(ctx, "max_hidden_recall")
                and acc - upper >= self.threshold(ctx, "hidden_gap")
            )
            gap_ci = _paired_bootstrap_acc_minus_bal(y, correct, k, seed=ctx.seed)
            evidence["accuracy_minus_balanced_accuracy_ci95"] = [_round(gap_ci[0]), _round(gap_ci[1])]
            bal_hidden = acc - bal >= self.threshold(ctx, "hidden_gap_balanced") and gap_ci[0] > 0.05
            if class_hidden or bal_hidden:
                lost = [names[c] for c in present if support[c] >= self.threshold(ctx, "min_support")
                        and wilson_interval(int(round(recall[c] * support[c])), int(support[c]))[1] <= self.threshold(ctx, "max_hidden_recall")]
                evidence["near_zero_recall_classes"] = lost
                if class_hidden:
                    title = (
                        f"Accuracy {acc:.2f} hides that class '{names[worst_c]}' is almost never recognised "
                        f"(recall {recall[worst_c]:.2f} on {s} examples); balanced accuracy is {bal:.2f}"
                    )
                else:
                    title = f"Accuracy {acc:.2f} overstates the per-class performance: balanced accuracy is {bal:.2f}"
                severity, title = self._unless_the_cut(ctx, fix, "warning", title)
                findings.append(self._finding(severity, 0.85, title, evidence, metric_words, worst_c, recall))
        return findings

    @staticmethod
    def _threshold_fix(ctx: Context, acc: float, bal: float, evidence: dict) -> dict | None:
        """What the binary decision-threshold intervention recovers, when it is proven (else None).

        The intervention (`whylow.checks.threshold.threshold_intervention`)
        chooses a threshold on held-out data and re-measures on the test rows;
        it is proven when its paired test is significant and the gain is at
        least decision-threshold's ``min_gain``. Also recorded in ``evidence``.
        """
        iv = threshold_intervention(ctx)
        if iv is None or not iv["proven"]:
            return None
        after = iv["at_threshold"]["balanced_accuracy"]
        hidden = acc - bal
        fix = {
            "threshold": _round(iv["threshold"]),
            "fitted_on": iv["fitted_on"],
            "balanced_accuracy_after": _round(after),
            "balanced_accuracy_gain": _round(after - bal),
            "share_of_hidden_gap": _round((after - bal) / hidden) if hidden > 0 else None,
        }
        evidence["threshold_fix"] = fix
        return fix

    def _unless_the_cut(self, ctx: Context, fix: dict | None, severity: str, title: str) -> tuple[str, str]:
        """Info instead of ``severity`` when moving the binary cut recovers most of what accuracy hides.

        The hidden part is ``accuracy - balanced accuracy``. When the proven
        threshold fix raises balanced accuracy by at least ``threshold_share``
        of it, the model has the skill and the 0.5 cut hides it:
        decision-threshold is the cause to act on, and this finding only says
        how the headline looked.
        """
        share = None if fix is None else fix["share_of_hidden_gap"]
        if share is None or share < self.threshold(ctx, "threshold_share"):
            return severity, title
        return "info", (
            f"{title}; moving the decision threshold to {fix['threshold']:.2f} recovers balanced accuracy "
            f"{fix['balanced_accuracy_after']:.2f} (see decision-threshold)"
        )

    def _finding(self, severity, confidence, title, evidence, metric_words, worst_c, recall) -> Finding:
        worst = evidence["worst_classes"][0] if evidence["worst_classes"] else None
        worst_words = f" (class '{worst['class']}': {worst['recall']:.2f})" if worst is not None else ""
        fix = (
            f"Report balanced accuracy ({evidence['balanced_accuracy']:.2f}) and per-class recall{worst_words} next to "
            f"accuracy, compare every metric with the majority baseline ({evidence['majority_baseline_accuracy']:.2f}), "
            f"and judge the probabilities by {metric_words}; choose the model and the decision threshold on balanced "
            "accuracy or per-class recall, not on accuracy."
        )
        return Finding(code="misleading-metric", severity=severity, confidence=confidence, title=title, evidence=evidence, fix=fix, check=self.name)


@register
class SmallSampleCheck(Check):
    """The test split is too small for its headline metrics to be trusted."""

    name = "small-sample"
    codes = ("small-sample",)
    requires = ("test.y", "test.probs")
    #: Accuracy 95% interval width for a warning (±10 points).
    warn_width = 0.20
    #: ... for info.
    info_width = 0.10
    #: Per-class support below which a class's recall is too uncertain (info).
    min_class_support = 30
    #: Per-class support below which a class's recall is meaningless; a warning when most classes are below it.
    warn_class_support = 8
    #: Interval width the suggested test size aims at.
    target_width = 0.05
    #: Bootstrap replicates.
    n_boot = 200

    def run(self, ctx: Context) -> list[Finding]:
        test = ctx.test
        y, probs, k = test.y, test.probs, ctx.n_classes
        names = ctx.class_names
        n = test.n
        ci = ctx.cached(
            f"small-sample:ci:{ctx.seed}",
            lambda: metrics.bootstrap_ci(y, probs, metrics=("accuracy", "balanced_accuracy", "log_loss"), n_boot=int(self.threshold(ctx, "n_boot")), seed=ctx.seed),
        )
        n_correct = int((probs.argmax(axis=1) == y).sum())
        acc = n_correct / n
        lo, hi = wilson_interval(n_correct, n)
        width = hi - lo
        support = np.bincount(y, minlength=k)
        present = np.flatnonzero(support > 0)
        small = present[support[present] < self.threshold(ctx, "min_class_support")]
        small = small[np.argsort(support[small], kind="stable")]
        tiny = present[support[present] < self.threshold(ctx, "warn_class_support")]
        target = self.threshold(ctx, "target_width")
        p = min(max(acc, 0.05), 0.95)
        n_needed = int(math.ceil((2 * 1.96) ** 2 * p * (1 - p) / target**2))
        recall = metrics.per_class_metrics(y, probs)["recall"]
        evidence = {
            "n_test": int(n),
            "accuracy": _round(acc),
            "accuracy_ci95": [_round(lo), _round(hi)],
            "accuracy_ci_width": _round(width),
            "accuracy_ci_method": "Wilson score interval",
            "accuracy_bootstrap_ci95": [_round(v) for v in ci["accuracy"]],
            "balanced_accuracy_ci95": [_round(v) for v in ci["balanced_accuracy"]],
            "log_loss_ci95": [_round(v) for v in ci["log_loss"]],
            "smallest_class_support": int(support[present].min()) if present.size else 0,
            "classes_below_min_support": [
                {"class": names[c], "support": int(support[c]), "recall": _round(recall[c]),
                 "recall_ci95": [_round(v) for v in wilson_interval(int(round(recall[c] * support[c])), int(support[c]))]}
                for c in small[:5]
            ],
            "n_classes_below_min_support": int(small.size),
            "n_test_for_target_width": n_needed,
            "target_width": target,
        }
        most_tiny = present.size > 0 and tiny.size > present.size / 2
        if width > self.threshold(ctx, "warn_width") or most_tiny:
            severity = "warning"
        elif width > self.threshold(ctx, "info_width") or small.size:
            severity = "info"
        else:
            return []
        if width > self.threshold(ctx, "info_width") or most_tiny:
            title = (
                f"Only {n} test examples: accuracy {acc:.2f} is known only to within {lo:.2f} to {hi:.2f} (95% interval)"
                + (f" and {tiny.size} of {present.size} classes have fewer than {self.threshold(ctx, 'warn_class_support')} examples" if most_tiny else "")
                + ", too little to compare models or trust small changes"
            )
        else:
            title = (
                f"{small.size} class{'es' if small.size != 1 else ''} ha{'ve' if small.size != 1 else 's'} fewer than "
                f"{self.threshold(ctx, 'min_class_support')} test examples (smallest: '{names[small[0]]}' with {support[small[0]]}): "
                "their per-class recall is too uncertain to trust"
            )
        fix = (
            f"Evaluate on more data: about {n_needed} test examples give a ±{target / 2:.3f} interval at this accuracy"
            + (f", and at least {self.threshold(ctx, 'min_class_support')} per class" if small.size else "")
            + "; until then report the 95% intervals with every metric and do not act on differences inside them"
            + " (cross-validation over train+test gives more stable estimates when data is scarce)."
        )
        confidence = float(np.clip(0.6 + width, 0.6, 0.95)) if severity == "warning" else 0.6
        return [Finding(code="small-sample", severity=severity, confidence=confidence, title=title, evidence=evidence, fix=fix, check=self.name)]
