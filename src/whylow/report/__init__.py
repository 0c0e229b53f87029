"""Findings, the report, ranking and renderers (text, JSON, Markdown, HTML)."""

from whylow.report.finding import CODES, SEVERITIES, CheckStatus, Finding
from whylow.report.ranking import rank_findings
from whylow.report.report import Report, report_schema, write_atomic

__all__ = ["CODES", "SEVERITIES", "CheckStatus", "Finding", "Report", "rank_findings", "report_schema", "write_atomic"]
