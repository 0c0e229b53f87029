"""label-shift and class-imbalance: the prior fixes, the checks on their scenarios, and healthy data."""

from __future__ import annotations

import numpy as np
import pytest

import whylow
from whylow.checks.priors import imbalance_explains_shift, total_variation
from whylow.errors import InvalidInputError
from whylow.fixes.priors import (
    adjust_priors,
    bbse_priors,
    class_weights,
    em_priors,
    fit_tau,
    logit_adjust,
    smoothed_priors,
)
from whylow.scenarios import build

MY_CODES = {"label-shift", "class-imbalance"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Train the scenario CNNs on one thread: on a shared 2-core machine, two threads are several times slower."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def _gaussian_model(q, n, seed, sep=2.0):
    """Labels drawn with priors ``q`` and the exact posterior of a 1-d Gaussian model under uniform priors."""
    rng = np.random.default_rng(seed)
    k = len(q)
    y = rng.choice(k, size=n, p=q)
    x = rng.normal(sep * y, 1.0)
    logits = -0.5 * (x[:, None] - sep * np.arange(k)[None, :]) ** 2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return y, p / p.sum(axis=1, keepdims=True)


# -- fixes -------------------------------------------------------------------------
def test_adjust_priors_is_bayes_rule():
    probs = np.array([[0.5, 0.5], [0.8, 0.2]])
    out = adjust_priors(probs, [0.5, 0.5], [0.9, 0.1])
    expected = probs * np.array([0.9, 0.1]) / np.array([0.5, 0.5])
    np.testing.assert_allclose(out, expected / expected.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(adjust_priors(probs, [0.3, 0.7], [0.3, 0.7]), probs)


def test_logit_adjust_equals_prior_correction_to_uniform():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    pri = np.array([0.6, 0.2, 0.15, 0.05])
    np.testing.assert_allclose(logit_adjust(probs, pri, 1.0), adjust_priors(probs, pri, np.full(4, 0.25)))
    np.testing.assert_allclose(logit_adjust(probs, pri, 0.0), probs)


def test_em_recovers_true_priors_without_labels():
    q_true = np.array([0.55, 0.25, 0.12, 0.08])
    y, probs = _gaussian_model(q_true, 6000, seed=1)
    q_hat, n_iter = em_priors(probs, np.full(4, 0.25))
    assert n_iter > 1
    assert np.abs(q_hat - np.bincount(y, minlength=4) / len(y)).max() < 0.03
    assert total_variation(q_hat, q_true) < 0.04


def test_bbse_recovers_true_priors():
    y_val, p_val = _gaussian_model(np.full(4, 0.25), 4000, seed=2)
    q_true = np.array([0.1, 0.2, 0.3, 0.4])
    _, p_test = _gaussian_model(q_true, 6000, seed=3)
    q_hat, cond = bbse_priors(y_val, p_val, p_test)
    assert cond > 0.1
    assert total_variation(q_hat, q_true) < 0.05


def test_fit_tau_and_class_weights():
    rng = np.random.default_rng(0)
    pri = np.array([0.9, 0.1])
    y = rng.integers(0, 2, 2000)
    # a model biased towards the majority class: adding log-prior to calibrated balanced logits
    score = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
    logits = np.stack([-score / 2, score / 2], axis=1) + np.log(pri)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    tau, ba = fit_tau(y, probs, pri)
    assert 0.5 <= tau <= 1.5
    assert ba > 0.8
    np.testing.assert_allclose(class_weights([90, 10]), [100 / 180, 100 / 20])
    np.testing.assert_allclose(class_weights([90, 10, 0]), [100 / 270, 100 / 30, 0.0])
    np.testing.assert_allclose(smoothed_priors(np.array([0, 0, 1]), 3), [0.5, 1 / 3, 1 / 6])


def test_fixes_reject_bad_priors():
    with pytest.raises(InvalidInputError, match="source_priors"):
        adjust_priors(np.full((2, 3), 1 / 3), [0.5, 0.5], [1, 1, 1])
    with pytest.raises(InvalidInputError, match="priors"):
        logit_adjust(np.full((2, 2), 0.5), [-1, 2])


def test_imbalance_explains_shift_rule():
    skewed, balanced = np.array([0.7, 0.1, 0.1, 0.1]), np.full(4, 0.25)
    assert imbalance_explains_shift(skewed, balanced, ratio=7.0, ratio_threshold=3.0)
    assert not imbalance_explains_shift(balanced, skewed, ratio=1.0, ratio_threshold=3.0)


# -- scenarios -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shift_report():
    return build("label-shift", seed=0).diagnose()


@pytest.fixture(scope="module")
def shift_unlabelled():
    sc = build("label-shift", seed=0, test_labels=False)
    return sc, sc.diagnose()


@pytest.fixture(scope="module")
def imbalance_report():
    return build("imbalance", seed=0).diagnose()


def test_label_shift_is_top_finding(shift_report, validate_report):
    top = shift_report.findings[0]
    assert top.code == "label-shift"
    assert top.severity in ("warning", "critical")
    ev = top.evidence
    assert ev["method"] == "label histograms"
    assert ev["p_value"] < 0.01 and ev["tv_distance"] >= 0.1
    assert top.verified is not None and "cross-fitted" in top.verified["note"]
    # prior correction helps on held-out halves
    pc = ev["prior_correction"]
    assert pc["log_loss_after"] < pc["log_loss_before"]
    assert not [f for f in shift_report.findings if f.code == "class-imbalance" and f.severity != "info"]
    validate_report(shift_report.to_dict())


def test_label_shift_without_test_labels_estimates_priors(shift_unlabelled):
    sc, report = shift_unlabelled
    found = [f for f in report.findings if f.code == "label-shift"]
    assert found and found[0].severity == "warning"
    assert found[0].verified is None  # nothing to re-measure without labels
    ev = found[0].evidence
    true_q = np.array(sc.notes["test_priors"])
    for key in ("bbse_estimate", "em_estimate"):
        est = np.array(list(ev[key]["priors"].values()))
        assert total_variation(est, true_q) < 0.1, key
    assert report.findings[0].code == "label-shift"


def test_class_imbalance_is_top_and_label_shift_defers(imbalance_report, validate_report):
    top = imbalance_report.findings[0]
    assert top.code == "class-imbalance"
    assert top.severity in ("warning", "critical")
    ev = top.evidence
    assert ev["imbalance_ratio"] >= 20
    assert ev["minority_recall"] < ev["majority_recall"] - 0.1 and ev["p_value"] < 0.01
    assert top.verified["metric"] == "balanced_accuracy"
    assert top.verified["after"] > top.verified["before"]
    assert "class weights" in top.fix
    shift = [f for f in imbalance_report.findings if f.code == "label-shift"]
    assert all(f.severity == "info" and "class-imbalance" in f.title for f in shift)
    validate_report(imbalance_report.to_dict())


def test_label_shift_prediction_only_input():
    """Predictions only (no images, no model): the label path still works and the fix is cross-fitted."""
    q_train, q_test = np.full(4, 0.25), np.array([0.7, 0.1, 0.1, 0.1])
    y_tr, p_tr = _gaussian_model(q_train, 3000, seed=4)
    y_te, p_te = _gaussian_model(q_test, 3000, seed=5)
    report = whylow.diagnose(test=whylow.Split(y=y_te, probs=p_te), train=whylow.Split(y=y_tr, probs=p_tr))
    found = [f for f in report.findings if f.code == "label-shift"]
    assert found and found[0].severity == "critical"  # the correction removes a large part of the loss
    assert found[0].verified["after"] != found[0].verified["before"]
    assert found[0].evidence["em_estimate"]["tv_to_true_test_priors"] < 0.05


@pytest.fixture(scope="module")
def healthy():
    return {seed: build("none", seed=seed) for seed in (0, 1)}


@pytest.mark.parametrize("seed", [0, 1])
def test_healthy_raises_no_prior_warning(healthy, seed):
    report = healthy[seed].diagnose()
    noisy = [f for f in report.findings if f.code in MY_CODES and f.severity != "info"]
    assert not noisy, [(f.code, f.title) for f in noisy]
    ran = {c.name: c.status for c in report.checks}
    assert ran["label-shift"] == "ran" and ran["class-imbalance"] == "ran"


def test_unlabelled_covariate_shift_is_not_called_label_shift(healthy):
    """Brighter test images move the predicted-class histogram, but re-weighting classes cannot explain the inputs."""
    sc = healthy[0]
    x = np.clip(sc.test.x * 2.5, 0.0, 1.0).astype(np.float32)
    report = sc.diagnose(test=whylow.Split(x=x))
    shift = [f for f in report.findings if f.code == "label-shift"]
    assert len(shift) == 1 and shift[0].severity == "info" and "covariate" in shift[0].title
    check = shift[0].evidence["input_check"]
    assert check["rms_smd_after_reweighting"] >= 0.25 and check["p_value_after_reweighting"] < 0.01


def test_unlabelled_label_shift_passes_input_check(shift_unlabelled):
    _, report = shift_unlabelled
    check = next(f for f in report.findings if f.code == "label-shift").evidence["input_check"]
    assert check["rms_smd_after_reweighting"] < check["rms_smd_raw"]
    assert check["rms_smd_after_reweighting"] < 0.25


def test_imbalance_bias_is_found_on_a_small_test_set():
    """25 test examples per class: errors flow only from the minority class to the others (a sign test sees it)."""
    rng = np.random.default_rng(0)
    k, per = 4, 25
    y = np.repeat(np.arange(k), per)
    probs = np.full((len(y), k), 0.05)
    pred = y.copy()
    minority = np.flatnonzero(y == 3)
    pred[minority[: per // 2]] = rng.integers(0, 3, per // 2)  # half the minority examples go to a majority class
    majority = np.flatnonzero(y < 3)
    wrong = rng.choice(majority, int(0.3 * len(majority)), replace=False)
    pred[wrong] = (y[wrong] + 1) % 3  # majority errors stay among the majority classes
    probs[np.arange(len(y)), pred] = 0.7
    probs[minority, 3] += 0.2  # the model still ranks minority examples highest on their own column
    probs /= probs.sum(axis=1, keepdims=True)
    train_y = np.repeat(np.arange(k), [200, 200, 200, 10])
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs), train=whylow.Split(y=train_y))
    found = next(f for f in report.findings if f.code == "class-imbalance")
    ev = found.evidence
    assert found.severity in ("warning", "critical"), found.title
    assert ev["majority_predicted_as_minority"] == 0 and ev["minority_predicted_as_majority"] >= 10
    assert ev["p_value"] < 0.01 < ev["recall_gap_p_value"]  # the recall comparison alone lacks the power


def test_balanced_training_no_imbalance_finding():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    probs = np.full((600, 3), 0.1)
    probs[np.arange(600), y] = 0.8
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs), train=whylow.Split(y=rng.permutation(y)))
    assert not [f for f in report.findings if f.code in MY_CODES]


def test_a_logit_adjustment_that_lowers_balanced_accuracy_verifies_nothing():
    """A minority class the model already over-predicts: the adjustment is tried, reported, and not called a verification."""
    rng = np.random.default_rng(0)
    y_train = np.r_[np.zeros(900, int), np.ones(900, int), np.full(30, 2)]
    y = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3))
    logits[np.arange(600), y] += 2.0
    logits[:, 2] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs), train=whylow.Split(y=y_train))
    found = [f for f in report.findings if f.code == "class-imbalance"]
    assert found and found[0].severity == "info" and found[0].verified is None
    tried = found[0].evidence["logit_adjustment_tried"]
    assert tried["after"] < tried["before"] and "did not raise" in tried["note"]
