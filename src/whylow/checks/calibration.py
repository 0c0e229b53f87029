"""Calibration: ``overconfidence`` and ``underconfidence``, fixed and verified by temperature scaling.

The seed's question "are the predictions low because the model classifies
badly, or because its scores are off?" is answered here for the scores: the
accuracy is stated next to the confidence, and only a systematic, fixable
mismatch between the two is a finding. Whether the accuracy itself is too
low is left to the other checks.

Measurements (per labelled held-out split: test, and val when present)
----------------------------------------------------------------------
Top-label confidence ``c_i`` (largest probability) and outcome
``k_i = 1[argmax == y_i]``:

- ``gap = mean(c) - accuracy``: the signed calibration error (positive =
  overconfident). Any binned signed ECE, equal-mass or equal-width, equals
  this gap exactly (the bin weights telescope), so it is one statistic.
- ECE with equal-mass bins (``n_bins`` = n/25 clipped to [5, 15], so each bin
  has enough samples), ECE with 15 equal-width bins, smooth ECE (Błasiok &
  Nakkiran 2023), NLL, Brier score, accuracy and mean confidence.
- Reliability curves (15 equal-width bins, as predicted and after scaling)
  and confidence histograms (correct vs wrong) are kept as report artifacts.

Statistics
----------
1. **How far off are the scores?** Under perfect top-label calibration
   ``E[k | c] = c``, so the residuals ``r_i = c_i - k_i`` are independent with
   mean 0 and variance ``c_i (1 - c_i)``; ``z = sum(r) / sqrt(sum c (1 - c))``
   is standard normal under that null (`gap_test`). The gap, its interval and
   p-value are evidence; only their sign is required to agree with the
   temperature (``T > 1`` softens = overconfident, ``T < 1`` sharpens =
   underconfident). An accurate model can be badly overconfident with a tiny
   gap (97% accuracy, 99.5% mean confidence, its few errors scored 0.99), so
   the gap is not the effect size.
2. **Does the temperature transfer to held-out data?** ``T`` is fitted by
   NLL on the validation split (without one: two-fold cross-fitting on the
   test split, see `whylow.fixes.temperature.cross_fit`) and applied to the
   test split. The per-sample NLL gains ``d_i`` are tested against the null
   that the test scores were calibrated (`calibrated_null_test`: under it,
   the mean and variance of every ``d_i`` are known exactly from the scores,
   so the test keeps its power when a handful of confident errors carry
   most of the log-loss, where a paired test on the empirical spread of
   ``d`` has almost none; that paired test is kept in the evidence, as is a
   likelihood-ratio test of ``T = 1`` on the fitting split,
   `temperature_lr_test`). ``p < alpha`` (0.01) makes it significant.
3. **Is it large enough to matter?** The effect a user acts on is the
   log-loss a single division by ``T`` removes, required both on the split
   ``T`` was fitted on and on the held-out test split (the smaller of the
   two relative reductions: one split alone is noisy when a dozen errors
   carry the log-loss), or how far the scores move towards the accuracy (the
   held-out equal-mass ECE drop, in probability points). ``warning`` from a
   relative reduction of ``min_nll_gain`` (10%); ``critical`` from
   ``critical_nll_gain`` (20%) or an ECE drop of ``critical_ece_drop``
   (0.10). Smaller significant gains are ``info`` down to
   ``min_reported_gain`` (2% held-out) when the confidence gap is at least
   ``min_gap`` (0.03), and nothing below.
4. **Ordinary miscalibration stays quiet.** Many healthy models sit at a
   validation temperature of 0.8-1.25. Simulated (10 and 2 classes, 100 and
   300 samples per split, calibrated logits scaled by 1.25 or 0.8, 100
   draws each of 32 settings from 43% to 97% accuracy), at most 3% of the
   draws of any setting reached warning; the ECE drop alone did so once.
5. **Scale or shift?** Scores can be off because they are too sharp / too
   flat (a temperature problem) or because they are shifted between classes
   (a bias: a misplaced threshold, skewed priors). When the fitting split has
   at least ``min_bias_per_class`` samples of every class (and there are at
   most ``max_affine_classes`` classes), a per-class bias alone and a
   temperature plus per-class biases are both fitted the same way and scored
   on the held-out test split; the temperature's own contribution is the
   NLL gain of the second over the first. Unless it is significant
   (`calibrated_null_test` against the bias-corrected scores, p < ``alpha``)
   and at least ``min_scale_gain`` (5%), the miscalibration is reported as a
   shift (info), and the threshold / prior checks own it.

Severity as in 3; a shift (5) caps it at ``info``. ``confidence`` is one
minus the held-out p-value, shrunk when the verified gain is small.

Words: underconfident scores are called "a calibration problem, not bad
classification" only when the test accuracy is within ``far_below`` (10
points, the underfitting check's warning deficit) of what the data allow:
the better of the cross-validated reference model (`whylow.checks.fit`) and
the model's own validation accuracy (`accuracy_allowed`, in the evidence).
Further below, the low scores are mostly bad classification: the title says
so, and the ranking attaches the finding to the underfitting or shift that
explains it. ``explains`` is the verified log-loss reduction, of the test
log-loss.

Vector scaling (per-class scale and bias) is also fitted when the fitting
split has at least ``min_vector_per_class`` samples of every class; the
finding reports whichever of the two has the lower held-out NLL (both
numbers are in the evidence).

Shared evidence: ``ctx.cached("temperature", ...)`` holds ``{"scaler":
TemperatureScaler, "fitted_on": "val"|"test", "cross_fit": bool, "heldout":
{"test": probs}, "half_temperatures": [...] or None, "log_probs": {split:
float32 log-probabilities}}`` so other checks can reuse the fitted scaler and
the held-out calibrated test probabilities.

Cost: the test log-probabilities are computed once (float32); a temperature
fit reads at most ``max_fit_samples`` rows (20,000) per NLL pass. Vector
scaling and the shift-versus-scale fits run only up to
``max_affine_classes`` classes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from whylow import metrics
from whylow.checks import Check, register
from whylow.context import Context
from whylow.fixes.temperature import TemperatureScaler, VectorScaler, cross_fit, to_logits
from whylow.report.finding import Finding, make_explains

__all__ = ["CalibrationCheck", "accuracy_allowed", "calibrated_null_test", "calibration_stats", "gap_test", "paired_nll_test", "temperature_lr_test"]

#: Confidence-histogram bins for the report.
_HIST_EDGES = np.linspace(0.0, 1.0, 21)


def gap_test(y_true: np.ndarray, probs: np.ndarray, alpha: float = 0.01) -> dict:
    """Test ``mean confidence - accuracy = 0`` (calibration in the large).

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    probs : ndarray of shape (n_samples, n_classes)
    alpha : float
        Level of the two-sided test and of the interval.

    Returns
    -------
    dict
        ``gap``, ``ci`` (Wald interval at ``1 - alpha``), ``z`` and
        ``p_value`` (score test under perfect calibration).
    """
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(probs.shape[0]), pred]
    r = conf - (pred == y_true)
    n = r.size
    gap = float(r.mean())
    null_var = float(np.sum(conf * (1.0 - conf)))
    if null_var > 0:
        z = float(r.sum() / math.sqrt(null_var))
        p = float(2 * stats.norm.sf(abs(z)))
    else:  # every confidence is exactly 0 or 1: any error is impossible under the null
        z = math.copysign(math.inf, gap) if gap else 0.0
        p = 0.0 if gap else 1.0
    half = float(stats.norm.isf(alpha / 2) * r.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return {"gap": gap, "ci": [gap - half, gap + half], "z": z, "p_value": p}


def paired_nll_test(nll_before: np.ndarray, nll_after: np.ndarray) -> dict:
    """One-sided paired z-test that the mean per-sample NLL went down.

    Returns
    -------
    dict
        ``before``, ``after`` (mean NLL), ``relative_gain`` (``1 - after/before``),
        ``z`` and ``p_value``.
    """
    d = nll_before - nll_after
    before, after = float(nll_before.mean()), float(nll_after.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    if sd > 0:
        z = float(d.mean() / (sd / math.sqrt(d.size)))
        p = float(stats.norm.sf(z))
    else:
        z, p = (math.inf, 0.0) if d.mean() > 0 else (0.0, 1.0)
    rel = 1.0 - after / before if before > 0 else 0.0
    return {"before": before, "after": after, "relative_gain": rel, "z": z, "p_value": p}


def calibrated_null_test(y_true: np.ndarray, probs_before: np.ndarray, probs_after: np.ndarray) -> dict:
    """One-sided test that a held-out log-loss gain is larger than calibrated scores would allow.

    Null hypothesis: the scores before are calibrated, i.e. every label is
    drawn from its own row of ``probs_before``. Then the per-sample gain
    ``d_i = log q_i[y_i] - log p_i[y_i]`` (``q`` = ``probs_after``, fitted on
    other data) has mean ``-KL(p_i || q_i) <= 0`` and variance
    ``Var_{k ~ p_i}(log q_ik - log p_ik)``, both known exactly, so
    ``z = (sum d + sum KL) / sqrt(sum Var)`` is approximately standard normal
    (a sum of independent bounded terms) and ``p = P(Z >= z)``.

    Unlike the paired test on the empirical spread of ``d`` (`paired_nll_test`),
    its variance does not come from the few wrong, confidently scored samples
    that carry most of an accurate model's log-loss, so it keeps its power
    when there are only a handful of errors (a 97%-accurate model on 300 rows).

    Returns
    -------
    dict
        ``gain`` (mean ``d``), ``null_gain`` (its mean under the null, ``<= 0``),
        ``z`` and ``p_value``.
    """
    lo, hi = metrics.LOG_EPS, 1.0 - metrics.LOG_EPS
    log_ratio = np.log(np.clip(probs_after, lo, hi)) - np.log(np.clip(probs_before, lo, hi))
    d = log_ratio[np.arange(y_true.shape[0]), y_true]
    mean_null = np.sum(probs_before * log_ratio, axis=1)
    var_null = float(np.sum(np.sum(probs_before * log_ratio**2, axis=1) - mean_null**2))
    excess = float(d.sum() - mean_null.sum())
    if var_null > 0:
        z = excess / math.sqrt(var_null)
        p = float(stats.norm.sf(z))
    else:  # the two score sets agree wherever the scores put mass
        z, p = (math.inf, 0.0) if excess > 0 else (0.0, 1.0)
    return {"gain": float(d.mean()), "null_gain": float(mean_null.mean()), "z": z, "p_value": p}


def temperature_lr_test(y_true: np.ndarray, probs: np.ndarray, scaled: np.ndarray) -> dict:
    """Likelihood-ratio test of ``T = 1`` on the split the temperature was fitted on.

    ``2 * (sum NLL(probs) - sum NLL(scaled))`` is asymptotically chi-squared
    with one degree of freedom when the scores are calibrated (Wilks: one
    fitted parameter, ``T``, nested at ``T = 1``).

    Returns
    -------
    dict
        ``statistic``, ``p_value`` and ``relative_gain`` (``1 - NLL(scaled) / NLL(probs)``
        on that split: in-sample, so an upper bound of what the temperature can do there).
    """
    before, after = float(np.sum(_nll(y_true, probs))), float(np.sum(_nll(y_true, scaled)))
    lr = max(0.0, 2.0 * (before - after))
    return {"statistic": lr, "p_value": float(stats.chi2.sf(lr, 1)), "relative_gain": 1.0 - after / before if before > 0 else 0.0}


def _n_mass_bins(n: int) -> int:
    return int(np.clip(n // 25, 5, 15))


def calibration_stats(y_true: np.ndarray, probs: np.ndarray, alpha: float = 0.01) -> dict:
    """Headline calibration numbers of one split (JSON-able).

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``mean_confidence``, ``gap`` (and its interval,
        z, p-value), ``ece_mass`` (with ``n_bins_mass``), ``ece_width``,
        ``smooth_ece``, ``log_loss``, ``brier``.
    """
    n = int(y_true.shape[0])
    g = gap_test(y_true, probs, alpha)
    nb = _n_mass_bins(n)
    return {
        "n": n,
        "accuracy": metrics.accuracy(y_true, probs),
        "mean_confidence": metrics.mean_confidence(probs),
        "gap": g["gap"],
        "gap_ci": g["ci"],
        "gap_z": g["z"],
        "gap_p_value": g["p_value"],
        "ece_mass": metrics.ece(y_true, probs, n_bins=nb, binning="mass"),
        "n_bins_mass": nb,
        "ece_width": metrics.ece(y_true, probs, n_bins=15, binning="width"),
        "smooth_ece": metrics.smooth_ece(y_true, probs),
        "log_loss": metrics.log_loss(y_true, probs),
        "brier": metrics.brier_score(y_true, probs),
    }


def _nll(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-sample NLL, clipped as `whylow.metrics.log_loss` clips (so the means agree with the report)."""
    p = probs[np.arange(y_true.shape[0]), y_true]
    return -np.log(np.clip(p, metrics.LOG_EPS, 1.0 - metrics.LOG_EPS))


def _confidence_hist(y_true: np.ndarray, probs: np.ndarray) -> dict:
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(probs.shape[0]), pred]
    right = pred == y_true
    return {
        "bin_edges": _HIST_EDGES,
        "count_correct": np.histogram(conf[right], _HIST_EDGES)[0],
        "count_wrong": np.histogram(conf[~right], _HIST_EDGES)[0],
    }


def _fit_calibration(ctx: Context, max_fit_samples: int) -> dict:
    """Fit temperature scaling on val (or cross-fit on test); the value behind ``ctx.cached("temperature")``."""
    test = ctx.test
    val = next(iter(ctx.labelled("val")), None)
    z_test, kind = to_logits(probs=test.probs, dtype=np.float32)
    make = lambda: TemperatureScaler(max_fit_samples=max_fit_samples, seed=ctx.seed)  # noqa: E731
    if val is not None and len(np.unique(val.y)) >= 2:
        z_val, _ = to_logits(probs=val.probs, dtype=np.float32)
        scaler = make()._fit_trusted(val.y, z_val, kind)
        return {
            "scaler": scaler,
            "fitted_on": "val",
            "cross_fit": False,
            "heldout": {"test": scaler._transform_trusted(z_test, kind)},
            "half_temperatures": None,
            "log_probs": {"test": z_test, "val": z_val},
        }
    heldout, halves = cross_fit(make, test.y, z_test, seed=ctx.seed, kind=kind)
    scaler = make()._fit_trusted(test.y, z_test, kind)
    return {
        "scaler": scaler,
        "fitted_on": "test",
        "cross_fit": True,
        "heldout": {"test": heldout},
        "half_temperatures": [h.temperature_ for h in halves],
        "log_probs": {"test": z_test},
    }


@register
class CalibrationCheck(Check):
    """Over- and underconfidence on held-out splits, verified by temperature (or vector) scaling."""

    name = "calibration"
    codes = ("overconfidence", "underconfidence")
    requires = ("test.y", "test.probs")

    #: Level of the gap test and of the held-out NLL test.
    alpha = 0.01
    #: Smallest |mean confidence - accuracy| for a small (info) miscalibration to be reported; warnings need none.
    min_gap = 0.03
    #: Smallest relative held-out NLL reduction that matters (warning).
    min_nll_gain = 0.10
    #: Smaller significant held-out NLL reductions are not reported at all, not even as info.
    min_reported_gain = 0.02
    #: Relative held-out NLL reduction that makes it critical.
    critical_nll_gain = 0.20
    #: Held-out equal-mass ECE reduction that makes it critical.
    critical_ece_drop = 0.10
    #: Samples of every class the fitting split needs before vector scaling is tried.
    min_vector_per_class = 50
    #: Samples of every class the fitting split needs for the shift-versus-scale comparison.
    min_bias_per_class = 10
    #: Smallest relative held-out NLL gain of a temperature on top of per-class biases for a scale problem.
    min_scale_gain = 0.05
    #: Vector scaling and the shift-versus-scale comparison run up to this many classes.
    max_affine_classes = 100
    #: Fewer labelled test samples than this: measure only, judge nothing.
    min_samples = 40
    #: Rows used to fit a scaler (a seeded subset beyond that): plenty for one temperature.
    max_fit_samples = 20_000
    #: Test accuracy this far below what the data allow (reference or validation accuracy) is bad
    #: classification, whatever the scores say (the underfitting check's warning deficit).
    far_below = 0.10

    def run(self, ctx: Context) -> list[Finding]:
        alpha = float(self.threshold(ctx, "alpha"))
        test = ctx.test
        per_split = {}
        for s in ctx.labelled("val", "test"):
            per_split[s.name] = calibration_stats(s.y, s.probs, alpha)
            ctx.add_artifact(self.name, f"reliability:{s.name}", metrics.reliability_curve(s.y, s.probs, 15, "width"))
            ctx.add_artifact(self.name, f"confidence_hist:{s.name}", _confidence_hist(s.y, s.probs))
        if test.n < int(self.threshold(ctx, "min_samples")) or len(np.unique(test.y)) < 2:
            return []
        cal = ctx.cached("temperature", lambda: _fit_calibration(ctx, int(self.threshold(ctx, "max_fit_samples"))))
        scaler: TemperatureScaler = cal["scaler"]
        t = float(scaler.temperature_)
        scaled_test = cal["heldout"]["test"]
        ctx.add_artifact(self.name, "reliability:test:scaled", metrics.reliability_curve(test.y, scaled_test, 15, "width"))
        ctx.add_artifact(self.name, "temperature:test", t if not cal["cross_fit"] else float(np.exp(np.mean(np.log(cal["half_temperatures"])))))
        ctx.add_artifact(self.name, "temperature", t)
        val = ctx.split("val")
        if cal["fitted_on"] == "val":
            scaled_val = scaler._transform_trusted(cal["log_probs"]["val"], "log_probs")
            ctx.add_artifact(self.name, "reliability:val:scaled", metrics.reliability_curve(val.y, scaled_val, 15, "width"))
            ctx.add_artifact(self.name, "temperature:val", t)

        z_test = cal["log_probs"]["test"]
        nll_before = _nll(test.y, test.probs)
        temp = self._verify(test.y, test.probs, scaled_test, nll_before, alpha)
        temp["fit_lr"] = self._fit_lr(ctx, cal)
        candidates = {"temperature": temp}
        vec = self._affine(ctx, cal, "vector", int(self.threshold(ctx, "min_vector_per_class")), z_test)
        if vec is not None:
            candidates["vector"] = self._verify(test.y, test.probs, vec, nll_before, alpha)
            ctx.add_artifact(self.name, "reliability:test:vector_scaling", metrics.reliability_curve(test.y, vec, 15, "width"))
        method = min(candidates, key=lambda m: candidates[m]["nll"]["after"])
        chosen = candidates[method]
        shift = self._shift_or_scale(ctx, cal, z_test, nll_before)
        gap = gap_test(test.y, test.probs, alpha)
        finding = self._judge(ctx, per_split, gap, t, cal, method, chosen, candidates, shift, alpha)
        return [finding] if finding is not None else []

    # -- measurement -----------------------------------------------------------
    @staticmethod
    def _verify(y, probs, scaled, nll_before, alpha) -> dict:
        nb = _n_mass_bins(y.size)
        return {
            "nll": paired_nll_test(nll_before, _nll(y, scaled)),
            "null": calibrated_null_test(y, probs, scaled),
            "ece_before": metrics.ece(y, probs, n_bins=nb, binning="mass"),
            "ece_after": metrics.ece(y, scaled, n_bins=nb, binning="mass"),
            "smooth_ece_before": metrics.smooth_ece(y, probs),
            "smooth_ece_after": metrics.smooth_ece(y, scaled),
            "brier_before": metrics.brier_score(y, probs),
            "brier_after": metrics.brier_score(y, scaled),
            "accuracy_after": metrics.accuracy(y, scaled),
            "gap_after": gap_test(y, scaled, alpha)["gap"],
        }

    @staticmethod
    def _fit_lr(ctx: Context, cal: dict) -> dict:
        """`temperature_lr_test` on the fitting split (val, or the whole test split when cross-fitted)."""
        fit = ctx.split("val") if cal["fitted_on"] == "val" else ctx.test
        z = cal["log_probs"][fit.name]
        return temperature_lr_test(fit.y, fit.probs, cal["scaler"]._transform_trusted(z, "log_probs"))

    def _affine(self, ctx: Context, cal: dict, mode: str, need: int, z_test) -> np.ndarray | None:
        """Held-out test probabilities of a `VectorScaler` in ``mode``, or None without enough samples per class.

        Fitted on the validation split when the temperature was, else cross-fitted on the test split
        (each half then needs ``need`` samples of every class).
        """
        if ctx.n_classes > int(self.threshold(ctx, "max_affine_classes")):
            return None
        test = ctx.test
        make = lambda: VectorScaler(mode=mode, max_fit_samples=int(self.threshold(ctx, "max_fit_samples")), seed=ctx.seed)  # noqa: E731
        if cal["fitted_on"] == "val":
            val = ctx.split("val")
            if np.bincount(val.y, minlength=ctx.n_classes).min() < need:
                return None
            return make()._fit_trusted(val.y, cal["log_probs"]["val"], "log_probs")._transform_trusted(z_test, "log_probs")
        if np.bincount(test.y, minlength=ctx.n_classes).min() < 2 * need:
            return None
        return cross_fit(make, test.y, z_test, seed=ctx.seed, kind="log_probs")[0]

    def _shift_or_scale(self, ctx: Context, cal: dict, z_test, nll_before) -> dict | None:
        """Is the miscalibration a shift between classes (a bias) or a matter of scale (a temperature)?

        Compares, on held-out test data, a per-class bias alone with one temperature plus per-class
        biases: the temperature's own contribution is the paired NLL gain of the second over the first.
        None when the fitting split has too few samples per class for the biases.
        """
        need = int(self.threshold(ctx, "min_bias_per_class"))
        biased = self._affine(ctx, cal, "bias", need, z_test)
        if biased is None:
            return None
        both = self._affine(ctx, cal, "shared", need, z_test)
        y = ctx.test.y
        nll_bias = _nll(y, biased)
        return {
            "shift_only": paired_nll_test(nll_before, nll_bias),
            "scale_after_shift": paired_nll_test(nll_bias, _nll(y, both)),
            "scale_after_shift_null": calibrated_null_test(y, biased, both),
        }

    # -- judgement -------------------------------------------------------------
    def _judge(self, ctx, per_split, gap, t, cal, method, chosen, candidates, shift, alpha) -> Finding | None:
        nll, null = chosen["nll"], chosen["null"]
        over = t > 1.0
        direction_ok = t != 1.0 and (gap["gap"] > 0) == over
        fit_lr = candidates["temperature"]["fit_lr"]
        p_value = null["p_value"]
        gain_sig = p_value < alpha and nll["relative_gain"] >= float(self.threshold(ctx, "min_reported_gain"))
        if not (gain_sig and direction_ok):
            return None
        effect = min(nll["relative_gain"], fit_lr["relative_gain"])  # seen where T was fitted and on held-out data
        ece_drop = chosen["ece_before"] - chosen["ece_after"]
        big_ece_drop = ece_drop >= float(self.threshold(ctx, "critical_ece_drop"))
        meaningful = effect >= float(self.threshold(ctx, "min_nll_gain")) or big_ece_drop
        crit_gain = float(self.threshold(ctx, "critical_nll_gain"))
        scale_matters = shift is None or (
            shift["scale_after_shift_null"]["p_value"] < alpha
            and shift["scale_after_shift"]["relative_gain"] >= float(self.threshold(ctx, "min_scale_gain"))
        )
        shift_explains = (
            not scale_matters
            and shift["shift_only"]["p_value"] < alpha
            and shift["shift_only"]["relative_gain"] >= float(self.threshold(ctx, "min_nll_gain"))
        )
        if not meaningful and abs(gap["gap"]) < float(self.threshold(ctx, "min_gap")):
            return None
        if not scale_matters:
            severity = "info"
        elif not meaningful:
            severity = "info"
        elif effect >= crit_gain or big_ece_drop:
            severity = "critical"
        else:
            severity = "warning"
        confidence = (1.0 - p_value) * min(1.0, 0.6 + 0.4 * nll["relative_gain"] / crit_gain)

        test_stats = per_split["test"]
        acc, conf = test_stats["accuracy"], test_stats["mean_confidence"]
        base = metrics.baselines(ctx.test.y, ctx.n_classes)
        allowed = accuracy_allowed(ctx, per_split)
        code = "overconfidence" if over else "underconfidence"
        wrong_conf = _mean_confidence_when_wrong(ctx.test.y, ctx.test.probs)
        loss = f"held-out test log-loss {nll['before']:.3f} → {nll['after']:.3f} ({-nll['relative_gain']:+.0%})"
        if over:
            wrong = "" if wrong_conf is None else f", and its wrong predictions are scored {wrong_conf:.2f} on average"
            title = (
                f"Overconfident: mean confidence {conf:.2f} but accuracy {acc:.2f} on the test split{wrong}; "
                f"temperature T={t:.2f} fixes the scores ({loss})"
            )
            reading = (
                f"The model is right {acc:.1%} of the time (majority-class baseline {base['majority_accuracy']:.1%}) "
                f"but claims {conf:.1%} on average{wrong}: the scores, not only the classifications, are off, and each "
                f"confident mistake costs a large log-loss. Whether {acc:.1%} is itself too low is judged by the other "
                f"checks; scaling fixes the scores, not the accuracy."
            )
        elif allowed is not None and allowed["accuracy"] - acc >= float(self.threshold(ctx, "far_below")):
            title = (
                f"Underconfident (accuracy {acc:.2f}, mean confidence {conf:.2f} on the test split), but the accuracy itself "
                f"is far below what the data allow ({allowed['accuracy']:.2f}, {allowed['source']}): the low scores are mostly "
                f"bad classification; temperature T={t:.2f} only rescales them"
            )
            reading = (
                f"The model classifies {acc:.1%} of the test samples correctly and gives its predicted class {conf:.1%} on "
                f"average, while {allowed['source']} reaches {allowed['accuracy']:.1%}. Sharpening the scores makes them match "
                f"the accuracy, but the accuracy is the problem: see the fit and shift findings."
            )
        else:
            title = (
                f"Underconfident: the predictions are right more often than their scores say "
                f"(accuracy {acc:.2f}, mean confidence {conf:.2f} on the test split); the low scores are a "
                f"calibration problem, not bad classification (temperature T={t:.2f} fixes them: {loss})"
            )
            reading = (
                f"The model classifies {acc:.1%} of the test samples correctly (majority-class baseline "
                f"{base['majority_accuracy']:.1%}) yet gives its predicted class only {conf:.1%} on average: "
                f"low scores that are right. Sharpening the scores recovers probabilities that match accuracy."
            )
        if shift_explains:
            so = shift["shift_only"]
            title = (
                f"The scores are off (mean confidence {conf:.2f} vs accuracy {acc:.2f} on the test split) mainly "
                f"because they are shifted between classes, not because of their scale: a per-class bias fixes most "
                f"of it (held-out log-loss {so['before']:.3f} → {so['after']:.3f}); see the threshold and prior findings"
            )
        elif severity == "info":
            title = (
                f"Slightly {'over' if over else 'under'}confident (mean confidence {conf:.2f} vs accuracy {acc:.2f} "
                f"on the test split, T={t:.2f}): real but too small to explain low predictions"
            )
        where = (
            "fitted on the validation split"
            if cal["fitted_on"] == "val"
            else "fitted on the test split (no validation split; verified by two-fold cross-fitting)"
        )
        if method == "temperature":
            fix = (
                f"Divide the logits by T={t:.2f} before the softmax ({where}; "
                f"`whylow calibrate --val VAL --out calibrator.json` saves it). Accuracy is unchanged; only the scores move."
            )
        else:
            fix = (
                f"Apply vector scaling (a scale and a bias per class on the logits, {where}; "
                f"`whylow calibrate --val VAL --method vector --out calibrator.json` saves it); "
                f"temperature scaling alone (T={t:.2f}) does less well on held-out data."
            )
        fix += (
            " For the next training run: weight decay, early stopping on validation loss, or mild label smoothing."
            if over
            else " For the next training run: less label smoothing / mixup / regularisation that shrinks the logits."
        )
        if shift_explains:
            fix = (
                "Correct the shift between classes, not the temperature: "
                + (
                    "move the decision threshold (see the decision-threshold finding)"
                    if ctx.n_classes == 2
                    else "a per-class bias or prior correction (see the class-imbalance and label-shift findings)"
                )
                + "; a temperature adds little once the shift is corrected."
            )
        evidence = {
            "accuracy": acc,
            "mean_confidence": conf,
            "mean_confidence_when_wrong": wrong_conf,
            "gap": gap["gap"],
            "gap_ci": gap["ci"],
            "gap_z": gap["z"],
            "gap_p_value": gap["p_value"],
            "alpha": alpha,
            "majority_accuracy": base["majority_accuracy"],
            "reading": reading,
            "temperature": t,
            "fitted_on": cal["fitted_on"],
            "cross_fit": cal["cross_fit"],
            "method": method,
            "log_loss_before": nll["before"],
            "log_loss_after": nll["after"],
            "log_loss_relative_gain": nll["relative_gain"],
            "log_loss_p_value": null["p_value"],
            "log_loss_z": null["z"],
            "log_loss_paired_p_value": nll["p_value"],
            "temperature_lr_p_value": fit_lr["p_value"],
            "log_loss_relative_gain_where_fitted": fit_lr["relative_gain"],
            "ece_before": chosen["ece_before"],
            "ece_after": chosen["ece_after"],
            "ece_binning": f"equal-mass, {_n_mass_bins(ctx.test.n)} bins",
            "smooth_ece_before": chosen["smooth_ece_before"],
            "smooth_ece_after": chosen["smooth_ece_after"],
            "brier_before": chosen["brier_before"],
            "brier_after": chosen["brier_after"],
            "mean_confidence_gap_after": chosen["gap_after"],
            "splits": per_split,
        }
        if shift is not None:
            evidence["shift_vs_scale"] = {
                "log_loss_bias_only": shift["shift_only"]["after"],
                "bias_only_relative_gain": shift["shift_only"]["relative_gain"],
                "log_loss_temperature_and_bias": shift["scale_after_shift"]["after"],
                "temperature_gain_after_bias": shift["scale_after_shift"]["relative_gain"],
                "temperature_gain_after_bias_p_value": shift["scale_after_shift_null"]["p_value"],
            }
        if allowed is not None:
            evidence["accuracy_allowed"] = allowed
        if cal["half_temperatures"] is not None:
            evidence["half_temperatures"] = cal["half_temperatures"]
        if len(candidates) > 1:
            evidence["heldout_log_loss_by_method"] = {m: c["nll"]["after"] for m, c in candidates.items()}
        return Finding(
            code=code,
            severity=severity,
            confidence=confidence,
            title=title,
            evidence=evidence,
            fix=fix,
            verified=None if shift_explains else {"metric": "log_loss", "before": nll["before"], "after": nll["after"]},
            explains=None if shift_explains else make_explains("log_loss", nll["before"] - nll["after"], nll["before"], "the test log-loss"),
        )


def _mean_confidence_when_wrong(y_true: np.ndarray, probs: np.ndarray) -> float | None:
    """Mean top-label confidence of the misclassified samples; None when there are none."""
    pred = probs.argmax(axis=1)
    wrong = pred != y_true
    return float(probs[wrong, pred[wrong]].mean()) if wrong.any() else None


def accuracy_allowed(ctx: Context, per_split: dict) -> dict | None:
    """What the data allow: the best of the cross-validated reference model's and the validation accuracy.

    Returns
    -------
    dict or None
        ``{"accuracy", "source"}``; None when neither is available.
    """
    from whylow.checks.fit import reference_fit

    options = []
    ref = reference_fit(ctx)
    if ref is not None:
        options.append({"accuracy": float(ref["accuracy"]), "source": "a linear model cross-validated on the training data"})
    if "val" in per_split:
        options.append({"accuracy": float(per_split["val"]["accuracy"]), "source": "the same model on the validation split"})
    return max(options, key=lambda o: o["accuracy"], default=None)
