"""`Report`: the result of a diagnosis, and its JSON form (schema ``whylow.report/1``)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whylow._version import __version__
from whylow.report.finding import SEVERITIES, CheckStatus, Finding

__all__ = ["Report", "SCHEMA_ID", "write_atomic", "to_jsonable"]

SCHEMA_ID = "whylow.report/1"


def to_jsonable(value):
    """Convert numpy scalars/arrays and non-finite floats into plain JSON values (NaN/inf -> None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_atomic(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


@dataclass
class Report:
    """A diagnosis: ranked findings, the status of every check, and the numbers.

    Attributes
    ----------
    inputs : dict
        What was given: splits, model, prediction kind, classes.
    summary : dict
        Headline metrics on the test split.
    findings : list of Finding
        Ordered most likely root cause first.
    checks : list of CheckStatus
    per_class : list of dict
    intervals : dict
        Bootstrap confidence intervals of the summary metrics.
    baselines : dict
        Majority-class and prior-only baselines on the test split.
    artifacts : dict
        Data behind the plots (reliability curves, property histograms...),
        keyed by the check that made them; used by the HTML report, not in JSON.
    """

    inputs: dict
    summary: dict
    findings: list[Finding] = field(default_factory=list)
    checks: list[CheckStatus] = field(default_factory=list)
    per_class: list[dict] = field(default_factory=list)
    intervals: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)

    # -- judgement -------------------------------------------------------
    def worst_severity(self) -> str | None:
        """The most serious severity among the findings, or None when there are none."""
        levels = [SEVERITIES.index(f.severity) for f in self.findings]
        return SEVERITIES[min(levels)] if levels else None

    def fails(self, fail_on: str) -> bool:
        """True when a finding is at or above ``fail_on`` (``"warning"`` or ``"critical"``)."""
        limit = SEVERITIES.index(fail_on)
        return any(SEVERITIES.index(f.severity) <= limit for f in self.findings)

    @property
    def verdict(self) -> str:
        """The diagnosis in one sentence."""
        serious = [f for f in self.findings if f.severity != "info"]
        if not serious:
            acc = self.summary.get("accuracy")
            tail = f" (test accuracy {acc:.1%})" if isinstance(acc, float) else ""
            return f"No problem found that explains low predictions{tail}."
        top = serious[0]
        more = len(serious) - 1
        extra = f"; {more} more issue{'s' if more != 1 else ''} below" if more else ""
        return f"Most likely cause: {top.title[0].lower() + top.title[1:]} ({top.code}){extra}."

    # -- output ----------------------------------------------------------
    def to_dict(self) -> dict:
        """The report as a JSON-ready dict following ``report.schema.json``."""
        return to_jsonable(
            {
                "schema": SCHEMA_ID,
                "whylow_version": __version__,
                "verdict": self.verdict,
                "inputs": self.inputs,
                "summary": self.summary,
                "intervals": self.intervals,
                "baselines": self.baselines,
                "findings": [f.to_dict() for f in self.findings],
                "checks": [c.to_dict() for c in self.checks],
                "per_class": self.per_class,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_markdown(self) -> str:
        """The report as Markdown."""
        from whylow.report.markdown import render_markdown

        return render_markdown(self)

    def to_text(self, width: int = 100, color: bool = False) -> str:
        """The terminal summary as plain (or ANSI-coloured) text."""
        from whylow.report.text import render_text

        return render_text(self, width=width, color=color)

    def to_html(self) -> str:
        """The self-contained HTML report."""
        from whylow.report.html import render_html

        return render_html(self)

    def save_json(self, path) -> Path:
        """Write the JSON report atomically."""
        return write_atomic(path, self.to_json() + "\n")

    def save_markdown(self, path) -> Path:
        """Write the Markdown report atomically."""
        return write_atomic(path, self.to_markdown())

    def save_html(self, path) -> Path:
        """Write the HTML report atomically."""
        return write_atomic(path, self.to_html())

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        return self.to_html()
