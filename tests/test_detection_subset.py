"""A fast subset of the detection benchmark (benchmarks/detection.py), so a detection regression fails CI.

Each case goes through `detection.run_case`, the code path of the full
benchmark (build the scenario, run the full `whylow.diagnose` with every
registered check, score the findings), without the peers.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from conftest import load_detection_benchmark  # noqa: E402

#: (scenario, the code it must yield first); None: healthy, no warning/critical finding at all.
SUBSET = [
    ("none", None),
    ("normalisation", "preprocessing-mismatch"),
    ("overconfidence", "overconfidence"),
    ("no-signal", "no-signal"),
]


detection = load_detection_benchmark()


@pytest.fixture(scope="module")
def registry():
    return detection.scenario_specs()[0]


def test_subset_matches_the_benchmark_quick_list():
    assert [name for name, _ in SUBSET] == list(detection.QUICK_SCENARIOS)


@pytest.mark.slow
@pytest.mark.parametrize("name,expected", SUBSET, ids=[n for n, _ in SUBSET])
def test_detection_case(registry, name, expected):
    if name not in registry:
        pytest.skip(f"scenario {name!r} is not registered yet (no module in src/whylow/scenarios/ defines it)")
    spec = registry[name]
    assert spec.expected == expected, f"scenario {name!r} is registered with expected code {spec.expected!r}"
    result = detection.run_case(detection.default_case(spec), peers=False, timeout=None)
    assert result.ok, f"{name}: {result.status}: {result.error}"
    shown = detection._fmt_top(result)
    if expected is None:
        assert not result.false_alarms, f"healthy case raised warnings/criticals: {result.false_alarms}"
    else:
        assert result.top1, f"{name}: expected {expected} first (warning or critical), got {shown}"
        assert not result.false_alarms, f"{name}: unrelated warnings/criticals {result.false_alarms} (top: {shown})"


def test_scoring_rules():
    # Healthy: every alarm is false; fault: consequences listed in RELATED are not.
    alarms = [("overconfidence", "warning"), ("learning-rate", "critical")]
    assert detection.unrelated_alarms(None, alarms) == alarms
    assert detection.unrelated_alarms("overfitting", alarms) == [("learning-rate", "critical")]
    assert detection.unrelated_alarms("overfitting", alarms, related_extra=("learning-rate",)) == []
    declared = detection.declared_related({"expected_findings": ["no-signal", "covariate-shift (brightness)", "free text"]})
    assert declared == {"no-signal", "covariate-shift"}
    assert detection.declared_related(None) == set()
    case = detection.Case("x", "label-noise", {"seed": 0})
    r = detection.CaseResult(case, top=[("label-noise", "info", 0.9)])
    assert not r.top1 and r.top1_any and r.top3
    r = detection.CaseResult(case, top=[("overfitting", "warning", 0.9), ("label-noise", "critical", 0.8)])
    assert not r.top1 and not r.top1_any and r.top3
    r = detection.CaseResult(case, status="build failed", error="boom")
    assert not (r.top1 or r.top3)


def test_magnitudes_follow_the_builder_default():
    def frac(seed=0, magnitude=0.8):
        pass

    def scale(seed=0, magnitude=2.0):
        pass

    def count(seed=0, magnitude=4):
        pass

    def blend(seed=0, magnitude=1.0):
        pass

    def none(seed=0):
        pass

    assert detection.magnitudes_for(frac) == pytest.approx([0.6, 0.8, 0.9])  # a fraction stays below 1
    assert detection.magnitudes_for(scale) == [1.5, 2.0, 3.0]
    assert detection.magnitudes_for(count) == [3, 4, 6]
    assert detection.magnitudes_for(blend) == [0.5, 0.75, 1.0]  # 1.0 may be "full fault": never above it
    assert detection.magnitudes_for(none) == [None]
    scale.magnitudes = (5.0, 9.0)
    assert detection.magnitudes_for(scale) == [5.0, 9.0]
