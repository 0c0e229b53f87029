"""Terminal rendering with rich: ranked findings first, then the numbers."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["render_text", "print_report", "format_value"]

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


def build_renderables(report) -> list:
    """The rich renderables of the terminal report, in order."""
    parts: list = [Text(report.verdict, style="bold")]
    if report.findings:
        table = Table(title="Findings (most likely cause first)", show_lines=True, expand=True)
        table.add_column("#", justify="right", width=3)
        table.add_column("severity", width=9)
        table.add_column("code", width=22)
        table.add_column("what and what to do", ratio=1)
        for i, f in enumerate(report.findings, 1):
            body = Text(f.title, style="bold")
            body.append(f"\nfix: {f.fix}" if f.fix else "")
            v = _verified_text(f.verified)
            if v:
                body.append("\n" + v, style="green")
            body.append(f"\nconfidence {f.confidence:.2f}", style="dim")
            table.add_row(str(i), Text(f.severity, style=_STYLE[f.severity]), f.code, body)
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
