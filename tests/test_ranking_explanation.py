"""Ranking by explanation: symptoms under the cause that explains them, ``explains`` on findings, severity from effect.

The ranking rule is tested on hand-made findings; the behaviour it exists for
on real scenarios (small torch CNNs on scikit-learn's digits): an underfit
model's underconfidence, an overfit model's overconfidence, and a healthy
model whose validation loss rises late.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import whylow
from findings_asserts import assert_top, describe
from whylow import Finding
from whylow.report import CODES, Report, rank_findings
from whylow.report.finding import make_explains
from whylow.report.ranking import CAUSAL_TIER, EXPLAINS


def _f(code, severity="warning", confidence=0.9, **kwargs):
    return Finding(code, severity, confidence, f"{code} title", kwargs.pop("evidence", {}), "fix", **kwargs)


def _codes(findings):
    return [f.code for f in findings]


# -- the rule on hand-made findings ---------------------------------------------------------------


def test_a_large_calibration_gain_does_not_outrank_the_overfitting_that_produced_it():
    over = _f("overconfidence", "critical", 0.99, verified={"metric": "log_loss", "before": 1.0, "after": 0.5},
              explains=make_explains("log_loss", 0.5, 1.0, "the test log-loss"))
    fit = _f("overfitting", "warning", 0.7)
    ranked = rank_findings([over, _f("small-sample", "info"), fit])
    assert _codes(ranked) == ["overfitting", "overconfidence", "small-sample"]
    assert fit.consequences == [{"code": "overconfidence", "title": "overconfidence title"}]
    assert over.evidence["explained_by"] == {"code": "overfitting", "title": "overfitting title"}
    assert over.explained_by == "overfitting" and fit.explained_by is None
    assert over.severity == "critical"  # the symptom keeps its own severity (--fail-on still sees it)


def test_underconfidence_hangs_on_underfitting():
    ranked = rank_findings([_f("underconfidence", "critical", 0.99), _f("underfitting", "critical", 0.95)])
    assert _codes(ranked) == ["underfitting", "underconfidence"]
    assert ranked[0].consequences[0]["code"] == "underconfidence"


def test_an_info_cause_explains_nothing():
    over, fit = _f("overconfidence", "warning"), _f("overfitting", "info")
    ranked = rank_findings([fit, over])
    assert _codes(ranked) == ["overconfidence", "overfitting"]
    assert fit.consequences == [] and "explained_by" not in over.evidence


def test_causes_chain_and_a_critical_symptom_lifts_its_cause():
    lr = _f("learning-rate", "warning", 0.75)
    under = _f("underfitting", "critical", 0.99)
    conf = _f("underconfidence", "warning", 0.9)
    shift = _f("covariate-shift", "warning", 0.95, explains=make_explains("accuracy", 0.1, 0.2, "validation"))
    ranked = rank_findings([conf, shift, under, lr])
    # learning rate → underfitting → underconfidence; the group holds a critical finding, so it leads
    assert _codes(ranked) == ["learning-rate", "underfitting", "underconfidence", "covariate-shift"]
    assert [c["code"] for c in lr.consequences] == ["underfitting"]
    assert [c["code"] for c in under.consequences] == ["underconfidence"]


def test_class_imbalance_explains_its_symptoms_and_label_shift_only_when_the_test_set_is_balanced():
    def imbalance(balanced_test):
        return _f("class-imbalance", "critical", evidence={"test_priors_vs_training": {"test_is_more_balanced": balanced_test}})

    symptoms = lambda: [_f("misleading-metric"), _f("decision-threshold"), _f("label-shift")]  # noqa: E731
    ranked = rank_findings([*symptoms(), imbalance(True)])
    assert ranked[0].code == "class-imbalance"
    assert sorted(c["code"] for c in ranked[0].consequences) == ["decision-threshold", "label-shift", "misleading-metric"]
    ranked = rank_findings([*symptoms(), imbalance(False)])
    cause = next(f for f in ranked if f.code == "class-imbalance")
    # a test split as skewed as training: the imbalance explains neither the new mix nor a misplaced binary cut
    assert [c["code"] for c in cause.consequences] == ["misleading-metric"]
    assert next(f for f in ranked if f.code == "decision-threshold").explained_by == "label-shift"


def test_a_proven_threshold_fix_takes_the_misleading_metric_it_recovers():
    def misleading(share):
        return _f("misleading-metric", "info", evidence={"threshold_fix": {"share_of_hidden_gap": share}})

    ranked = rank_findings([misleading(0.8), _f("decision-threshold", "warning")])
    assert ranked[0].code == "decision-threshold" and ranked[1].explained_by == "decision-threshold"
    ranked = rank_findings([misleading(0.2), _f("decision-threshold", "warning")])
    assert next(f for f in ranked if f.code == "misleading-metric").explained_by is None


def test_overconfidence_hangs_on_a_learning_rate_and_on_an_imbalance_only_where_the_test_mix_differs():
    over = lambda val_gap: _f("overconfidence", "critical", evidence={"splits": {"val": {"gap": val_gap}, "test": {"gap": 0.3}}})  # noqa: E731
    ranked = rank_findings([over(0.3), _f("learning-rate", "warning")])
    assert ranked[0].code == "learning-rate" and ranked[1].explained_by == "learning-rate"
    assert rank_findings([over(0.01), _f("class-imbalance", "warning")])[1].explained_by == "class-imbalance"
    assert rank_findings([over(0.3), _f("class-imbalance", "warning")])[0].code == "overconfidence"


def test_a_shift_explains_scores_that_are_off_only_on_the_shifted_test_split():
    def over(val_gap):
        return _f("overconfidence", evidence={"splits": {"val": {"gap": val_gap}, "test": {"gap": 0.2}}})

    shift = _f("covariate-shift", "critical")
    assert rank_findings([over(0.01), shift])[1].explained_by == "covariate-shift"
    shift = _f("covariate-shift", "critical")
    assert rank_findings([over(0.18), shift])[1].explained_by is None  # miscalibrated on validation data too


def test_root_causes_then_accuracy_explained_then_causal_tier():
    noise = _f("label-noise", "warning", 0.6, explains=make_explains("accuracy", 0.2, 0.4))
    shift = _f("covariate-shift", "warning", 0.99, explains=make_explains("accuracy", 0.05, 0.4))
    leak = _f("train-test-leakage", "warning", 0.5)
    scores = _f("decision-threshold", "warning", 0.99, explains=make_explains("log_loss", 0.9, 1.0))
    quality = _f("data-quality", "warning", 0.3)
    ranked = rank_findings([scores, leak, shift, noise, quality])
    # unusable data first; then more of the accuracy shortfall explained; a log-loss share explains no accuracy
    assert _codes(ranked) == ["data-quality", "label-noise", "covariate-shift", "train-test-leakage", "decision-threshold"]
    assert rank_findings([_f("overconfidence", "info"), _f("small-sample", "warning")])[0].code == "small-sample"


def test_no_signal_takes_the_fit_and_score_symptoms_but_not_the_misleading_metric():
    ranked = rank_findings([_f("misleading-metric", "critical"), _f("overfitting", "warning"), _f("no-signal", "warning")])
    assert _codes(ranked) == ["misleading-metric", "no-signal", "overfitting"]
    assert ranked[2].explained_by == "no-signal" and ranked[0].explained_by is None


def test_ranking_twice_gives_the_same_report():
    findings = [_f("overconfidence", "critical"), _f("overfitting"), _f("learning-rate")]
    first = [(f.code, list(f.consequences), f.explained_by) for f in rank_findings(findings)]
    again = [(f.code, list(f.consequences), f.explained_by) for f in rank_findings(list(reversed(findings)))]
    assert first == again


def test_the_cause_table_is_closed_and_acyclic():
    assert set(CAUSAL_TIER) == set(CODES)
    for cause, symptoms in EXPLAINS.items():
        assert cause in CODES and set(symptoms) <= set(CODES) and cause not in symptoms

    def reaches(code, target, seen=()):
        return any(s == target or (s not in seen and reaches(s, target, (*seen, s))) for s in EXPLAINS.get(code, {}))

    assert not [c for c in EXPLAINS if reaches(c, c)]


# -- explains and consequences in the report ---------------------------------------------------------


def test_make_explains_and_its_validation():
    e = make_explains("accuracy", 0.21, 0.25, "the reference model")
    assert e == {"metric": "accuracy", "gap": 0.21, "share": 0.84, "shortfall": 0.25, "against": "the reference model"}
    assert make_explains("accuracy", 0.3, 0.2)["share"] == 1.0  # a share is at most the whole
    assert make_explains("log_loss", 0.1)["share"] is None
    assert make_explains("accuracy", 0.0) is None and make_explains("accuracy", float("nan")) is None
    with pytest.raises(ValueError):
        make_explains("f1", 0.1)
    with pytest.raises(ValueError):
        Finding("overfitting", "info", 0.5, "t", explains={"metric": "accuracy"})


def test_explains_and_consequences_render_and_validate(validate_report):
    cause = _f("underfitting", "critical", explains=make_explains("accuracy", 0.21, 0.25, "the reference model"))
    symptom = _f("underconfidence", "warning", explains=make_explains("log_loss", 0.38, 0.84, "the test log-loss"))
    report = Report(inputs={"splits": {"test": {"n": 10}}, "n_classes": 2}, summary={"n_test": 10},
                    findings=rank_findings([symptom, cause]))
    data = json.loads(report.to_json())
    validate_report(data)
    first, second = data["findings"]
    assert first["explains"]["share"] == 0.84 and first["consequences"] == [{"code": "underconfidence", "title": "underconfidence title"}]
    assert second["consequences"] == [] and second["evidence"]["explained_by"]["code"] == "underfitting"
    text = report.to_text(width=160)
    assert "explains 21 accuracy points of the 25-point gap to the reference model" in text
    assert "→ also explains: underconfidence (underconfidence title)" in text
    assert "explains 0.38 nats of log-loss (45% of the test log-loss)" in text
    md = report.to_markdown()
    assert "also explains: underconfidence" in md and "explained by `underfitting`" in md
    html = report.to_html()
    assert "→ also explains:" in html and "explains 21 accuracy points" in html and "a consequence of" in html


# -- real scenarios ---------------------------------------------------------------------------------


def test_one_epoch_underfit_model_underfitting_first_underconfidence_its_consequence(diagnosed, validate_report):
    _, report = diagnosed("underfitting", width=16, epochs=1, lr=3e-3)
    assert_top(report, "underfitting")
    top = report.findings[0]
    assert top.severity == "critical" and top.explains["metric"] == "accuracy" and top.explains["share"] > 0.8
    for f in report.findings:
        if f.code == "underconfidence":
            assert f.explained_by == "underfitting" and "underconfidence" in [c["code"] for c in top.consequences]
            assert "not bad classification" not in f.title and "far below what the data allow" in f.title
            assert report.findings.index(f) == 1
    validate_report(report.to_dict())


def test_overfit_overconfident_model_overfitting_first_overconfidence_its_consequence(diagnosed, validate_report):
    """10 digits per class memorised over 100 epochs: the overconfidence on held-out data comes from the memorising."""
    _, report = diagnosed("memorised")
    assert_top(report, "overfitting")
    top = report.findings[0]
    assert top.severity in ("warning", "critical") and top.evidence["train_accuracy"] >= 0.99
    assert "overconfidence" in [c["code"] for c in top.consequences], describe(report)
    assert report.findings[1].code == "overconfidence" and report.findings[1].explained_by == "overfitting"
    assert top.explains["metric"] == "log_loss" and top.explains["share"] > 0.1
    assert report.verdict.startswith("Most likely cause: ") and "(overfitting)" in report.verdict
    assert "overconfident" in top.title  # the cost named: memorised, or trained past its best epoch into overconfidence
    validate_report(report.to_dict())


def _late_rise_history(val_at_best: float, val_last: float, acc_last: float) -> dict:
    """30 epochs: val loss lowest at epoch 18, up 31% by the end; val accuracy within a point; train loss falling."""
    epochs = np.arange(30)
    loss = list(0.12 + 2.2 * np.exp(-epochs / 4.0))
    down = np.linspace(1.8, val_at_best, 18)
    up = np.linspace(val_at_best, val_last, 13)[1:]
    val_loss = list(np.concatenate([down, up]))
    val_acc = list(np.concatenate([np.linspace(0.4, acc_last + 0.007, 18), np.full(12, acc_last)]))
    return {"loss": loss, "val_loss": val_loss, "accuracy": list(np.linspace(0.4, acc_last + 0.015, 30)),
            "val_accuracy": val_acc}


def test_late_val_loss_rise_on_a_healthy_model_raises_no_warning(diagnosed):
    from whylow.scenarios.base import torch_probs

    sc, _ = diagnosed("none")
    val = sc.val
    p = torch_probs(sc.model, val.x)
    nll = float(-np.log(np.clip(p[np.arange(len(val.y)), val.y], 1e-12, 1)).mean())
    acc = float((p.argmax(axis=1) == val.y).mean())
    history = _late_rise_history(val_at_best=nll / 1.31, val_last=nll, acc_last=acc)  # the rise ends at the model's own val loss
    report = whylow.diagnose(**{**sc.diagnose_kwargs(), "history": history})
    loud = [f for f in report.findings if f.severity != "info"]
    assert not loud, describe(report)
    over = [f for f in report.findings if f.code == "overfitting"]
    assert over and over[0].severity == "info", describe(report)
    hist = over[0].evidence["history"]
    assert hist["val_loss_rise"] > 0.2 and hist["best_epoch"] == 18 and not hist["weights_restored_to_best"]
    assert abs(hist["val_accuracy_at_best"] - hist["val_accuracy_last"]) < 0.01
    assert "at no cost worth acting on" in over[0].title


def test_healthy_model_findings_carry_no_consequences(diagnosed, validate_report):
    _, report = diagnosed("none")
    assert not [f for f in report.findings if f.severity != "info"], describe(report)
    data = report.to_dict()
    validate_report(data)
    assert all("explains" in f and "consequences" in f for f in data["findings"])
