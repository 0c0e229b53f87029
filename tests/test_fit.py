"""underfitting, overfitting, no-signal: planted faults found on top, healthy models left alone, the statistics."""

from __future__ import annotations

import numpy as np
import pytest

import whylow
from findings_asserts import assert_top, describe, only_finding
from whylow.checks.fit import bootstrap_mean_diff, signal_tests, wilson_interval

MY_CHECKS = {"underfitting", "overfitting", "no-signal", "misleading-metric", "small-sample", "learning-rate"}


# -- planted faults ----------------------------------------------------------


def test_underfitting_scenario(diagnosed, validate_report):
    _, report = diagnosed("underfitting")
    assert_top(report, "underfitting")
    f = only_finding(report, "underfitting")
    assert f.severity == "critical"
    ev = f.evidence
    assert ev["train_accuracy"] < 0.7 and ev["reference_accuracy"] > 0.9
    assert ev["deficit"] > 0.2 and ev["p_value"] < 1e-6
    assert abs(ev["train_accuracy"] - ev["held_out_accuracy"]) < 0.05  # no generalisation gap: it is not overfitting
    assert "logistic regression" in ev["reference"]
    assert "capacity" in f.fix
    assert not [g for g in report.findings if g.code == "overfitting"]
    validate_report(report.to_dict())


def test_overfitting_scenario(diagnosed, validate_report):
    """150 examples memorised: the 13-point gap is ordinary for that size, the cost is the overconfidence it leaves."""
    sc, report = diagnosed("overfitting")
    f = only_finding(report, "overfitting")
    assert f.severity == "warning"
    ev = f.evidence
    assert ev["held_out_split"] == "val" and ev["n_train"] == sc.notes["n_train"]
    assert ev["train_accuracy"] > 0.97 and ev["accuracy_gap"] >= 0.1
    # a linear model fitted on the same 150 examples does no better on unseen ones: no accuracy cost
    assert ev["reference_gap"] > 0.05 and ev["costs"]["below_reference"]["severity"] is None
    assert ev["log_loss_gap"] > 0.3 and ev["log_loss_gap_ci95"][0] > 0
    cost = ev["costs"]["memorised_overconfidence"]
    assert cost["severity"] == "warning" and cost["relative_gain"] >= 0.1 and cost["temperature"] > 1
    assert f.explains["metric"] == "log_loss" and 0 < f.explains["share"] < 1
    hist = ev["history"]
    assert hist["val_loss_rise"] > 0.05 and hist["epochs_after_best"] >= 3 and hist["train_loss_fell"]
    assert f"stop at epoch {hist['best_epoch']}" in f.fix.lower()
    assert not [g for g in report.findings if g.code == "underfitting"]
    # the overconfidence it produced hangs on it
    assert [c["code"] for c in f.consequences] == ["overconfidence"]
    validate_report(report.to_dict())
    assert_top(report, "overfitting")


def test_no_signal_scenario(diagnosed, validate_report):
    _, report = diagnosed("no-signal")
    f = only_finding(report, "no-signal")
    assert f.severity == "critical" and f.confidence > 0.9
    ev = f.evidence
    assert ev["p_accuracy"] > 0.01 and ev["p_log_loss"] > 0.01
    assert abs(ev["accuracy"] - ev["chance_accuracy"]) < 0.05
    assert abs(ev["reference_accuracy"] - ev["reference_chance_accuracy"]) < 0.05
    # the symptoms it produces are ranked below it
    codes = [g.code for g in report.findings]
    for symptom in ("overfitting", "overconfidence", "underfitting"):
        if symptom in codes:
            assert codes.index(symptom) > codes.index("no-signal")
    assert "underfitting" not in codes  # a linear model cannot learn random labels either: nothing to underfit
    validate_report(report.to_dict())
    assert_top(report, "no-signal")


@pytest.mark.parametrize("params", [{"seed": 0}, {"seed": 1, "width": 24}], ids=["seed0-width16", "seed1-width24"])
def test_healthy_models_raise_no_warning_from_these_checks(diagnosed, params):
    _, report = diagnosed("none", **params)
    loud = [f for f in report.findings if f.check in MY_CHECKS and f.severity != "info"]
    assert not loud, describe(report)
    ran = {c.name: c.status for c in report.checks}
    assert all(ran[name] == "ran" for name in MY_CHECKS), ran


# -- the checks on hand-made inputs ----------------------------------------------


def _probs_with_accuracy(y, k, acc, conf, rng):
    """Predictions right on a fraction ``acc`` of rows, with top probability ``conf``."""
    n = y.size
    pred = y.copy()
    wrong = rng.random(n) >= acc
    pred[wrong] = (y[wrong] + rng.integers(1, k, wrong.sum())) % k
    probs = np.full((n, k), (1 - conf) / (k - 1))
    probs[np.arange(n), pred] = conf
    return probs


def test_overfitting_from_predictions_and_its_absence():
    rng = np.random.default_rng(0)
    k = 5
    ytr, yva = rng.integers(0, k, 800), rng.integers(0, k, 400)
    train = whylow.Split(y=ytr, probs=_probs_with_accuracy(ytr, k, 1.0, 0.99, rng))
    overfit = whylow.diagnose(train=train, val=whylow.Split(y=yva, probs=_probs_with_accuracy(yva, k, 0.7, 0.99, rng)),
                              test=whylow.Split(y=yva, probs=_probs_with_accuracy(yva, k, 0.7, 0.99, rng)))
    f = only_finding(overfit, "overfitting")
    assert f.severity == "critical" and 0.25 < f.evidence["accuracy_gap"] < 0.35
    lo, hi = f.evidence["accuracy_gap_ci95"]
    assert lo < f.evidence["accuracy_gap"] < hi and hi - lo < 0.12
    ok = whylow.diagnose(train=train, val=whylow.Split(y=yva, probs=_probs_with_accuracy(yva, k, 0.98, 0.99, rng)),
                         test=whylow.Split(y=yva, probs=_probs_with_accuracy(yva, k, 0.98, 0.99, rng)))
    assert not [g for g in ok.findings if g.code == "overfitting"]


def test_overfitting_from_history_alone_is_info():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    test = whylow.Split(y=y, probs=_probs_with_accuracy(y, 3, 0.9, 0.8, rng))
    loss = list(np.geomspace(1.1, 0.02, 20))
    val = [0.9, 0.7, 0.55, 0.45, 0.4, 0.38, 0.37, 0.38, 0.4, 0.43, 0.46, 0.5, 0.53, 0.57, 0.6, 0.63, 0.66, 0.7, 0.72, 0.75]
    report = whylow.diagnose(test=test, history={"loss": loss, "val_loss": val})
    f = only_finding(report, "overfitting")
    assert f.severity == "info"  # a val-loss rise with no accuracy in the history: no cost to act on
    assert f.evidence["history"]["best_epoch"] == 7 and f.evidence["history"]["val_loss_rise"] > 0.8
    assert "stop at epoch 7" in f.fix.lower()
    flat = whylow.diagnose(test=test, history={"loss": loss, "val_loss": list(np.geomspace(1.0, 0.3, 20))})
    assert not [g for g in flat.findings if g.code == "overfitting"]


def test_no_signal_on_random_predictions_and_not_on_informative_ones():
    rng = np.random.default_rng(2)
    k, n = 4, 600
    y = rng.integers(0, k, n)
    random_probs = rng.dirichlet(np.ones(k) * 0.5, n)
    report = whylow.diagnose(test=whylow.Split(y=y, probs=random_probs))
    f = only_finding(report, "no-signal")
    assert f.severity == "critical" and f.verified is None  # no training priors: nothing to verify against
    assert f.evidence["priors_from"] == "test class frequencies"
    informative = _probs_with_accuracy(y, k, 0.4, 0.4, rng)  # weak but real signal: 0.40 vs 0.25 by chance
    assert not [g for g in whylow.diagnose(test=whylow.Split(y=y, probs=informative)).findings if g.code == "no-signal"]


def test_no_signal_verified_against_training_priors():
    rng = np.random.default_rng(3)
    y_tr, y_te = rng.integers(0, 2, 500), rng.integers(0, 2, 300)
    overconfident = rng.dirichlet([0.3, 0.3], 300)  # random and extreme: worse than the priors
    report = whylow.diagnose(train=whylow.Split(y=y_tr), test=whylow.Split(y=y_te, probs=overconfident))
    f = only_finding(report, "no-signal")
    assert f.verified["metric"] == "log_loss" and f.verified["after"] < f.verified["before"]
    assert f.evidence["priors_from"] == "training class frequencies"


def test_underfitting_against_the_reference_on_tabular_data():
    rng = np.random.default_rng(4)
    n, k = 900, 3
    x = rng.normal(size=(n, 6))
    y = np.argmax(x[:, :k] * 3 + rng.normal(size=(n, k)) * 0.3, axis=1)  # a linear model gets ~95%
    weak = _probs_with_accuracy(y, k, 0.55, 0.5, rng)
    report = whylow.diagnose(train=whylow.Split(x=x, y=y, probs=weak, layout="tabular"),
                             test=whylow.Split(x=x[:300], y=y[:300], probs=weak[:300], layout="tabular"))
    f = only_finding(report, "underfitting")
    assert f.severity == "critical" and f.evidence["reference_accuracy"] > 0.85
    good = _probs_with_accuracy(y, k, 0.99, 0.95, rng)
    report = whylow.diagnose(train=whylow.Split(x=x, y=y, probs=good, layout="tabular"),
                             test=whylow.Split(x=x[:300], y=y[:300], probs=good[:300], layout="tabular"))
    assert not [g for g in report.findings if g.code == "underfitting"]


def _run_check(check_cls, **splits):
    """Run one check on validated splits (no other check), returning its findings."""
    from whylow.context import Context
    from whylow.inputs import prepare_splits

    prepared, names = prepare_splits(splits)
    ctx = Context(splits=prepared, n_classes=len(names), class_names=names)
    return check_cls().run(ctx)


def test_reference_on_wide_tabular_inputs_and_on_too_few_examples():
    from whylow.checks.fit import REFERENCE_MAX_FEATURES, UnderfittingCheck

    rng = np.random.default_rng(9)
    n, d = 600, 3000
    z = rng.normal(size=(n, 5))  # 3,000 correlated columns driven by 5 latent factors, like pixels
    x = z @ rng.normal(size=(5, d)) + 0.5 * rng.normal(size=(n, d))
    y = (z[:, 0] > 0).astype(np.int64)
    probs = np.full((n, 2), 0.5)
    test = whylow.Split(y=y[:200], probs=probs[:200])
    (f,) = _run_check(UnderfittingCheck, train=whylow.Split(x=x, y=y, probs=probs, layout="tabular"), test=test)
    # a constant model vs a reference that finds the signal after the random projection
    assert REFERENCE_MAX_FEATURES < d
    assert f.severity == "critical" and f.evidence["reference_accuracy"] > 0.9
    assert _run_check(UnderfittingCheck, train=whylow.Split(x=x[:12], y=y[:12], probs=probs[:12], layout="tabular"), test=test) == []


def test_underfitting_from_a_still_falling_curve_is_only_info_without_a_reference():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 400)
    probs = _probs_with_accuracy(y, 3, 0.8, 0.6, rng)
    report = whylow.diagnose(train=whylow.Split(y=y, probs=probs), test=whylow.Split(y=y, probs=probs),
                             history={"loss": list(np.linspace(1.1, 0.5, 10))})
    f = only_finding(report, "underfitting")
    assert f.severity == "info" and f.evidence["still_falling"]


def test_thresholds_can_be_overridden():
    rng = np.random.default_rng(6)
    k = 5
    ytr, yva = rng.integers(0, k, 800), rng.integers(0, k, 400)
    kwargs = dict(train=whylow.Split(y=ytr, probs=_probs_with_accuracy(ytr, k, 1.0, 0.99, rng)),
                  val=whylow.Split(y=yva, probs=_probs_with_accuracy(yva, k, 0.91, 0.91, rng)),
                  test=whylow.Split(y=yva, probs=_probs_with_accuracy(yva, k, 0.91, 0.91, rng)))
    # held-out scores calibrated: only the accuracy gap (no reference without inputs) sets the severity
    default = only_finding(whylow.diagnose(**kwargs), "overfitting")
    assert default.severity == "warning"
    strict = only_finding(whylow.diagnose(**kwargs, options={"overfitting.critical_gap": 0.06, "overfitting.critical_gap_low": 0.03}), "overfitting")
    assert strict.severity == "critical"


# -- the statistics ------------------------------------------------------------


def test_signal_tests_calibrate_under_the_null():
    rng = np.random.default_rng(7)
    pvals = []
    for _ in range(40):
        y = rng.integers(0, 3, 200)
        probs = rng.dirichlet(np.ones(3), 200)
        t = signal_tests(y, probs, np.full(3, 1 / 3), n_permutations=199, seed=int(rng.integers(1 << 30)))
        pvals.append(t["p_accuracy"])
    assert 0.3 < np.mean(pvals) < 0.7  # uniform under the null
    assert np.mean(np.asarray(pvals) < 0.05) <= 0.15


def test_bootstrap_mean_diff_covers_the_true_difference():
    rng = np.random.default_rng(8)
    a, b = rng.random(500) < 0.9, rng.random(300) < 0.8
    lo, hi = bootstrap_mean_diff(a, b, seed=0)
    assert lo < 0.1 < hi and 0.05 < hi - lo < 0.15


def test_wilson_interval():
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.18
    lo, hi = wilson_interval(38, 40)
    assert lo < 0.95 < hi and hi < 1.0
