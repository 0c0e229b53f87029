"""Order findings: most likely root cause first, each symptom under the cause that explains it.

The rule
--------
1. **Attach symptoms to their causes.** `EXPLAINS` lists, for each cause,
   the symptoms it produces and the condition under which it explains them.
   A finding is a *consequence* of another when its code is one of that
   finding's symptoms, the cause is at least a ``warning`` (an ``info``
   cause explains nothing), and the pair's condition holds. Among several
   causes of one symptom, the one ranked first by the key below wins. A
   consequence stays in the report (``--fail-on`` and JSON consumers still
   see it, with its own severity); it is listed in its cause's
   ``consequences``, names the cause in ``evidence["explained_by"]``, and is
   placed directly after it. Causes can chain (a learning rate too high →
   underfitting → underconfidence); the table has no cycles.
2. **Order what is left** (the findings no other finding explains), each
   with its consequences, by:

   a. severity: the most serious in the group, so a critical symptom lifts
      the cause it hangs on;
   b. root causes that make everything else moot first (`ROOT_CAUSES`:
      labels with no signal, unusable data);
   c. how much of the accuracy shortfall the group explains: the largest
      ``explains["share"]`` stated in accuracy or balanced accuracy. A
      finding that moves only the scores (log-loss) explains none of the
      accuracy shortfall, so a large calibration gain never outranks a
      cause that costs accuracy;
   d. causal tier (`CAUSAL_TIER`): what breaks the input pipeline, then the
      data distribution, then training, then score-level effects, then how it
      was measured;
   e. confidence, highest first.

Consequences of one cause are ordered by the same key. The sort is stable.
"""

from __future__ import annotations

from typing import Callable

from whylow.report.finding import SEVERITIES, Finding

__all__ = ["CAUSAL_TIER", "EXPLAINS", "ROOT_CAUSES", "rank_findings"]

#: Lower tier = further upstream in the chain of causes.
CAUSAL_TIER = {
    "data-quality": 0,
    "no-signal": 0,
    "train-test-leakage": 1,
    "preprocessing-mismatch": 1,
    "covariate-shift": 2,
    "label-shift": 2,
    "label-noise": 2,
    "class-imbalance": 3,
    "learning-rate": 3,
    "underfitting": 4,
    "overfitting": 4,
    "misleading-metric": 5,
    "overconfidence": 6,
    "underconfidence": 6,
    "decision-threshold": 6,
    "small-sample": 7,
}

#: Causes that make everything else moot while they hold.
ROOT_CAUSES = frozenset(code for code, tier in CAUSAL_TIER.items() if tier == 0)

_SERIOUS = ("critical", "warning")
_ACCURACY_METRICS = ("accuracy", "balanced_accuracy")


def _always(cause: Finding, symptom: Finding) -> bool:
    return True


def _miscalibrated_on_test_only(cause: Finding, symptom: Finding) -> bool:
    """The scores are off on the shifted test split, not on validation data (or there is no validation split)."""
    splits = symptom.evidence.get("splits") if isinstance(symptom.evidence, dict) else None
    if not isinstance(splits, dict) or "val" not in splits or "test" not in splits:
        return True
    return abs(splits["val"].get("gap", 0.0)) < 0.5 * abs(splits["test"].get("gap", 0.0))


def _imbalance_meets_balanced_test(cause: Finding, symptom: Finding) -> bool:
    """The prior difference is the training imbalance meeting a more balanced test split."""
    priors = cause.evidence.get("test_priors_vs_training") if isinstance(cause.evidence, dict) else None
    return bool(isinstance(priors, dict) and priors.get("test_is_more_balanced"))


def _threshold_recovers_the_hidden_gap(cause: Finding, symptom: Finding) -> bool:
    """The proven threshold move recovers at least half of what accuracy hides (misleading-metric's own record)."""
    fix = symptom.evidence.get("threshold_fix") if isinstance(symptom.evidence, dict) else None
    share = fix.get("share_of_hidden_gap") if isinstance(fix, dict) else None
    return isinstance(share, (int, float)) and share >= 0.5


_Condition = Callable[[Finding, Finding], bool]
_CALIBRATION = ("overconfidence", "underconfidence")

#: cause code → {symptom code: condition(cause, symptom)}; the cause must also be at least a warning.
EXPLAINS: dict[str, dict[str, _Condition]] = {
    # labels unpredictable from the inputs: any fit or score symptom is moot (misleading-metric is not
    # attached: on imbalanced data it is the leading finding and no-signal its warning)
    "no-signal": {code: _always for code in (*_CALIBRATION, "overfitting", "underfitting", "label-noise", "class-imbalance")},
    # scores off only on the broken or shifted test inputs
    "preprocessing-mismatch": {code: _miscalibrated_on_test_only for code in _CALIBRATION},
    "covariate-shift": {code: _miscalibrated_on_test_only for code in _CALIBRATION},
    # wrong labels make confident predictions look wrong and teach a model to hedge
    "label-noise": {code: _always for code in _CALIBRATION},
    # minority classes under-predicted: their recall and the headline metric follow; the binary cut, the new
    # class mix and scores that are off only where the skewed training mix meets a more balanced test split
    "class-imbalance": {
        "misleading-metric": _always,
        "decision-threshold": _imbalance_meets_balanced_test,
        "label-shift": _imbalance_meets_balanced_test,
        **{code: _miscalibrated_on_test_only for code in _CALIBRATION},
    },
    # a cut in the wrong place hides the positive class behind a good accuracy
    "decision-threshold": {"misleading-metric": _threshold_recovers_the_hidden_gap},
    # new class priors move the best binary threshold, and scores calibrated for the old mix are off on the new one
    "label-shift": {"decision-threshold": _always, **{code: _miscalibrated_on_test_only for code in _CALIBRATION}},
    # a learning rate too high or too low is why the model under- or overfits, or is left with huge, overconfident weights
    "learning-rate": {"underfitting": _always, "overfitting": _always, "overconfidence": _always},
    # a model far below what the data allows hedges: its low scores are bad classification
    "underfitting": {"underconfidence": _always},
    # a model that memorised its training data is overconfident on anything else
    "overfitting": {"overconfidence": _always},
}


def _own_share(f: Finding) -> float:
    e = f.explains
    if not e or e.get("metric") not in _ACCURACY_METRICS or e.get("share") is None:
        return 0.0
    return float(e["share"])


def _key(group: list[Finding]):
    head = group[0]
    tier = CAUSAL_TIER.get(head.code, 9)
    return (
        min(SEVERITIES.index(f.severity) for f in group),
        0 if head.code in ROOT_CAUSES else 1,
        -max(_own_share(f) for f in group),
        tier,
        -head.confidence,
    )


def _explains(cause: Finding, symptom: Finding) -> bool:
    if cause is symptom or cause.severity not in _SERIOUS:
        return False
    condition = EXPLAINS.get(cause.code, {}).get(symptom.code)
    return condition is not None and condition(cause, symptom)


def _reset(findings: list[Finding]) -> None:
    for f in findings:
        f.consequences = []
        if isinstance(f.evidence, dict):
            f.evidence.pop("explained_by", None)


def rank_findings(findings: list[Finding]) -> list[Finding]:
    """Return the findings ordered most likely root cause first, each cause followed by its consequences.

    Sets ``consequences`` on causes and ``evidence["explained_by"]`` on the
    symptoms attached to them (see the module docstring for the rule).
    Ranking the same findings again gives the same result.

    Parameters
    ----------
    findings : list of Finding

    Returns
    -------
    list of Finding
        The same findings, reordered.
    """
    findings = list(findings)
    _reset(findings)
    by_key = sorted(findings, key=lambda f: _key([f]))
    cause_of: dict[int, Finding] = {}
    for symptom in findings:
        cause = next((c for c in by_key if _explains(c, symptom)), None)
        if cause is not None:
            cause_of[id(symptom)] = cause
    children: dict[int, list[Finding]] = {id(f): [] for f in findings}
    for f in findings:
        if id(f) in cause_of:
            children[id(cause_of[id(f)])].append(f)

    def group(f: Finding) -> list[Finding]:
        out = [f]
        for child in sorted(children[id(f)], key=lambda c: _key(group(c))):
            out.extend(group(child))
        return out

    roots = [f for f in findings if id(f) not in cause_of]
    ordered = [f for root in sorted(roots, key=lambda r: _key(group(r))) for f in group(root)]
    for f in ordered:  # consequences listed in report order
        cause = cause_of.get(id(f))
        if cause is not None:
            cause.consequences.append({"code": f.code, "title": f.title})
            if isinstance(f.evidence, dict):
                f.evidence["explained_by"] = {"code": cause.code, "title": cause.title}
    return ordered
