"""History check ``learning-rate``: a learning rate too high or too low, read from the training loss curve.

Only the *training* loss (``history["loss"]``) is read: validation loss
legitimately wobbles and rises when a model overfits (that is the
``overfitting`` check's evidence). ``history["lr"]``, when present, names the
learning rate in the title and the fix.

The curve heuristics (`analyse_loss_curve`), in order of precedence:

- **nan**: a NaN or infinite loss: training diverged numerically.
- **diverged**: the loss ends more than 5% above where it started (at least 3
  epochs), or at some epoch exceeds ``blowup_factor`` (2×) the loss of an
  uninformed model, ``max(log n_classes, prior NLL)`` (the loss a freshly
  initialised network starts near): updates overshoot so far that the model
  is worse than guessing.
- **jump**: the loss at least doubles from one epoch to the next, by at least
  10% of the curve's range (late wobbles of a nearly-zero loss do not count).
- **oscillating**: at least 5 epoch-to-epoch changes, at least half of the
  consecutive changes flip sign, increases make up at least 30% of the total
  movement, and the median change is at least 10% of the curve's range.
- **stuck**: the mean loss of the last 3 epochs is at least 95% of the prior
  NLL (the model predicts no better than the class frequencies) and the
  second half of the curve is not a steady decrease (increases are more than
  10% of its movement, or it does not end lower). Reported as "too high" (a network knocked
  into a dead state) only when a cross-validated linear reference (see
  `whylow.checks.fit`) shows the labels *are* predictable; otherwise the
  ``no-signal`` check explains it.
- **slow** ("too low"): a steady decrease (increases at most 10% of the
  movement) that lost less than ``slow_total`` (30%) of its starting value
  and is still falling at least half as fast at the end (mean slope of the
  last 3 epochs) as on average: the optimiser crawls.

Severity from effect: a curve shape is evidence, not a cost. The cost of a
bad learning rate is a model that fits its training data poorly, so a
warning needs one: the ``underfitting`` level (warning or critical, the
underfitting check's rule: at least 10 points below a cross-validated linear
reference) is taken over when the model fits poorly, since the learning rate
is then the cause of that underfitting and carries its evidence (the ranking
attaches the underfitting finding to it, and ``explains`` is its deficit).
A curve that cannot have left a usable model is critical on its own: NaN,
divergence to a final loss no better than predicting the class frequencies,
and stuck (with a learnable reference). A jump, an oscillation or a
divergence after which the model still fits its training data (or whose
fit cannot be measured: no training predictions) is ``info``. Slow requires
a poor fit. Slow and stuck without a reference, or with a reference that
finds no signal, are not reported: a curve that barely moves on unlearnable
labels is not a learning-rate problem.
"""

from __future__ import annotations

import math

import numpy as np

from whylow.checks import Check, register
from whylow.checks.fit import (
    _held_out_rescaling,
    _nll_rows,
    _round,
    fit_evidence,
    held_out,
    prior_nll,
    reference_has_signal,
    underfitting_explains,
)
from whylow.context import Context
from whylow.report.finding import Finding, make_explains

__all__ = ["LearningRateCheck", "analyse_loss_curve"]


def analyse_loss_curve(
    loss,
    prior_nll: float | None = None,
    n_classes: int | None = None,
    blowup_factor: float = 2.0,
    jump_factor: float = 2.0,
    slow_total: float = 0.3,
    overshoot_factor: float = 1.5,
) -> dict:
    """Classify a training-loss curve.

    Parameters
    ----------
    loss : sequence of float of length n_epochs
        Training loss per epoch (NaN / inf kept).
    prior_nll : float, optional
        Loss of predicting the training class frequencies (their entropy).
    n_classes : int, optional
        Number of classes; ``log(n_classes)`` is the loss of a uniform prediction.
    blowup_factor, jump_factor, slow_total, overshoot_factor : float
        Thresholds (see the module docstring).

    Returns
    -------
    dict
        ``verdict``: one of ``"nan"``, ``"diverged"``, ``"jump"``,
        ``"oscillating"``, ``"stuck"``, ``"slow"``, ``"overshoot"`` or None (healthy or too
        short); ``direction``: ``"too high"``, ``"too low"`` or None; and the
        numbers behind it (``epochs``, ``first``, ``last``, ``min``, ``max``,
        ``sign_change_fraction``, ``up_share``, ``relative_decrease``,
        ``tail_slope_ratio``, ...).

    Examples
    --------
    >>> analyse_loss_curve([2.3, 1.2, 0.7, 0.4, 0.3, 0.25])["verdict"] is None
    True
    >>> analyse_loss_curve([2.3, 1.9, float("nan")])["verdict"]
    'nan'
    """
    arr = np.asarray(list(loss), dtype=np.float64)
    out: dict = {"epochs": int(arr.size), "verdict": None, "direction": None}
    if arr.size == 0:
        return out
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        out.update(verdict="nan", direction="too high", first_nonfinite_epoch=int(bad[0]) + 1,
                   last_finite=_round(arr[bad[0] - 1]) if bad[0] > 0 else None)
        return out
    uninformed = max([v for v in (prior_nll, math.log(n_classes) if n_classes and n_classes > 1 else None) if v is not None], default=None)
    lo, hi = float(arr.min()), float(arr.max())
    rng_ = hi - lo
    out.update(first=_round(arr[0]), last=_round(arr[-1]), min=_round(lo), max=_round(hi),
               uninformed_loss=_round(uninformed) if uninformed is not None else None)
    if uninformed is not None and hi >= blowup_factor * uninformed:
        out.update(verdict="diverged", direction="too high", reason="blow-up", blowup_epoch=int(arr.argmax()) + 1,
                   blowup_ratio=_round(hi / uninformed, 3))
        return out
    if arr.size < 3:
        return out
    if arr[-1] > 1.05 * arr[0]:
        out.update(verdict="diverged", direction="too high", reason="ends above start")
        return out
    d = np.diff(arr)
    jumps = np.flatnonzero((arr[1:] >= jump_factor * arr[:-1]) & (d >= 0.1 * rng_) & (d > 0))
    if jumps.size:
        t = int(jumps[0])
        out.update(verdict="jump", direction="too high", jump_epoch=t + 2, jump_from=_round(arr[t]), jump_to=_round(arr[t + 1]))
        return out
    moved = np.abs(d).sum()
    up_share = float(d[d > 0].sum() / moved) if moved > 0 else 0.0
    sig = np.sign(d[np.abs(d) > 1e-3 * max(rng_, 1e-12)])
    flips = float((sig[1:] != sig[:-1]).mean()) if sig.size >= 2 else 0.0
    amplitude = float(np.median(np.abs(d)) / rng_) if rng_ > 0 else 0.0
    rel_decrease = float((arr[0] - arr[-1]) / arr[0]) if arr[0] > 0 else 0.0
    k = min(3, arr.size - 1)
    mean_slope = (arr[0] - arr[-1]) / (arr.size - 1)
    tail_slope = (arr[-k - 1] - arr[-1]) / k
    tail_ratio = float(tail_slope / mean_slope) if mean_slope > 0 else 0.0
    out.update(sign_change_fraction=_round(flips), up_share=_round(up_share), median_change_over_range=_round(amplitude),
               relative_decrease=_round(rel_decrease), tail_slope_ratio=_round(tail_ratio))
    if d.size >= 5 and flips >= 0.5 and up_share >= 0.3 and amplitude >= 0.1:
        out.update(verdict="oscillating", direction="too high")
        return out
    steady = up_share <= 0.1 and arr[-1] < arr[0]
    half = np.diff(arr[arr.size // 2 :])
    half_moved = np.abs(half).sum()
    steady_tail = half_moved > 0 and half[half > 0].sum() <= 0.1 * half_moved and arr[-1] < arr[arr.size // 2]
    tail_mean = float(arr[-3:].mean())
    if prior_nll is not None and tail_mean >= 0.95 * prior_nll and not steady_tail:
        out.update(verdict="stuck", direction="too high", tail_mean=_round(tail_mean))
        return out
    if steady and rel_decrease < slow_total and tail_ratio >= 0.5:
        out.update(verdict="slow", direction="too low")
        return out
    if uninformed is not None and arr[0] >= overshoot_factor * uninformed:
        out.update(verdict="overshoot", direction="too high", overshoot_ratio=_round(arr[0] / uninformed, 3))
    return out


_VERDICT_WORDS = {
    "nan": "the training loss became NaN/infinite at epoch {first_nonfinite_epoch}",
    "diverged": "the training loss diverged",
    "jump": "the training loss jumped from {jump_from:.3g} to {jump_to:.3g} at epoch {jump_epoch}",
    "oscillating": "the training loss oscillates instead of decreasing (it flips direction {sign_change_fraction:.0%} of the epochs)",
    "stuck": "the training loss is stuck at the level of predicting the class frequencies ({tail_mean:.3f} vs {uninformed_loss:.3f})",
    "overshoot": "the first epoch's training loss was {overshoot_ratio:.3g}× that of an uninformed model (the first updates overshot)",
    "slow": "the training loss decreases slowly and steadily (only {relative_decrease:.1%} in {epochs} epochs, still falling at the same rate)",
}


@register
class LearningRateCheck(Check):
    """The training history shows a learning rate too high (divergence, oscillation, NaN) or too low (slow decrease)."""

    name = "learning-rate"
    codes = ("learning-rate",)
    requires = ("history",)
    #: Loss at least this multiple of an uninformed model's loss is a blow-up.
    blowup_factor = 2.0
    #: First-epoch loss at least this multiple of an uninformed model's is an overshoot (evidence only with a poor fit).
    overshoot_factor = 1.5
    #: Epoch-to-epoch multiple that counts as a jump.
    jump_factor = 2.0
    #: Relative total decrease below which a steady decrease is "slow".
    slow_total = 0.3
    #: Significance level of the rescaling test (a too-high rate's overconfidence cost).
    alpha = 0.01
    #: Relative held-out log-loss reduction by rescaling that makes a too-high curve a warning (the calibration check's) ...
    min_log_loss_gain = 0.10
    #: ... and critical.
    critical_log_loss_gain = 0.20
    #: Relative difference within which the model's validation log-loss is the history's final val_loss (loose: a
    #: training loop clips probabilities its own way, which moves the log-loss of confidently wrong predictions).
    same_loss = 0.2

    def run(self, ctx: Context) -> list[Finding]:
        h = ctx.history or {}
        loss = h.get("loss")
        if not loss:
            return []
        p_nll = prior_nll(ctx)
        res = analyse_loss_curve(
            loss, prior_nll=p_nll, n_classes=ctx.n_classes,
            blowup_factor=self.threshold(ctx, "blowup_factor"), jump_factor=self.threshold(ctx, "jump_factor"),
            slow_total=self.threshold(ctx, "slow_total"), overshoot_factor=self.threshold(ctx, "overshoot_factor"),
        )
        ctx.add_artifact(self.name, "loss_curve", {"loss": list(loss), "val_loss": h.get("val_loss"), "verdict": res["verdict"]})
        verdict = res["verdict"]
        if verdict is None:
            return []
        fit = fit_evidence(ctx)
        fit_level = fit["level"] if fit else None
        poor_fit = fit_level in ("warning", "critical")
        ref_signal = reference_has_signal(ctx)
        learned_nothing = res.get("last") is not None and res["last"] >= 0.9 * p_nll
        if verdict in ("stuck", "slow") and not ref_signal:
            return []  # unlearnable (or unknown) labels: a flat curve is not the learning rate's fault
        if verdict in ("slow", "overshoot") and not poor_fit:
            return []  # evidence of a bad learning rate only when the model it left fits its training data poorly
        severity = _severity(verdict, fit_level if poor_fit else None, learned_nothing)
        overconfident = None
        if severity == "info" and res["direction"] == "too high" and verdict not in ("stuck", "overshoot"):
            overconfident = _overconfidence_cost(ctx, h, self.threshold(ctx, "alpha"), self.threshold(ctx, "min_log_loss_gain"),
                                                 self.threshold(ctx, "critical_log_loss_gain"))
            if overconfident is not None and overconfident["severity"] is not None:
                severity = overconfident["severity"]
        evidence = {k: v for k, v in res.items() if v is not None}
        evidence["prior_log_loss"] = _round(p_nll)
        lrs = [v for v in h.get("lr", []) if v is not None and math.isfinite(v)]
        lr = lrs[-1] if lrs else None
        if lrs:
            evidence["lr_first"] = lrs[0]
            evidence["lr_last"] = lrs[-1]
        if fit is not None:
            evidence["train_accuracy"] = _round(fit["train_accuracy"])
            if "reference_accuracy" in fit:
                evidence["reference_accuracy"] = _round(fit["reference_accuracy"])
                evidence["reference"] = fit["reference"]
                evidence["underfitting_deficit"] = _round(fit["deficit"])
        what = _VERDICT_WORDS[verdict].format(**{**res, "tail_mean": res.get("tail_mean", 0.0), "uninformed_loss": p_nll})
        if verdict == "diverged" and res.get("reason") == "blow-up":
            what = (
                f"the training loss blew up to {res['max']:.3g} at epoch {res['blowup_epoch']} "
                f"({res['blowup_ratio']:.3g}× the loss of an uninformed model)"
            )
        elif verdict == "diverged":
            what = f"the training loss ended higher than it started ({res['first']:.3g} → {res['last']:.3g})"
        lr_words = f" at learning rate {lr:.3g}" if lr is not None else ""
        direction = res["direction"]
        title = f"Learning rate {direction}: {what}{lr_words}"
        if poor_fit and fit is not None and "reference_accuracy" in fit:
            title += f"; the model fits only {fit['train_accuracy']:.0%} of its training data (a linear model: {fit['reference_accuracy']:.0%})"
        elif overconfident is not None and overconfident["severity"] is not None:
            evidence["overconfidence_cost"] = {k: v for k, v in overconfident.items() if k != "severity"}
            title += (
                f"; the oversized updates left its scores overconfident: a temperature of {overconfident['temperature']:.3g} "
                f"cuts the {overconfident['measured_on']} log-loss by {overconfident['relative_gain']:.0%} "
                f"({overconfident['log_loss_before']:.3g} → {overconfident['log_loss_after']:.3g})"
            )
        elif learned_nothing and direction == "too high":
            title += f"; the final loss {res['last']:.3g} is no better than predicting the class frequencies ({p_nll:.3g})"
        if direction == "too high":
            target = f"from {lr:.3g} to about {lr / 10:.3g}" if lr is not None else "by 10×"
            fix = (
                f"Lower the learning rate {target} and retrain; add a warm-up and gradient clipping"
                + (" (NaN losses: also check the inputs for NaN/inf and the loss for log(0))" if verdict == "nan" else "")
                + "; if it still fails, try 3× lower again."
            )
        else:
            target = f"from {lr:.3g} to about {lr * 10:.3g}" if lr is not None else "by about 10×"
            fix = f"Raise the learning rate {target} (or run a learning-rate range test) and train until the loss levels off."
        confidence = {"nan": 0.97, "diverged": 0.9, "stuck": 0.8, "jump": 0.75, "oscillating": 0.75, "slow": 0.7, "overshoot": 0.7}[verdict]
        explains = underfitting_explains(ctx, fit) if poor_fit and fit is not None else None
        if explains is None and overconfident is not None and overconfident["severity"] is not None:
            lost = overconfident["log_loss_before"] - overconfident["log_loss_after"]
            explains = make_explains("log_loss", lost, overconfident["log_loss_before"], f"the {overconfident['measured_on']} log-loss")
        return [Finding(code="learning-rate", severity=severity, confidence=confidence, title=title, evidence=evidence, fix=fix,
                        check=self.name, explains=explains)]


def _overconfidence_cost(ctx: Context, h: dict, alpha: float, warn_gain: float, critical_gain: float) -> dict | None:
    """Held-out log-loss a temperature removes, when the scores are the ones training left (None otherwise).

    Only when the model's validation log-loss equals the history's final
    ``val_loss`` (within ``same_loss``): the model is the last epoch as
    trained, not rescaled since (scores scaled after training are the
    ``overconfidence`` check's finding, not the learning rate's).
    """
    val = ctx.split("val")
    val_loss = h.get("val_loss")
    if val is None or val.y is None or val.probs is None or not val_loss or not math.isfinite(val_loss[-1]):
        return None
    now = float(_nll_rows(val.y, val.probs).mean())
    if abs(now - val_loss[-1]) > LearningRateCheck.same_loss * val_loss[-1]:
        return None
    res = _held_out_rescaling(ctx, held_out(ctx))
    if res is None:
        return None
    rel, severity = res["relative_gain"], None
    if res["temperature"] > 1.0 and res["p_value"] < alpha:
        severity = "critical" if rel >= critical_gain else "warning" if rel >= warn_gain else None
    return {"severity": severity, "relative_gain": _round(rel), "temperature": _round(res["temperature"], 3),
            "log_loss_before": _round(res["before"]), "log_loss_after": _round(res["after"]), "p_value": res["p_value"],
            "measured_on": res["split"]}


def _severity(verdict: str, poor_fit_level: str | None, learned_nothing: bool) -> str:
    """Severity from effect (module docstring): what the curve did to the model, not the curve's shape."""
    if verdict in ("nan", "stuck") or (verdict == "diverged" and learned_nothing):
        return "critical"
    if poor_fit_level is not None:
        return "critical" if verdict == "diverged" else poor_fit_level
    return "info"
