"""Markdown rendering of a report."""

from __future__ import annotations

from whylow.report.text import format_value

__all__ = ["render_markdown"]


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report) -> str:
    """Render the report as Markdown: verdict, findings, metrics, per-class table, checks."""
    lines = ["# whylow report", "", f"**{_cell(report.verdict)}**", "", "## Findings", ""]
    if report.findings:
        lines += ["| # | severity | code | finding | fix | verified |", "|---|---|---|---|---|---|"]
        for i, f in enumerate(report.findings, 1):
            v = f.verified
            vtext = f"{v['metric']}: {format_value(v['before'])} → {format_value(v['after'])}" if v else ""
            lines.append(f"| {i} | {f.severity} | `{f.code}` | {_cell(f.title)} | {_cell(f.fix)} | {vtext} |")
    else:
        lines.append("No findings.")
    lines += ["", f"## Test metrics (n = {report.summary.get('n_test')})", "", "| metric | value | 95% CI |", "|---|---|---|"]
    for key, value in report.summary.items():
        if key == "n_test":
            continue
        ci = report.intervals.get(key)
        ci_text = f"{ci[0]:.4g} – {ci[1]:.4g}" if ci and None not in ci else ""
        lines.append(f"| {key} | {format_value(value)} | {ci_text} |")
    if report.per_class:
        lines += ["", "## Per class", "", "| class | support | precision | recall | f1 | mean true-class prob |", "|---|---|---|---|---|---|"]
        for row in report.per_class:
            lines.append(
                f"| {_cell(row['class'])} | {row['support']} | {format_value(row.get('precision'))} | "
                f"{format_value(row.get('recall'))} | {format_value(row.get('f1'))} | {format_value(row.get('mean_true_prob'))} |"
            )
    lines += ["", "## Checks", "", "| check | status | reason |", "|---|---|---|"]
    for c in report.checks:
        lines.append(f"| {c.name} | {c.status} | {_cell(c.reason or '')} |")
    return "\n".join(lines) + "\n"
