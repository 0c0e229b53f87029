"""`Finding` and `CheckStatus`: the units a diagnosis is made of."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["CODES", "EXPLAINED_METRICS", "SEVERITIES", "CheckStatus", "Finding", "flagged_example", "make_explains"]

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

#: Metrics a finding's ``explains`` may be stated in.
EXPLAINED_METRICS = ("accuracy", "balanced_accuracy", "log_loss")


def make_explains(metric: str, gap: float, shortfall: float | None = None, against: str | None = None) -> dict | None:
    """How much of the test shortfall a finding explains, as the report's ``explains`` field.

    Parameters
    ----------
    metric : {"accuracy", "balanced_accuracy", "log_loss"}
        The metric the gap is measured in.
    gap : float
        The part of the shortfall this finding accounts for, in the metric's
        units (accuracy as a fraction, log-loss in nats), good direction
        positive. Negative or non-finite gaps explain nothing: None.
    shortfall : float, optional
        The whole shortfall it is part of (e.g. reference accuracy minus test
        accuracy). ``share = gap / shortfall``, clipped to [0, 1]; None when
        the whole is unknown or not positive.
    against : str, optional
        What the shortfall is measured against ("the reference model",
        "validation", "the class priors", ...).

    Returns
    -------
    dict or None
        ``{"metric", "gap", "share"}`` plus ``shortfall`` and ``against`` when given.

    Examples
    --------
    >>> make_explains("accuracy", 0.21, 0.25, "the reference model")
    {'metric': 'accuracy', 'gap': 0.21, 'share': 0.84, 'shortfall': 0.25, 'against': 'the reference model'}
    >>> make_explains("log_loss", -0.1) is None
    True
    """
    if metric not in EXPLAINED_METRICS:
        raise ValueError(f"explains needs a metric in {EXPLAINED_METRICS}, got {metric!r}")
    if gap is None or not math.isfinite(gap) or gap <= 0:
        return None
    share = None
    if shortfall is not None and math.isfinite(shortfall) and shortfall > 0:
        share = round(min(1.0, gap / shortfall), 4)
    out = {"metric": metric, "gap": round(float(gap), 4), "share": share}
    if shortfall is not None and math.isfinite(shortfall):
        out["shortfall"] = round(float(shortfall), 4)
    if against:
        out["against"] = against
    return out


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
    explains : dict or None
        How much of the test shortfall this finding explains (see `make_explains`):
        ``{"metric", "gap", "share"}``, optionally ``shortfall`` and ``against``.
    consequences : list of dict
        ``{"code", "title"}`` of the symptoms attached to this cause by the
        ranking (`whylow.report.ranking`); each of them stays in the report's
        findings, directly after this one, with ``evidence["explained_by"]``.
    examples : list of dict
        Every example the finding flags (`flagged_example`), for relabelling or
        removal: ``Report.flagged_examples()`` and ``--examples-csv``. Not part of
        the JSON report, whose evidence lists the first few.
    """

    code: str
    severity: str
    confidence: float
    title: str
    evidence: dict = field(default_factory=dict)
    fix: str = ""
    verified: dict | None = None
    check: str = ""
    explains: dict | None = None
    consequences: list[dict] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)

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
        if self.explains is not None:
            if self.explains.get("metric") not in EXPLAINED_METRICS or not isinstance(self.explains.get("gap"), (int, float)):
                raise ValueError(f"explains needs a metric in {EXPLAINED_METRICS} and a numeric gap, got {self.explains!r}")
            self.explains.setdefault("share", None)

    @property
    def explained_by(self) -> str | None:
        """Code of the cause this finding was attached to by the ranking, or None."""
        cause = self.evidence.get("explained_by") if isinstance(self.evidence, dict) else None
        return cause.get("code") if isinstance(cause, dict) else None

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
            "explains": self.explains,
            "consequences": [dict(c) for c in self.consequences],
        }


def flagged_example(split, index: int | None, *, path: str | None = None, given: str | None = None,
                    suggested: str | None = None, score: float | None = None, note: str | None = None) -> dict:
    """One flagged example: its split, row index, file (for a split read from a folder), labels, score and a note.

    Parameters
    ----------
    split : whylow.inputs.prepare.SplitData
    index : int or None
        Row in the split; None for a file that has no row (an unreadable image).
    path : str, optional
        The file; by default the row's own file when the split was read from a folder.
    given, suggested : str, optional
        The label the data gives and the one whylow suggests.
    score : float, optional
        How strongly it is flagged (e.g. the model's probability of the suggested class).
    note : str, optional
        Why it is flagged, in a few words.
    """
    files = getattr(split, "files", None)
    if path is None and index is not None and files is not None and 0 <= int(index) < len(files):
        path = files[int(index)]
    return {
        "split": split.name,
        "index": None if index is None else int(index),
        "path": None if path is None else str(path),
        "given": given,
        "suggested": suggested,
        "score": None if score is None else round(float(score), 6),
        "note": note,
    }


@dataclass
class CheckStatus:
    """Whether a check ran, was skipped (and which input would enable it), or failed (and why)."""

    name: str
    status: str
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "reason": self.reason}
