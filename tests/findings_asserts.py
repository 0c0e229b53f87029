"""Assertions on a report's findings shared by the check tests."""

from __future__ import annotations


def describe(report) -> list:
    """A compact view of the findings, for assertion messages."""
    return [(f.code, f.severity, f.check, f.verified is not None, f.title[:90]) for f in report.findings]


def assert_top(report, expected: str) -> None:
    """The top finding has code ``expected``."""
    assert report.findings and report.findings[0].code == expected, describe(report)


def only_finding(report, code: str):
    """The single finding with ``code`` (fails when there are none or several)."""
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, describe(report)
    return found[0]
