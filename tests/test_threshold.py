"""decision-threshold: choosing a binary threshold on one split and verifying it on another."""

from __future__ import annotations

import json

import numpy as np
import pytest

import whylow
from whylow.checks.threshold import DecisionThresholdCheck, balanced_accuracy_gain_test
from whylow.context import Context
from whylow.errors import InvalidInputError
from whylow.fixes.threshold import (
    cross_fit_thresholds,
    fit_threshold,
    paired_gain_test,
    threshold_curve,
    threshold_metrics,
)
from whylow.inputs import prepare_splits
from whylow.scenarios import build


def binary(seed: int, n: int, prior: float = 0.5, spread: float = 2.0, shift: float = 0.0):
    """Calibrated binary scores (labels drawn from the score), optionally shifted in logit space afterwards."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(np.log(prior / (1 - prior)), spread, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    p = 1 / (1 + np.exp(-(logit + shift)))
    return y, np.column_stack([1 - p, p])


def _mine(report):
    return [f for f in report.findings if f.code == "decision-threshold"]


@pytest.fixture(scope="module")
def scenario_report():
    sc = build("decision-threshold")
    return sc, sc.diagnose()


def test_scenario_is_top_finding(scenario_report, validate_report):
    sc, report = scenario_report
    top = report.findings[0]
    assert top.code == sc.expected == "decision-threshold", [(f.code, f.severity, f.title) for f in report.findings]
    assert top.severity in ("warning", "critical")
    ev = top.evidence
    assert ev["metric"] == "balanced_accuracy" and ev["fitted_on"] == "val"
    assert ev["threshold"] < 0.5
    assert ev["p_value"] < 0.01 and ev["gain"] >= 0.03
    assert top.verified == {"metric": "balanced_accuracy", "before": pytest.approx(ev["at_0.5"]["balanced_accuracy"]),
                            "after": pytest.approx(ev["at_threshold"]["balanced_accuracy"])}
    assert ev["at_threshold"]["tpr"] > ev["at_0.5"]["tpr"]
    assert f"{ev['threshold']:.2f}" in top.fix and "instead of 0.5" in top.fix
    assert "1/4/7" in top.title
    # the model's miscalibration is a shift of its scores, so calibration defers to the threshold
    assert all(f.severity == "info" for f in report.findings if f.code in ("overconfidence", "underconfidence"))
    validate_report(json.loads(report.to_json()))


def test_balanced_calibrated_binary_model_raises_nothing_over_20_seeds():
    """Statistical-power sanity: 0.5 is optimal for these scores; 40 runs (with and without val) find nothing."""
    for seed in range(20):
        y, p = binary(seed, 300)
        yv, pv = binary(500 + seed, 300)
        for val in (None, whylow.Split(y=yv, probs=pv)):
            splits, names = prepare_splits({"test": whylow.Split(y=y, probs=p), "val": val})
            ctx = Context(splits=splits, n_classes=len(names), class_names=names, seed=seed)
            found = DecisionThresholdCheck().run(ctx)
            assert not found, (seed, [f.title for f in found])


def test_imbalanced_calibrated_scores_need_a_lower_threshold_cross_fitted():
    """A calibrated model on 10%-positive data maximises balanced accuracy near p = prior, not 0.5."""
    y, p = binary(0, 3000, prior=0.1, spread=1.5)
    report = whylow.diagnose(test=whylow.Split(y=y, probs=p), class_names=["neg", "pos"])
    found = _mine(report)
    assert len(found) == 1
    f = found[0]
    assert f.evidence["fitted_on"] == "test" and len(f.evidence["half_thresholds"]) == 2
    assert 0.03 < f.evidence["threshold"] < 0.3
    assert f.verified["after"] - f.verified["before"] >= 0.03
    assert "'pos'" in f.fix


def test_multiclass_problems_are_not_judged():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    p = rng.dirichlet(np.ones(3), 500)
    report = whylow.diagnose(test=whylow.Split(y=y, probs=p))
    assert not _mine(report)
    assert [c.status for c in report.checks if c.name == "decision-threshold"] == ["ran"]


def test_f1_metric_option():
    y, p = binary(1, 3000, prior=0.15, spread=1.5)
    yv, pv = binary(2, 2000, prior=0.15, spread=1.5)
    report = whylow.diagnose(
        test=whylow.Split(y=y, probs=p), val=whylow.Split(y=yv, probs=pv), options={"decision-threshold.metric": "f1"}
    )
    f = _mine(report)[0]
    assert f.verified["metric"] == "f1" and f.verified["after"] > f.verified["before"]
    assert "minority-class F1" in f.fix


def _brute_force_best(y, p, metric):
    best = -1.0
    for t in np.r_[np.unique(p), np.inf]:
        m = threshold_metrics(y, p >= t)
        minority = 1 if y.sum() <= (1 - y).sum() else 0
        v = m["balanced_accuracy"] if metric == "balanced_accuracy" else m["f1_positive" if minority else "f1_negative"]
        best = max(best, v)
    return best


@pytest.mark.parametrize("metric", ["balanced_accuracy", "f1"])
@pytest.mark.parametrize("seed", range(5))
def test_fit_threshold_matches_brute_force(seed, metric):
    rng = np.random.default_rng(seed)
    n = 60
    y = (rng.random(n) < 0.3).astype(int)
    y[:2] = [0, 1]
    p = np.round(np.clip(0.3 * y + rng.normal(0.3, 0.2, n), 0, 1), 2)  # rounded: ties between scores
    t, value = fit_threshold(y, p, metric)
    assert value == pytest.approx(_brute_force_best(y, p, metric))
    m = threshold_metrics(y, p >= t)
    minority = 1 if y.sum() <= (1 - y).sum() else 0
    got = m["balanced_accuracy"] if metric == "balanced_accuracy" else m["f1_positive" if minority else "f1_negative"]
    assert got == pytest.approx(value)
    curve = threshold_curve(y, p, metric)
    assert np.all(np.diff(curve["threshold"]) < 0)


def test_paired_gain_test():
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.3).astype(int)
    before = np.zeros(1000, dtype=int)
    same = paired_gain_test(y, before, before)
    assert same["p_value"] == 1.0 and same["gain"] == 0.0
    after = np.where(y == 1, rng.random(1000) < 0.6, rng.random(1000) < 0.1).astype(int)
    res = paired_gain_test(y, before, after)
    assert res["before"] == pytest.approx(0.5)
    assert res["gain"] == pytest.approx(res["after"] - 0.5) and res["p_value"] < 1e-10
    assert res["n_better"] == int(((after == y) & (before != y)).sum())
    reverse = paired_gain_test(y, after, before)
    assert reverse["gain"] == pytest.approx(-res["gain"]) and reverse["p_value"] > 0.99
    f1 = paired_gain_test(y, before, after, metric="f1", n_boot=500)
    assert f1["p_value"] < 0.01 and f1["after"] > f1["before"] == 0.0


def test_cross_fit_thresholds_use_the_other_half():
    y, p = binary(3, 400, prior=0.2)
    thresholds, (t1, t2) = cross_fit_thresholds(y, p[:, 1])
    assert set(np.unique(thresholds)) <= {t1, t2} and (thresholds == t1).sum() in (200, 199, 201)


def test_threshold_input_validation():
    with pytest.raises(InvalidInputError, match="binary"):
        fit_threshold(np.array([0, 2]), np.array([0.1, 0.9]))
    with pytest.raises(InvalidInputError, match="both classes"):
        fit_threshold(np.array([1, 1]), np.array([0.1, 0.9]))
    with pytest.raises(InvalidInputError, match="metric"):
        fit_threshold(np.array([0, 1]), np.array([0.1, 0.9]), metric="auc")
    with pytest.raises(InvalidInputError, match="shape"):
        fit_threshold(np.array([0, 1, 1]), np.array([0.1, 0.9]))


# -- the intervention: a cut misplaced by down-weighted training vs a model with no skill ---------------------


def _down_weighted(seed: int, n: int, prior: float = 0.25, shift: float = -2.0):
    """Scores of a model that ranks well but whose positive-class logits were pushed down (down-weighted in training)."""
    return binary(seed, n, prior=prior, spread=2.0, shift=shift)


def test_balanced_accuracy_gain_test_is_paired_and_one_sided():
    y = np.array([0] * 150 + [1] * 50)
    before = np.zeros(200, dtype=int)
    same = balanced_accuracy_gain_test(y, before, before, margin=0.01)
    assert same["p_value"] == 1.0 and same["gain"] == 0.0
    # every changed sample went the right way: the variance stays positive (Agresti-Min), the gain is proven
    after = np.r_[np.zeros(150), np.ones(20), np.zeros(30)].astype(int)
    res = balanced_accuracy_gain_test(y, before, after, margin=0.01)
    assert res["gain"] == pytest.approx(0.2) and res["se"] > 0 and res["p_value"] < 1e-6
    assert (res["n_better"], res["n_worse"]) == (20, 0)
    assert balanced_accuracy_gain_test(y, after, before, margin=0.01)["p_value"] > 0.99
    # a gain no larger than the negligible margin is not significant
    small = np.r_[np.zeros(150), np.ones(1), np.zeros(49)].astype(int)
    assert balanced_accuracy_gain_test(y, before, small, margin=0.01)["p_value"] > 0.3


def test_misplaced_cut_is_the_cause_and_misleading_metric_defers_to_it():
    y, p = _down_weighted(10, 400)
    yv, pv = _down_weighted(11, 200)
    report = whylow.diagnose(test=whylow.Split(y=y, probs=p), val=whylow.Split(y=yv, probs=pv), class_names=["other", "defect"])
    top = report.findings[0]
    assert top.code == "decision-threshold" and top.severity == "critical", [(f.code, f.severity, f.title) for f in report.findings]
    assert top.evidence["fitted_on"] == "val" and top.evidence["threshold"] < 0.3
    assert top.evidence["mean_predicted_positive_probability"] < top.evidence["test_positive_rate"]
    assert top.explains["metric"] == "balanced_accuracy" and 0.2 < top.explains["share"] <= 1.0
    assert "recall of 'defect'" in top.title
    mm = [f for f in report.findings if f.code == "misleading-metric"]
    assert all(f.severity == "info" and "see decision-threshold" in f.title for f in mm)
    assert all(f.evidence["threshold_fix"]["share_of_hidden_gap"] >= 0.5 for f in mm)


def test_no_skill_at_any_threshold_is_not_a_threshold_problem():
    """Rare positives the scores do not rank (AUC 0.5): no threshold helps; accuracy merely equals the constant."""
    rng = np.random.default_rng(12)
    y, yv = (rng.random(400) < 0.2).astype(int), (rng.random(200) < 0.2).astype(int)
    p, pv = rng.uniform(0.05, 0.3, 400), rng.uniform(0.05, 0.3, 200)
    report = whylow.diagnose(test=whylow.Split(y=y, probs=np.column_stack([1 - p, p])),
                             val=whylow.Split(y=yv, probs=np.column_stack([1 - pv, pv])))
    assert not _mine(report)
    mm = [f for f in report.findings if f.code == "misleading-metric"]
    assert len(mm) == 1 and mm[0].severity == "critical" and "threshold_fix" not in mm[0].evidence
