"""Terminal rendering with rich: ranked findings first, then the numbers."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["consequence_text", "explains_text", "format_value", "print_report", "render_text"]

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "log_loss", "brier", "ece", "mean_confidence")


def format_value(value) -> str:
    """Format a metric for people: 4 significant digits, '—' for missing."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _verified_text(v: dict | None) -> str:
    if not v:
        return ""
    return f"verified: {v['metric']} {format_value(v['before'])} → {format_value(v['after'])}"


def explains_text(explains: dict | None) -> str:
    """A finding's share of the shortfall in words, e.g. "explains 21 accuracy points of the 25-point gap to the reference model".

    Examples
    --------
    >>> explains_text({"metric": "accuracy", "gap": 0.21, "share": 0.84, "shortfall": 0.25, "against": "the reference model"})
    'explains 21 accuracy points of the 25-point gap to the reference model'
    >>> explains_text({"metric": "log_loss", "gap": 0.38, "share": 0.45, "against": "the test log-loss"})
    'explains 0.38 nats of log-loss (45% of the test log-loss)'
    >>> explains_text(None)
    ''
    """
    if not isinstance(explains, dict) or not isinstance(explains.get("gap"), (int, float)):
        return ""
    metric, gap = explains.get("metric"), float(explains["gap"])
    share, shortfall, against = explains.get("share"), explains.get("shortfall"), explains.get("against")
    if metric in ("accuracy", "balanced_accuracy"):
        unit = "accuracy" if metric == "accuracy" else "balanced-accuracy"
        text = f"explains {gap * 100:.0f} {unit} point{'s' if round(gap * 100) != 1 else ''}"
        if isinstance(shortfall, (int, float)) and shortfall > 0:
            return text + f" of the {shortfall * 100:.0f}-point gap" + (f" to {against}" if against else "")
    else:
        text = f"explains {gap:.2f} nats of log-loss"
    if isinstance(share, (int, float)):
        text += f" ({share:.0%} of {against or 'the shortfall'})"
    elif against:
        text += f" (against {against})"
    return text


def consequence_text(consequences: list[dict] | None) -> str:
    """The symptoms attached to a cause, e.g. "→ also explains: overconfidence (Overconfident: ...)"."""
    if not consequences:
        return ""
    return "→ also explains: " + "; ".join(f"{c.get('code')} ({c.get('title', '')})" if c.get("title") else str(c.get("code")) for c in consequences)


def _cause_text(f) -> str:
    cause = f.evidence.get("explained_by") if isinstance(getattr(f, "evidence", None), dict) else None
    return f"↳ a consequence of {cause.get('code')} (above)" if isinstance(cause, dict) else ""


def preprocessing_text(report) -> str:
    """The declared preprocessing whylow applied, e.g. "Applied as declared: test multiplied by 1/255"."""
    splits = (report.inputs or {}).get("splits") if isinstance(getattr(report, "inputs", None), dict) else None
    if not isinstance(splits, dict):
        return ""
    parts = [f"{name} {', then '.join(s['preprocessing'])}" for name, s in splits.items()
             if isinstance(s, dict) and s.get("preprocessing")]
    return "Applied as declared: " + "; ".join(parts) if parts else ""


def build_renderables(report) -> list:
    """The rich renderables of the terminal report, in order."""
    parts: list = [Text(report.verdict, style="bold")]
    declared = preprocessing_text(report)
    if declared:
        parts.append(Text(declared, style="dim"))
    if report.findings:
        table = Table(title="Findings (most likely cause first)", show_lines=True, expand=True)
        table.add_column("#", justify="right", width=3)
        table.add_column("severity", width=9)
        table.add_column("code", width=22)
        table.add_column("what and what to do", ratio=1)
        for i, f in enumerate(report.findings, 1):
            body = Text(f.title, style="bold")
            cause = _cause_text(f)
            if cause:
                body.append("\n" + cause, style="dim")
            body.append(f"\nfix: {f.fix}" if f.fix else "")
            v = _verified_text(f.verified)
            if v:
                body.append("\n" + v, style="green")
            share = explains_text(getattr(f, "explains", None))
            if share:
                body.append("\n" + share)
            also = consequence_text(getattr(f, "consequences", None))
            if also:
                body.append("\n" + also, style="magenta")
            body.append(f"\nconfidence {f.confidence:.2f}", style="dim")
            code = f"↳ {f.code}" if cause else f.code
            table.add_row(str(i), Text(f.severity, style=_STYLE[f.severity]), code, body)
        parts.append(table)
    else:
        parts.append(Text("No findings.", style="green"))
    metrics = Table(title=f"Test split (n={report.summary.get('n_test')})", expand=False)
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    metrics.add_column("95% CI", justify="right")
    metrics.add_column("baseline", justify="right")
    base = {
        "accuracy": report.baselines.get("majority_accuracy"),
        "balanced_accuracy": report.baselines.get("majority_balanced_accuracy"),
        "log_loss": report.baselines.get("prior_log_loss"),
        "brier": report.baselines.get("prior_brier"),
    }
    for key in _SUMMARY_KEYS:
        ci = report.intervals.get(key)
        ci_text = f"{ci[0]:.3g} – {ci[1]:.3g}" if ci and None not in ci else ""
        metrics.add_row(key, format_value(report.summary.get(key)), ci_text, format_value(base.get(key)))
    parts.append(metrics)
    notrun = [c for c in report.checks if c.status != "ran"]
    if notrun:
        checks = Table(title="Checks that did not run", expand=True)
        checks.add_column("check", width=24)
        checks.add_column("status", width=8)
        checks.add_column("why", ratio=1)
        for c in notrun:
            checks.add_row(c.name, Text(c.status, style="red" if c.status == "failed" else "dim"), c.reason or "")
        parts.append(checks)
    return parts


def print_report(report, console: Console | None = None) -> None:
    """Print the report to a rich console (stdout by default)."""
    console = console or Console()
    console.print(Panel(Group(*build_renderables(report)), title="whylow", expand=True))


def render_text(report, width: int = 100, color: bool = False) -> str:
    """Render the terminal report to a string."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None)
    print_report(report, console)
    return buf.getvalue()
