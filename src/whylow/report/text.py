"""Terminal rendering with rich: ranked findings first, then the numbers."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

__all__ = ["consequence_text", "explains_text", "finding_block", "format_value", "print_report", "render_text", "verified_text"]

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "log_loss", "brier", "ece", "mean_confidence")


def format_value(value) -> str:
    """Format a metric for people: 3 significant digits, '—' for missing.

    >>> format_value(0.50781), format_value(12.345), format_value(None), format_value(3)
    ('0.508', '12.3', '—', '3')
    """
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


_PROPORTIONS = ("accuracy", "balanced_accuracy", "recall", "precision", "f1", "top5_accuracy")


def verified_text(v: dict | None) -> str:
    """The verification in words: proportions in percent with the change in points, scores to 3 significant digits.

    >>> verified_text({"metric": "accuracy", "before": 0.6867, "after": 0.8767})
    'verified: accuracy 68.7% → 87.7% (+19.0 points)'
    >>> verified_text({"metric": "log_loss", "before": 0.112, "after": 0.0961})
    'verified: log_loss 0.112 → 0.0961 (−14%)'
    """
    if not v:
        return ""
    metric, before, after = v.get("metric"), v.get("before"), v.get("after")
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return f"verified: {metric} {format_value(before)} → {format_value(after)}"
    if metric in _PROPORTIONS:
        change = (after - before) * 100
        return f"verified: {metric} {before:.1%} → {after:.1%} ({'+' if change >= 0 else '−'}{abs(change):.1f} points)"
    rel = f" ({'+' if after >= before else '−'}{abs(after - before) / abs(before):.0%})" if before else ""
    return f"verified: {metric} {format_value(float(before))} → {format_value(float(after))}{rel}"


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


def _first_sentence(text: str) -> str:
    """Up to the first sentence end (or semicolon) — the gist, for the default view."""
    for sep in (". ", "; "):
        cut = text.find(sep)
        if 0 < cut < len(text) - 2:
            return text[:cut + 1].rstrip(";") + (" …" if sep == "; " else "")
    return text


def _evidence_lines(evidence) -> list[str]:
    """Top-level numbers and short strings of a finding's evidence, one ``key: value`` per line (``--verbose``)."""
    if not isinstance(evidence, dict):
        return []
    out = []
    for key, value in evidence.items():
        if key == "explained_by" or isinstance(value, (dict, list, tuple)):
            continue
        text = format_value(float(value)) if isinstance(value, float) else str(value)
        if len(text) <= 120:
            out.append(f"{key.replace('_', ' ')}: {text}")
    return out


def finding_block(i: int, f, verbose: bool = False) -> Text:
    """One finding as a block: headline, its place among the causes, fix, verification, share, consequences."""
    cause = _cause_text(f)
    block = Text()
    block.append(f"{i}. ", style="bold")
    block.append(f.severity.upper(), style=_STYLE[f.severity])
    block.append(f"  {'↳ ' if cause else ''}{f.code}", style="bold")
    block.append(f"  confidence {f.confidence:.2f}\n", style="dim")
    block.append(f.title + "\n")
    if cause:
        block.append(cause + "\n", style="dim")
    if f.fix:
        block.append("fix: ", style="bold")
        block.append((f.fix if verbose else _first_sentence(f.fix)) + "\n")
    v = verified_text(f.verified)
    if v:
        block.append(v + "\n", style="green")
    share = explains_text(getattr(f, "explains", None))
    if share:
        block.append(share + "\n")
    also = consequence_text(getattr(f, "consequences", None))
    if also:
        block.append(also + "\n", style="magenta")
    if verbose:
        for line in _evidence_lines(f.evidence):
            block.append("  " + line + "\n", style="dim")
    block.rstrip()
    return block


def build_renderables(report, verbose: bool = False) -> list:
    """The rich renderables of the terminal report, in order: verdict, one block per finding, the numbers."""
    parts: list = [Text(report.verdict, style="bold")]
    declared = preprocessing_text(report)
    if declared:
        parts.append(Text(declared, style="dim"))
    if report.findings:
        parts.append(Rule("Findings (most likely cause first)", style="dim"))
        for i, f in enumerate(report.findings, 1):
            parts.append(Padding(finding_block(i, f, verbose), (0, 0, 1, 0)))
        if not verbose:
            parts.append(Text("Full fixes and the evidence behind each finding: --verbose, --html or --json.", style="dim"))
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
        ci_text = f"{format_value(float(ci[0]))} – {format_value(float(ci[1]))}" if ci and None not in ci else ""
        label = "brier (multiclass)" if key == "brier" and (report.inputs or {}).get("n_classes", 2) > 2 else key
        metrics.add_row(label, format_value(report.summary.get(key)), ci_text, format_value(base.get(key)))
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


def print_report(report, console: Console | None = None, verbose: bool = False) -> None:
    """Print the report to a rich console (stdout by default); ``verbose`` adds full fixes and each finding's evidence."""
    console = console or Console()
    console.print(Panel(Group(*build_renderables(report, verbose)), title="whylow", expand=True))


def render_text(report, width: int = 100, color: bool = False, verbose: bool = False) -> str:
    """Render the terminal report to a string."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None)
    print_report(report, console, verbose)
    return buf.getvalue()
