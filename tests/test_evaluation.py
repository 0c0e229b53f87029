"""misleading-metric and small-sample: planted faults on top, hand-made cases, no false alarms."""

from __future__ import annotations

import numpy as np
import pytest

import whylow
from findings_asserts import assert_top, describe, only_finding

def _none_of(report, code):
    return not [f for f in report.findings if f.code == code]


# -- scenarios -----------------------------------------------------------------


def test_misleading_metric_scenario(diagnosed, validate_report):
    _, report = diagnosed("misleading-metric")
    assert_top(report, "misleading-metric")
    f = only_finding(report, "misleading-metric")
    assert f.severity == "critical"
    ev = f.evidence
    assert abs(ev["accuracy"] - ev["majority_baseline_accuracy"]) < 0.02 and ev["majority_baseline_accuracy"] > 0.85
    assert ev["balanced_accuracy"] == pytest.approx(0.5, abs=0.05)
    assert ev["worst_classes"][0]["class"] == "positive" and ev["worst_classes"][0]["recall"] < 0.1
    for key in ("log_loss", "prior_log_loss", "brier", "prior_brier"):
        assert ev[key] is not None
    assert "balanced accuracy" in f.fix and "per-class recall" in f.fix
    # no-signal is true here as well, but reported below: accuracy is what hides it
    ns = only_finding(report, "no-signal")
    assert ns.severity == "warning"
    validate_report(report.to_dict())


def test_small_sample_scenario(diagnosed, validate_report):
    sc, report = diagnosed("small-sample")
    assert_top(report, "small-sample")
    f = only_finding(report, "small-sample")
    assert f.severity == "warning"
    ev = f.evidence
    assert ev["n_test"] == sc.notes["n_test"] == 40
    lo, hi = ev["accuracy_ci95"]
    assert lo < ev["accuracy"] <= hi and ev["accuracy_ci_width"] > 0.1
    assert ev["n_classes_below_min_support"] == 10 and ev["smallest_class_support"] == 4
    assert ev["n_test_for_target_width"] > 200
    validate_report(report.to_dict())


def test_healthy_scenario_has_no_evaluation_warning(diagnosed):
    _, report = diagnosed("none")
    assert not [f for f in report.findings if f.check in ("misleading-metric", "small-sample") and f.severity != "info"], describe(report)


# -- misleading-metric on hand-made predictions ------------------------------------


def _constant_majority(n, rate, rng):
    y = (rng.random(n) < rate).astype(np.int64)
    p1 = np.clip(rate + rng.normal(0, 0.01, n), 0.01, 0.4)
    return y, np.column_stack([1 - p1, p1])


def test_constant_predictor_on_imbalanced_data_is_critical():
    rng = np.random.default_rng(0)
    y, probs = _constant_majority(1000, 0.1, rng)
    f = only_finding(whylow.diagnose(test=whylow.Split(y=y, probs=probs), class_names=["ok", "defect"]), "misleading-metric")
    assert f.severity == "critical"
    assert "no better than always predicting 'ok'" in f.title and "'defect' has recall 0.00" in f.title
    assert f.evidence["p_accuracy_vs_majority"] > 0.4
    assert f.evidence["predicted_class_counts"] == {"ok": 1000}


def test_accuracy_at_baseline_with_per_class_skill_is_a_warning():
    # the model catches half the minority but makes as many false alarms: accuracy equals the baseline,
    # balanced accuracy shows real skill
    rng = np.random.default_rng(1)
    n = 2000
    y = (rng.random(n) < 0.1).astype(np.int64)
    pred = y.copy()
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    pred[rng.choice(pos, pos.size // 2, replace=False)] = 0
    pred[rng.choice(neg, pos.size // 2, replace=False)] = 1
    probs = np.where(pred[:, None] == np.arange(2), 0.8, 0.2)
    f = only_finding(whylow.diagnose(test=whylow.Split(y=y, probs=probs)), "misleading-metric")
    assert f.severity == "warning" and f.evidence["balanced_accuracy"] > 0.65


def test_a_lost_class_hidden_by_the_average_is_a_warning():
    rng = np.random.default_rng(2)
    k, n = 10, 2000
    y = rng.integers(0, k, n)
    pred = y.copy()
    lost = y == 3
    pred[lost] = 5  # class 3 is always called 5
    probs = np.full((n, k), 0.02)
    probs[np.arange(n), pred] = 0.82
    f = only_finding(whylow.diagnose(test=whylow.Split(y=y, probs=probs)), "misleading-metric")
    assert f.severity == "warning" and "class '3'" in f.title
    assert f.evidence["near_zero_recall_classes"] == ["3"]


def test_a_weak_model_with_one_poorly_recognised_small_class_is_not_a_misleading_headline():
    """Accuracy 0.6 on five classes, one of 19 examples recognised once: the low accuracy shows it, nothing is hidden."""
    rng = np.random.default_rng(6)
    k = 5
    y = np.r_[np.repeat([0, 1, 2, 3], 25), np.full(19, 4)]
    pred = np.where(rng.random(y.size) < 0.8, y, (y + 1 + rng.integers(0, k - 1, y.size)) % k)
    pred[y == 4] = np.r_[4, np.zeros(18, dtype=int)]
    probs = np.full((y.size, k), 0.1)
    probs[np.arange(y.size), pred] = 0.6
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs))
    assert report.summary["accuracy"] < 0.7
    assert not [f for f in report.findings if f.code == "misleading-metric" and f.severity != "info"], describe(report)


def test_accuracy_at_baseline_is_info_when_a_held_out_threshold_recovers_the_minority():
    """Binary scores pushed below 0.5 for the positives: accuracy equals the constant, a threshold from val fixes it."""
    rng = np.random.default_rng(7)

    def split(n):
        y = (rng.random(n) < 0.25).astype(np.int64)
        p1 = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 3.0 * y - 3.5)))
        return whylow.Split(y=y, probs=np.column_stack([1 - p1, p1]))

    report = whylow.diagnose(test=split(600), val=split(300), class_names=["ok", "defect"])
    f = only_finding(report, "misleading-metric")
    assert f.severity == "info" and "see decision-threshold" in f.title, describe(report)
    fix = f.evidence["threshold_fix"]
    assert fix["fitted_on"] == "val" and fix["threshold"] < 0.5 and fix["share_of_hidden_gap"] >= 0.5
    assert report.findings[0].code == "decision-threshold"


def test_balanced_good_model_is_not_flagged():
    rng = np.random.default_rng(3)
    k, n = 10, 2000
    y = rng.integers(0, k, n)
    probs = np.full((n, k), 0.01)
    probs[np.arange(n), y] = 0.91
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs))
    assert _none_of(report, "misleading-metric") and _none_of(report, "small-sample")


def test_imbalanced_but_good_model_is_not_flagged():
    rng = np.random.default_rng(4)
    n = 3000
    y = (rng.random(n) < 0.1).astype(np.int64)
    pred = np.where(rng.random(n) < 0.97, y, 1 - y)
    probs = np.where(pred[:, None] == np.arange(2), 0.9, 0.1)
    assert _none_of(whylow.diagnose(test=whylow.Split(y=y, probs=probs)), "misleading-metric")


# -- small-sample on hand-made predictions ------------------------------------------


def _good(n, k, acc, rng):
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < acc, y, (y + 1) % k)
    probs = np.full((n, k), 0.1 / (k - 1))
    probs[np.arange(n), pred] = 0.9
    return y, probs


def test_tiny_test_split_is_a_warning_and_a_large_one_is_fine():
    rng = np.random.default_rng(5)
    y, probs = _good(30, 2, 0.8, rng)
    f = only_finding(whylow.diagnose(test=whylow.Split(y=y, probs=probs)), "small-sample")
    assert f.severity == "warning" and f.evidence["accuracy_ci_width"] > 0.15
    y, probs = _good(5000, 2, 0.8, rng)
    assert _none_of(whylow.diagnose(test=whylow.Split(y=y, probs=probs)), "small-sample")


def test_a_rare_class_is_info():
    rng = np.random.default_rng(6)
    y, probs = _good(3000, 3, 0.9, rng)
    y[y == 2] = 0
    y[:15] = 2  # 15 examples of class 2
    f = only_finding(whylow.diagnose(test=whylow.Split(y=y, probs=probs)), "small-sample")
    assert f.severity == "info"
    assert f.evidence["classes_below_min_support"][0]["class"] == "2" and f.evidence["classes_below_min_support"][0]["support"] == 15


def test_all_correct_small_split_still_gets_an_interval():
    # a bootstrap interval collapses to [1, 1] here; the Wilson interval does not
    y = np.arange(40) % 2
    probs = np.where(y[:, None] == np.arange(2), 0.99, 0.01)
    f = only_finding(whylow.diagnose(test=whylow.Split(y=y, probs=probs)), "small-sample")
    lo, hi = f.evidence["accuracy_ci95"]
    assert hi == 1.0 and lo < 0.93
