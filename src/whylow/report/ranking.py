"""Order findings: most likely root cause first.

The rule, applied as a sort key (earlier items win):

1. Severity: ``critical`` before ``warning`` before ``info``.
2. Root causes (tier 0: unusable data, labels with no signal) come first:
   nothing downstream can be fixed while they hold, and the "fixes" of their
   symptoms (dropping flagged labels, re-weighting) only fit noise.
3. Verified recovery: a finding whose fix was applied and re-measured with a
   large gain (``Finding.improvement`` above ``LARGE_GAIN``) outranks one
   without, so a proven cause beats a plausible one.
4. Causal tier (`CAUSAL_TIER`): causes before the symptoms they produce:
   what breaks the input pipeline, then data distribution, then training
   problems (a bad learning rate before the underfitting it causes), then
   score-level effects (calibration, thresholds), then how it was measured.
5. Confidence, then verified gain, highest first.
"""

from __future__ import annotations

from whylow.report.finding import SEVERITIES, Finding

__all__ = ["CAUSAL_TIER", "LARGE_GAIN", "rank_findings"]

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

#: A verified gain above this (accuracy points, or relative loss reduction) counts as large.
LARGE_GAIN = 0.05


def _key(f: Finding):
    tier = CAUSAL_TIER.get(f.code, 9)
    return (
        SEVERITIES.index(f.severity),
        0 if tier == 0 else 1,
        0 if f.improvement > LARGE_GAIN else 1,
        tier,
        -f.confidence,
        -f.improvement,
    )


def rank_findings(findings: list[Finding]) -> list[Finding]:
    """Return the findings ordered most likely root cause first (stable)."""
    return sorted(findings, key=_key)
