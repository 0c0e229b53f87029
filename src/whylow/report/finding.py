"""`Finding` and `CheckStatus`: the units a diagnosis is made of."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CODES", "SEVERITIES", "Finding", "CheckStatus"]

#: The closed list of finding codes (design.md §3), in no particular order.
CODES = (
    "preprocessing-mismatch",
    "covariate-shift",
    "label-shift",
    "class-imbalance",
    "label-noise",
    "overconfidence",
    "underconfidence",
    "underfitting",
    "overfitting",
    "no-signal",
    "train-test-leakage",
    "misleading-metric",
    "decision-threshold",
    "learning-rate",
    "small-sample",
    "data-quality",
)

#: Severities from most to least serious.
SEVERITIES = ("critical", "warning", "info")


@dataclass
class Finding:
    """One diagnosed cause of low predictions.

    Parameters
    ----------
    code : str
        One of `CODES`.
    severity : {"critical", "warning", "info"}
        ``critical`` explains a large part of the low predictions.
    confidence : float
        How sure whylow is that the cause is real, in [0, 1].
    title : str
        What is wrong, in plain words with the key number.
    evidence : dict
        The numbers behind the claim (JSON-serialisable).
    fix : str
        What to do, concretely.
    verified : dict or None
        ``{"metric": ..., "before": ..., "after": ...}`` when whylow applied
        the fix and re-measured on data the fix was not fitted on.
    check : str
        Name of the check that produced the finding.
    """

    code: str
    severity: str
    confidence: float
    title: str
    evidence: dict = field(default_factory=dict)
    fix: str = ""
    verified: dict | None = None
    check: str = ""

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}; the codes are {CODES}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; use one of {SEVERITIES}")
        self.confidence = float(min(1.0, max(0.0, self.confidence)))
        if self.verified is not None:
            missing = {"metric", "before", "after"} - set(self.verified)
            if missing:
                raise ValueError(f"verified needs metric, before and after; missing {sorted(missing)}")

    @property
    def improvement(self) -> float:
        """How much the verified fix recovered, in the metric's good direction (0 if unverified)."""
        if not self.verified:
            return 0.0
        before, after = float(self.verified["before"]), float(self.verified["after"])
        lower_is_better = self.verified["metric"] in ("log_loss", "nll", "brier", "ece", "smooth_ece")
        gain = before - after if lower_is_better else after - before
        if lower_is_better and before > 0:
            gain = gain / before  # relative for losses, so log-loss and accuracy gains are comparable
        return gain

    def to_dict(self) -> dict:
        """The finding as it appears in the JSON report."""
        return {
            "code": self.code,
            "severity": self.severity,
            "confidence": round(self.confidence, 4),
            "title": self.title,
            "evidence": self.evidence,
            "fix": self.fix,
            "verified": self.verified,
        }


@dataclass
class CheckStatus:
    """Whether a check ran, was skipped (and which input would enable it), or failed (and why)."""

    name: str
    status: str
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "reason": self.reason}
