"""label-noise: confident learning against cleanlab, the proxy, the scenarios, and healthy data."""

from __future__ import annotations

import numpy as np
import pytest

import whylow
from whylow.checks.label_noise import (
    ProxyLDA,
    confident_joint,
    confident_thresholds,
    cross_fitted_probs,
    estimate_noise_rate,
    find_label_issues,
)
from whylow.scenarios import build
from whylow.scenarios.label_faults import flip_labels


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


def _noisy_case(seed: int, n: int = 3000, k: int = 6, frac: float = 0.2):
    """Out-of-sample-like probabilities that follow the true class, and labels with ``frac`` flipped."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += rng.uniform(0.5, 4.0, n)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    y_noisy, flipped = flip_labels(y, frac, k, rng)
    return y_noisy, probs, flipped


# -- confident learning ---------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confident_learning_agrees_with_cleanlab(seed):
    cl_filter = pytest.importorskip("cleanlab.filter")
    cl_count = pytest.importorskip("cleanlab.count")
    y, probs, flipped = _noisy_case(seed)
    ours = find_label_issues(y, probs)
    theirs = cl_filter.find_label_issues(y, probs, n_jobs=1)
    jaccard = np.sum(ours & theirs) / np.sum(ours | theirs)
    assert jaccard >= 0.98
    assert np.abs(confident_joint(y, probs) - cl_count.compute_confident_joint(y, probs)).sum() <= 4
    np.testing.assert_allclose(confident_thresholds(y, probs), cl_count.get_confident_thresholds(y, probs))
    # and it finds the injected flips
    recall = np.isin(flipped, np.flatnonzero(ours)).mean()
    assert recall > 0.75
    assert abs(estimate_noise_rate(confident_joint(y, probs)) - len(flipped) / len(y)) < 0.12


def test_clean_labels_give_few_flags():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 2000)
    probs = np.full((2000, 5), 0.05)
    probs[np.arange(2000), y] = 0.8
    assert find_label_issues(y, probs).sum() == 0
    assert estimate_noise_rate(confident_joint(y, probs)) == 0.0


def test_proxy_is_out_of_sample_and_useful():
    from whylow.scenarios.base import digits_images

    x, y = digits_images(8)
    feats = x.reshape(len(x), -1).astype(np.float32)
    probs = cross_fitted_probs(feats, y, 10, seed=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == y).mean() > 0.85
    # out-of-sample: on pure-noise features the cross-fitted proxy is at chance, the in-sample fit is not
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(600, 60))
    labels = rng.integers(0, 3, 600)
    oos = (cross_fitted_probs(noise, labels, 3, seed=0).argmax(axis=1) == labels).mean()
    ins = (ProxyLDA(3).fit(noise, labels).predict_proba(noise).argmax(axis=1) == labels).mean()
    assert oos < 0.42 < ins


def test_predictions_only_model_path():
    """No inputs: the model's flags alone, behind a stricter gate."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 2000)
    probs = np.full((2000, 5), 0.02)
    probs[np.arange(2000), y] = 0.92  # a confident, correct model
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs))
    assert not [f for f in report.findings if f.code == "label-noise"]
    noisy_y, _ = flip_labels(y, 0.25, 5, rng)
    report = whylow.diagnose(test=whylow.Split(y=noisy_y, probs=probs))
    found = [f for f in report.findings if f.code == "label-noise"]
    assert found and found[0].severity == "warning"
    ev = found[0].evidence["splits"][0]
    assert "only" in ev["source"] and abs(ev["flagged_rate"] - 0.25) < 0.05


def test_predictions_only_weak_model_is_not_label_noise():
    """A weak, unconfident model disagrees with clean labels often; that is not label noise."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 3000)
    logits = rng.normal(0, 1.0, size=(3000, 4))
    logits[np.arange(3000), y] += 0.8
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs))
    assert not [f for f in report.findings if f.code == "label-noise" and f.severity != "info"]


# -- scenarios -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def noise_both():
    sc = build("label-noise", seed=0)
    return sc, sc.diagnose()


@pytest.fixture(scope="module")
def noise_test():
    sc = build("label-noise", seed=0, where="test")
    return sc, sc.diagnose()


def test_label_noise_is_top_finding(noise_both, validate_report):
    sc, report = noise_both
    top = report.findings[0]
    assert top.code == "label-noise" and top.severity == "critical"
    splits = {s["split"]: s for s in top.evidence["splits"]}
    test = splits["test"]
    assert test["flagged_rate"] > 0.2 and test["p_value"] < 1e-6
    assert top.verified["after"] > top.verified["before"] + 0.1
    assert len(test["examples"]) == 20
    flipped = set(sc.notes["flipped"]["test"])
    precision = np.mean([e["index"] in flipped for e in test["examples"]])
    assert precision >= 0.9
    assert {"index", "given", "suggested"} <= set(test["examples"][0])
    assert "in-sample" in splits["train"]["source"]
    validate_report(report.to_dict())


def test_label_noise_in_evaluation_labels_only(noise_test):
    sc, report = noise_test
    top = report.findings[0]
    assert top.code == "label-noise"
    splits = {s["split"]: s for s in top.evidence["splits"]}
    assert splits["test"]["severity"] == "critical"
    assert splits["train"]["severity"] is None and splits["val"]["severity"] is None


def test_label_noise_in_training_labels_found_with_proxy():
    sc = build("label-noise", seed=1, where="train")
    report = sc.diagnose()
    found = [f for f in report.findings if f.code == "label-noise"]
    assert found and found[0].severity in ("warning", "critical")
    splits = {s["split"]: s for s in found[0].evidence["splits"]}
    tr = splits["train"]
    assert tr["severity"] in ("warning", "critical")
    assert tr["excess_rate"] > 0.15 and tr["p_value"] < 0.01
    flipped = set(sc.notes["flipped"]["train"])
    assert np.mean([e["index"] in flipped for e in tr["examples"]]) >= 0.9
    assert splits["test"]["severity"] is None  # test labels are clean


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_raises_no_label_noise(seed):
    report = build("none", seed=seed).diagnose()
    assert not [f for f in report.findings if f.code == "label-noise" and f.severity != "info"]
    assert {c.name: c.status for c in report.checks}["label-noise"] == "ran"


# -- evaluation labels judged against validation labels ---------------------------------------------
def _model_outputs(rng, y: np.ndarray, k: int) -> np.ndarray:
    """Probabilities of a good, roughly calibrated model for true classes ``y``: confidence varies, ~85% right."""
    logits = rng.normal(size=(len(y), k))
    logits[np.arange(len(y)), y] += rng.uniform(0.5, 6.0, len(y))
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def _val_and_test(seed: int, k: int = 5, n: int = 600, test_prior=None):
    rng = np.random.default_rng(seed)
    y_val = rng.integers(0, k, n)
    y_test = rng.choice(k, n, p=test_prior) if test_prior is not None else rng.integers(0, k, n)
    return rng, (y_val, _model_outputs(rng, y_val, k)), (y_test, _model_outputs(rng, y_test, k))


def test_matched_accuracies_predict_a_clean_split():
    from whylow.checks.label_noise import class_matched_accuracy, confidence_matched_accuracy

    _, (yv, pv), (yt, pt) = _val_and_test(0)
    correct_v, acc_t = pv.argmax(axis=1) == yv, (pt.argmax(axis=1) == yt).mean()
    by_conf, var_conf = confidence_matched_accuracy(pv.max(axis=1), correct_v, pt.max(axis=1))
    by_class, var_class = class_matched_accuracy(yv, correct_v, yt, 5)
    assert abs(by_conf - acc_t) < 3 * np.sqrt(var_conf + 0.25 / len(yt))
    assert abs(by_class - acc_t) < 3 * np.sqrt(var_class + 0.25 / len(yt))
    # a class the reference lacks takes the reference's overall accuracy
    assert class_matched_accuracy(np.zeros(4, int), np.array([1, 1, 0, 0], bool), np.ones(3, int), 2)[0] == 0.5


def test_wrong_test_labels_found_against_clean_validation_labels():
    """Test labels flipped, validation labels clean, the same model: test accuracy falls at every confidence."""
    rng, (yv, pv), (yt, pt) = _val_and_test(1)
    noisy, _ = flip_labels(yt, 0.2, 5, rng)
    report = whylow.diagnose(test=whylow.Split(y=noisy, probs=pt), val=whylow.Split(y=yv, probs=pv))
    found = [f for f in report.findings if f.code == "label-noise"]
    assert found and found[0].severity == "critical" and report.findings[0].code == "label-noise"
    test = {s["split"]: s for s in found[0].evidence["splits"]}["test"]
    assert test["decided_by"] == "validation reference"
    assert 0.12 < test["accuracy_drop_vs_val"] < 0.22 and test["val_reference_p_value"] < 1e-6
    assert abs(test["val_reference_noise_rate"] - 0.2) < 0.06
    assert found[0].explains["share"] > 0.4 and found[0].explains["against"].startswith("validation")


@pytest.mark.parametrize("test_prior", [None, [0.6, 0.1, 0.1, 0.1, 0.1]])
def test_clean_test_labels_stay_quiet_against_validation(test_prior):
    """Same model, clean labels (also with another class mix on test): no label-noise warning."""
    _, (yv, pv), (yt, pt) = _val_and_test(2, test_prior=test_prior)
    report = whylow.diagnose(test=whylow.Split(y=yt, probs=pt), val=whylow.Split(y=yv, probs=pv))
    assert not [f for f in report.findings if f.code == "label-noise" and f.severity != "info"]


def test_hard_training_examples_are_not_wrong_labels():
    """A healthy grid model (logistic regression on digits) whose proxy flags more training than test examples:
    training the proxy without them makes it worse, which refutes wrong labels."""
    from whylow.scenarios.grid import build_case, sample_case

    sc = build_case(sample_case(5302, fault=None))
    report = sc.diagnose(seed=5302)
    assert not [f for f in report.findings if f.code == "label-noise" and f.severity != "info"]
