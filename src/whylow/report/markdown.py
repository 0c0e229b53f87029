"""Markdown rendering of a report."""

from __future__ import annotations

from whylow.report.text import consequence_text, explains_text, format_value

__all__ = ["escape_markdown", "render_markdown"]


#: Characters with a meaning in (GitHub-flavoured) Markdown inside a line: backslash-escaped.
_MD_SPECIAL = set("\\`*_[]|#~")
#: Characters that start HTML (tags, entities): written as entities so no viewer renders user strings as HTML.
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape_markdown(text) -> str:
    """A user string made inert in Markdown: HTML and Markdown control characters escaped, on one line.

    >>> escape_markdown("<img src=x onerror=alert(1)> *cat* | [a](b)")
    '&lt;img src=x onerror=alert(1)&gt; \\\\*cat\\\\* \\\\| \\\\[a\\\\](b)'
    """
    out = []
    for ch in str(text):
        if ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MD_SPECIAL:
            out.append("\\" + ch)
        elif ch in "\r\n\t\v\f":
            out.append(" ")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"&#{ord(ch)};" if ch != "\x00" else "")
        else:
            out.append(ch)
    return "".join(out)


def _cell(text) -> str:
    return escape_markdown(text)


def render_markdown(report) -> str:
    """Render the report as Markdown: verdict, findings, metrics, per-class table, checks."""
    lines = ["# whylow report", "", f"**{_cell(report.verdict)}**", "", "## Findings", ""]
    if report.findings:
        lines += ["| # | severity | code | finding | fix | verified |", "|---|---|---|---|---|---|"]
        for i, f in enumerate(report.findings, 1):
            v = f.verified
            vtext = f"{v['metric']}: {format_value(v['before'])} → {format_value(v['after'])}" if v else ""
            what = " — ".join(t for t in (f.title, explains_text(f.explains), consequence_text(f.consequences)) if t)
            code = f"↳ `{f.code}` (explained by `{f.explained_by}`)" if f.explained_by else f"`{f.code}`"
            lines.append(f"| {i} | {f.severity} | {code} | {_cell(what)} | {_cell(f.fix)} | {vtext} |")
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
