"""Tests of whylow.metrics: against scikit-learn / netcal, hand-computed cases,
invariances, smooth-ECE sanity and exactness, bootstrap and streaming properties."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from whylow import metrics as M
from whylow.errors import InvalidInputError

pytestmark = pytest.mark.filterwarnings(
    # sklearn warns about classes missing from y_true / y_pred and float32 row sums
    "ignore::UserWarning"
)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def softmax_data(n, k, seed, *, signal=2.0, temperature=1.0, absent=(), dtype=np.float64):
    """Seeded softmax predictions with some signal for the true class."""
    rng = np.random.default_rng(seed)
    allowed = np.setdiff1d(np.arange(k), np.asarray(absent, dtype=int))
    y = rng.choice(allowed, size=n)
    logits = rng.standard_normal((n, k))
    logits[np.arange(n), y] += signal * rng.uniform(0, 2, size=n)
    logits /= temperature
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return y, probs.astype(dtype)


def calibrated_top_label(n, seed, *, shift=0.0, low=0.5, high=1.0, k=2):
    """Predictions whose top-label confidence is ~ U(low, high) and whose top
    class is right with probability ``conf - shift`` (shift > 0: overconfident).

    Row = [conf, (1 - conf) / (k - 1), ...]; the top class is class 0 whenever
    conf > 1 / k, and y_true is 0 exactly when the prediction is right.
    """
    rng = np.random.default_rng(seed)
    conf = rng.uniform(low, high, size=n)
    right = rng.uniform(size=n) < np.clip(conf - shift, 0.0, 1.0)
    rest = (1.0 - conf) / (k - 1)
    probs = np.column_stack([conf] + [rest] * (k - 1))
    y = np.where(right, 0, 1)
    return y, probs


CASES = {
    "k3": lambda: softmax_data(200, 3, 0),
    "binary": lambda: softmax_data(150, 2, 1),
    "k1000": lambda: softmax_data(400, 1000, 2, signal=4.0),
    "one-sample": lambda: softmax_data(1, 4, 3),
    "absent-class": lambda: softmax_data(120, 5, 4, absent=(2,)),
    "float32": lambda: softmax_data(300, 10, 5, dtype=np.float32),
    "overconfident": lambda: softmax_data(500, 10, 6, temperature=0.3),
}


@pytest.fixture(params=list(CASES), scope="module")
def case(request):
    return CASES[request.param]()


# --------------------------------------------------------------------------
# registry: (whylow function, reference) pairs, like sklearn's test_common.py
# --------------------------------------------------------------------------


def _labels(probs):
    return np.arange(probs.shape[1])


def _netcal_ece(y, probs):
    netcal = pytest.importorskip("netcal.metrics")
    probs = np.asarray(probs, np.float64)
    if len(np.unique(y)) > 2:
        return netcal.ECE(bins=15).measure(probs, y)  # its multiclass, top-label path
    # netcal switches to binary mode whenever y_true holds <= 2 labels and then measures
    # the calibration of p(class 1); its binary path on (top-label confidence, correct)
    # is the top-label ECE
    conf, correct = probs.max(axis=1), (probs.argmax(axis=1) == y).astype(int)
    return netcal.ECE(bins=15).measure(conf, correct)


REGISTRY = {
    "accuracy": (M.accuracy, lambda y, p: skm.accuracy_score(y, p.argmax(axis=1))),
    "balanced_accuracy": (
        M.balanced_accuracy,
        lambda y, p: skm.balanced_accuracy_score(y, p.argmax(axis=1)),
    ),
    "log_loss": (M.log_loss, lambda y, p: skm.log_loss(y, p, labels=_labels(p))),
    "brier_score": (
        M.brier_score,
        lambda y, p: skm.brier_score_loss(y, p, labels=_labels(p), scale_by_half=p.shape[1] == 2),
    ),
    "ece": (M.ece, _netcal_ece),
}

#: every scalar metric of (y_true, probs), for the generic invariance tests
SCALAR = {
    **{name: ours for name, (ours, _) in REGISTRY.items()},
    "signed_ece": M.signed_ece,
    "ece_mass": lambda y, p: M.ece(y, p, binning="mass"),
    "mean_confidence": lambda y, p: M.mean_confidence(p),
    "mean_true_prob": M.mean_true_prob,
    "smooth_ece": M.smooth_ece,
}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_matches_reference(name, case):
    y, probs = case
    ours, reference = REGISTRY[name]
    tol = 1e-5 if probs.dtype == np.float32 else 1e-10
    assert ours(y, probs) == pytest.approx(reference(y, probs), rel=tol, abs=tol)


@pytest.mark.parametrize("name", list(SCALAR))
def test_returns_finite_python_float(name, case):
    y, probs = case
    value = SCALAR[name](y, probs)
    assert type(value) is float and np.isfinite(value)


@pytest.mark.parametrize("name", list(SCALAR))
def test_invariant_to_sample_order(name):
    y, probs = softmax_data(300, 6, 11)
    perm = np.random.default_rng(0).permutation(len(y))
    assert SCALAR[name](y[perm], probs[perm]) == pytest.approx(SCALAR[name](y, probs), abs=1e-12)


@pytest.mark.parametrize("name", list(SCALAR))
def test_invariant_to_class_relabelling(name):
    y, probs = softmax_data(300, 6, 12)
    perm = np.random.default_rng(1).permutation(6)  # new id of class j is perm[j]
    new_probs = np.empty_like(probs)
    new_probs[:, perm] = probs
    assert SCALAR[name](perm[y], new_probs) == pytest.approx(SCALAR[name](y, probs), abs=1e-12)


@pytest.mark.parametrize("name", list(SCALAR))
def test_float32_agrees_with_float64(name):
    y, probs = softmax_data(400, 8, 13)
    assert SCALAR[name](y, probs.astype(np.float32)) == pytest.approx(
        SCALAR[name](y, probs), abs=2e-5
    )


@pytest.mark.parametrize("name", list(SCALAR))
def test_independent_of_memory_layout(name):
    y, probs = softmax_data(400, 8, 14)
    expected = SCALAR[name](y, probs)
    wide = np.zeros((800, 8))
    wide[::2] = probs  # a strided view, as from a larger array
    for variant in (np.asfortranarray(probs), wide[::2]):
        assert SCALAR[name](y, variant) == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_registry_covers_peer_metrics():
    # the scalar metrics that have a scikit-learn or netcal counterpart are all tested against it
    assert {"accuracy", "balanced_accuracy", "log_loss", "brier_score", "ece"} <= set(REGISTRY)


# --------------------------------------------------------------------------
# matrix-valued metrics against sklearn
# --------------------------------------------------------------------------


def test_confusion_matrix_matches_sklearn(case):
    y, probs = case
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    ours = M.confusion_matrix(y, pred, k)
    assert ours.shape == (k, k) and ours.dtype == np.int64
    np.testing.assert_array_equal(ours, skm.confusion_matrix(y, pred, labels=_labels(probs)))


def test_per_class_metrics_match_sklearn(case):
    y, probs = case
    k = probs.shape[1]
    ours = M.per_class_metrics(y, probs)
    p, r, f, s = skm.precision_recall_fscore_support(
        y, probs.argmax(axis=1), labels=_labels(probs), zero_division=0
    )
    np.testing.assert_allclose(ours["precision"], p, atol=1e-12)
    np.testing.assert_allclose(ours["recall"], r, atol=1e-12)
    np.testing.assert_allclose(ours["f1"], f, atol=1e-12)
    np.testing.assert_array_equal(ours["support"], s)
    for key in ("precision", "recall", "f1", "support", "mean_true_prob"):
        assert ours[key].shape == (k,)
    for c in range(k):
        members = y == c
        if members.any():
            assert ours["mean_true_prob"][c] == pytest.approx(probs[members, c].mean(), rel=1e-6)
        else:
            assert np.isnan(ours["mean_true_prob"][c])


def test_per_class_absent_and_never_predicted_classes():
    y = np.array([0, 0, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.6, 0.3, 0.1]])
    m = M.per_class_metrics(y, probs)
    # class 1 is never predicted, class 2 is neither present nor predicted
    np.testing.assert_allclose(m["precision"], [2 / 3, 0.0, 0.0])
    np.testing.assert_allclose(m["recall"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(m["f1"], [0.8, 0.0, 0.0])
    np.testing.assert_array_equal(m["support"], [2, 1, 0])
    np.testing.assert_allclose(m["mean_true_prob"][:2], [0.85, 0.3])
    assert np.isnan(m["mean_true_prob"][2])


def test_balanced_accuracy_ignores_classes_absent_from_y_true():
    y = np.array([0, 0, 1, 1])
    # class 2 is predicted once but never true: recall 0.5 for class 0, 1 for class 1
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    assert M.balanced_accuracy(y, probs) == pytest.approx(0.75)


# --------------------------------------------------------------------------
# brier and log loss specifics
# --------------------------------------------------------------------------


def test_binary_brier_is_sklearns_positive_class_brier():
    y, probs = softmax_data(300, 2, 21)
    assert M.brier_score(y, probs) == pytest.approx(skm.brier_score_loss(y, probs[:, 1]))
    assert M.summary(y, probs)["brier"] == pytest.approx(skm.brier_score_loss(y, probs[:, 1]))
    base = M.baselines(y, probs.shape[1], train_priors=np.array([0.3, 0.7]))
    assert base["prior_brier"] == pytest.approx(skm.brier_score_loss(y, np.full(len(y), 0.7)))
    # three classes and more: the multiclass form, in [0, 2]
    y3, p3 = softmax_data(300, 3, 21)
    assert M.brier_score(y3, p3) == pytest.approx(skm.brier_score_loss(y3, p3, labels=[0, 1, 2], scale_by_half=False))


def test_brier_float32_blocks_keep_precision(monkeypatch):
    y, probs = softmax_data(500, 30, 22, temperature=0.3)
    reference = M.brier_score(y, probs)
    monkeypatch.setattr(M, "_SQ_BLOCK", 97)  # many blocks, one ending mid-row
    assert M.brier_score(y, probs.astype(np.float32)) == pytest.approx(reference, rel=1e-6)
    assert M.summary(y, probs.astype(np.float32))["brier"] == pytest.approx(reference, rel=1e-6)


def test_brier_range_extremes():
    y = np.array([0, 1])
    assert M.brier_score(y, np.array([[1.0, 0.0], [0.0, 1.0]])) == 0.0
    assert M.brier_score(y, np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(1.0)


def test_log_loss_clips_zero_probability():
    y = np.array([0, 1])
    probs = np.array([[0.0, 1.0], [0.5, 0.5]])
    expected = (-np.log(1e-15) - np.log(0.5)) / 2
    assert M.log_loss(y, probs) == pytest.approx(expected)
    assert M.log_loss(y, probs, eps=1e-7) == pytest.approx((-np.log(1e-7) - np.log(0.5)) / 2)


def test_single_class_problem():
    y = np.zeros(5, dtype=int)
    probs = np.ones((5, 1))
    assert M.accuracy(y, probs) == 1.0
    assert M.balanced_accuracy(y, probs) == 1.0
    assert M.log_loss(y, probs) == pytest.approx(0.0, abs=1e-14)
    assert M.brier_score(y, probs) == 0.0
    assert M.ece(y, probs) == 0.0
    assert M.smooth_ece(y, probs) == pytest.approx(0.0, abs=1e-9)


def test_argmax_ties_go_to_lowest_class():
    y = np.array([0, 1])
    probs = np.full((2, 4), 0.25)
    assert M.accuracy(y, probs) == 0.5
    np.testing.assert_array_equal(M.per_class_metrics(y, probs)["recall"], [1, 0, 0, 0])


# --------------------------------------------------------------------------
# binned calibration: hand-computed cases
# --------------------------------------------------------------------------

HAND_Y = np.array([0, 1, 1, 1])
HAND_PROBS = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
# confidences 0.9, 0.9, 0.7, 0.6; correct 1, 0, 1, 1


def test_ece_hand_computed_width():
    # 3 bins: [0, 1/3) empty; [1/3, 2/3) = {0.6 right}; [2/3, 1] = {0.9 right, 0.9 wrong, 0.7 right}
    # |0.6 - 1| + |2.5 - 2| = 0.9 over 4 samples
    assert M.ece(HAND_Y, HAND_PROBS, n_bins=3) == pytest.approx(0.9 / 4)
    assert M.signed_ece(HAND_Y, HAND_PROBS, n_bins=3) == pytest.approx((-0.4 + 0.5) / 4)
    # one bin: |mean conf - accuracy| = |0.775 - 0.75|
    assert M.ece(HAND_Y, HAND_PROBS, n_bins=1) == pytest.approx(0.025)
    # 10 bins: {0.6}, {0.7}, {0.9, 0.9}: 0.4 + 0.3 + 0.8 over 4
    assert M.ece(HAND_Y, HAND_PROBS, n_bins=10) == pytest.approx(1.5 / 4)


def test_reliability_curve_hand_computed():
    curve = M.reliability_curve(HAND_Y, HAND_PROBS, n_bins=3)
    assert set(curve) == {"bin_edges", "count", "mean_confidence", "accuracy"}
    np.testing.assert_allclose(curve["bin_edges"], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(curve["count"], [0, 1, 3])
    np.testing.assert_allclose(curve["mean_confidence"][1:], [0.6, 2.5 / 3])
    np.testing.assert_allclose(curve["accuracy"][1:], [1.0, 2 / 3])
    assert np.isnan(curve["mean_confidence"][0]) and np.isnan(curve["accuracy"][0])


def test_bin_edges_are_left_closed_and_one_is_in_the_last_bin():
    # confidences exactly on edges: 0.6 belongs to [0.6, 0.8), 0.8 to [0.8, 1], 1.0 to [0.8, 1]
    y = np.array([0, 0, 0])
    probs = np.array([[0.6, 0.4], [0.8, 0.2], [1.0, 0.0]])
    curve = M.reliability_curve(y, probs, n_bins=5)
    np.testing.assert_array_equal(curve["count"], [0, 0, 0, 1, 2])


def test_ece_hand_computed_mass():
    y = np.array([0, 1, 0, 0, 0, 1])
    conf = np.array([0.55, 0.6, 0.7, 0.8, 0.9, 0.95])
    probs = np.column_stack([conf, 1 - conf])
    # 2 equal-mass bins split at the median 0.75: {0.55 r, 0.6 w, 0.7 r}, {0.8 r, 0.9 r, 0.95 w}
    # (|1.85 - 2| + |2.65 - 2|) / 6
    assert M.ece(y, probs, n_bins=2, binning="mass") == pytest.approx(0.8 / 6)
    curve = M.reliability_curve(y, probs, n_bins=2, binning="mass")
    np.testing.assert_array_equal(curve["count"], [3, 3])
    np.testing.assert_allclose(curve["bin_edges"], [0.55, 0.75, 0.95])


def test_mass_binning_balances_counts():
    y, probs = softmax_data(3000, 10, 31)
    curve = M.reliability_curve(y, probs, n_bins=15, binning="mass")
    assert curve["count"].sum() == 3000
    assert curve["count"].min() >= 199 and curve["count"].max() <= 201


@pytest.mark.parametrize("binning", ["width", "mass"])
def test_ece_is_the_weighted_gap_of_the_reliability_curve(binning):
    y, probs = softmax_data(800, 7, 32, temperature=0.5)
    curve = M.reliability_curve(y, probs, n_bins=12, binning=binning)
    filled = curve["count"] > 0
    gaps = curve["mean_confidence"][filled] - curve["accuracy"][filled]
    weights = curve["count"][filled] / len(y)
    ece = M.ece(y, probs, n_bins=12, binning=binning)
    signed = M.signed_ece(y, probs, n_bins=12, binning=binning)
    assert ece == pytest.approx(np.sum(weights * np.abs(gaps)))
    assert signed == pytest.approx(np.sum(weights * gaps))


def test_signed_ece_sign_and_identity():
    y, over = calibrated_top_label(4000, 33, shift=0.15)
    y2, under = calibrated_top_label(4000, 34, shift=-0.15, high=0.8)
    assert M.signed_ece(y, over) > 0.1
    assert M.signed_ece(y2, under) < -0.1
    assert M.signed_ece(y, over) == pytest.approx(M.mean_confidence(over) - M.accuracy(y, over))


def test_perfect_predictions_are_perfectly_calibrated():
    y = np.array([0, 2, 1, 2])
    probs = np.eye(3)[y]
    assert M.ece(y, probs) == 0.0
    assert M.log_loss(y, probs) == pytest.approx(0.0, abs=1e-14)
    assert M.brier_score(y, probs) == 0.0
    assert M.smooth_ece(y, probs) == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------
# smooth ECE
# --------------------------------------------------------------------------


def test_smooth_ece_small_for_calibrated_model():
    # conf ~ U(0.1, 1) (with 10 classes the top label needs conf > 0.1), right ~ Bernoulli(conf)
    y, probs = calibrated_top_label(20000, 41, low=0.1, high=1.0, k=10)
    assert np.all(probs.argmax(axis=1) == 0)
    assert M.smooth_ece(y, probs) < 0.02


def test_smooth_ece_measures_a_constant_gap():
    y, probs = calibrated_top_label(20000, 42, shift=0.2, low=0.3, high=1.0, k=10)
    assert M.smooth_ece(y, probs) == pytest.approx(0.2, abs=0.015)
    assert M.smooth_ece(y, probs, signed=True) == pytest.approx(0.2, abs=0.015)


def test_smooth_ece_signed_is_confidence_minus_accuracy():
    for seed, shift in [(43, 0.1), (44, -0.1), (45, 0.0)]:
        y, probs = calibrated_top_label(5000, seed, shift=shift, high=0.9)
        expected = M.mean_confidence(probs) - M.accuracy(y, probs)
        assert M.smooth_ece(y, probs, signed=True) == pytest.approx(expected, abs=1e-9)


def _exact_smece_at(conf, resid, sigma, n_t=4001):
    """Direct evaluation: reflected Gaussian kernel, every image, trapezoid rule."""
    t = np.linspace(0.0, 1.0, n_t)
    total = np.zeros_like(t)
    for j in range(-4, 5):
        for s in (conf, -conf):
            z = (t[:, None] - s[None, :] + 2 * j) / sigma
            total += (np.exp(-0.5 * z * z) / (sigma * np.sqrt(2 * np.pi))) @ resid
    return np.trapezoid(np.abs(total / len(conf)), t)


def test_smooth_ece_grid_matches_exact_kernel_evaluation():
    rng = np.random.default_rng(46)
    conf = np.concatenate([rng.uniform(0.5, 1.0, 35), [1.0, 0.5, 0.999]])  # points at the edges
    right = rng.uniform(size=conf.size) < conf - 0.1
    probs = np.column_stack([conf, 1 - conf])
    y = np.where(right, 0, 1)
    resid = right - conf
    smoother = M._smoother_for(y, probs, 1024, with_density=False)
    for sigma in (0.02, 0.07, 0.3, 1.0):
        assert M._smece_at(smoother, sigma) == pytest.approx(
            _exact_smece_at(conf, resid, sigma), rel=2e-3
        )
    # the returned value is the fixed point of the exact smECE_sigma
    curve = M.smooth_reliability_curve(y, probs)
    assert curve["smooth_ece"] == pytest.approx(M.smooth_ece(y, probs), rel=1e-9)
    assert curve["smooth_ece"] == pytest.approx(curve["bandwidth"], rel=1e-3)
    assert _exact_smece_at(conf, resid, curve["bandwidth"]) == pytest.approx(
        curve["bandwidth"], rel=3e-3
    )


def test_smooth_ece_is_nonincreasing_in_bandwidth():
    y, probs = calibrated_top_label(3000, 47, shift=0.05)
    smoother = M._smoother_for(y, probs, 1024, with_density=False)
    values = [M._smece_at(smoother, s) for s in np.geomspace(0.005, 1.0, 25)]
    assert np.all(np.diff(values) <= 1e-12)


def test_smooth_ece_refines_the_grid_for_narrow_bandwidths():
    # a large calibrated sample has a small sigma*; a coarse starting grid must give the same value
    y, probs = calibrated_top_label(200000, 48)
    fine = M.smooth_ece(y, probs, n_grid=8192)
    assert M.smooth_ece(y, probs, n_grid=16) == pytest.approx(fine, rel=0.02)
    assert fine < 0.01


def test_smooth_reliability_curve_shape_and_meaning():
    y, probs = calibrated_top_label(20000, 49, shift=0.2, low=0.3, high=1.0, k=10)
    curve = M.smooth_reliability_curve(y, probs)
    m = curve["confidence"].size
    assert curve["accuracy"].shape == curve["density"].shape == (m,)
    assert curve["density"].sum() / m == pytest.approx(1.0, abs=1e-9)
    middle = (curve["confidence"] > 0.5) & (curve["confidence"] < 0.85)
    np.testing.assert_allclose(
        curve["accuracy"][middle], curve["confidence"][middle] - 0.2, atol=0.04
    )


# --------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------

BOOT_FNS = {
    "accuracy": M.accuracy,
    "balanced_accuracy": M.balanced_accuracy,
    "log_loss": M.log_loss,
    "brier": M.brier_score,
    "ece": M.ece,
    "mean_confidence": lambda y, p: M.mean_confidence(p),
    "mean_true_prob": M.mean_true_prob,
}


def test_bootstrap_covers_every_supported_metric():
    assert set(BOOT_FNS) == set(M.BOOTSTRAP_METRICS)


@pytest.mark.parametrize("block", [None, 3 * 97])
def test_bootstrap_equals_naive_resampling(monkeypatch, block):
    """Replicate r resamples the r-th draw of default_rng(seed); whatever the
    blocking, the intervals equal those of recomputing every metric on every
    resample."""
    if block is not None:
        monkeypatch.setattr(M, "_BOOT_BLOCK", block)  # 3 replicates per block
    y, probs = softmax_data(97, 5, 51, temperature=0.5)
    n_boot, alpha, seed = 40, 0.1, 7
    ours = M.bootstrap_ci(y, probs, metrics=tuple(BOOT_FNS), n_boot=n_boot, alpha=alpha, seed=seed)
    rng = np.random.default_rng(seed)
    reps = {name: [] for name in BOOT_FNS}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), size=len(y))
        for name, fn in BOOT_FNS.items():
            reps[name].append(fn(y[idx], probs[idx]))
    for name in BOOT_FNS:
        expected = np.quantile(reps[name], [alpha / 2, 1 - alpha / 2])
        np.testing.assert_allclose(ours[name], expected, rtol=1e-9, atol=1e-12, err_msg=name)


def test_bootstrap_contains_point_estimate():
    # overconfident, so ECE is signal rather than noise (see bootstrap_ci's Notes)
    y, probs = softmax_data(2000, 10, 52, temperature=0.4)
    ci = M.bootstrap_ci(y, probs)
    assert set(ci) == {"accuracy", "balanced_accuracy", "log_loss", "brier", "ece"}
    point = {name: BOOT_FNS[name](y, probs) for name in ci}
    for name, (low, high) in ci.items():
        assert low < point[name] < high, name


def test_bootstrap_shrinks_with_n():
    small = M.bootstrap_ci(*softmax_data(300, 10, 53, temperature=0.4))
    large = M.bootstrap_ci(*softmax_data(6000, 10, 53, temperature=0.4))
    for name in small:
        assert large[name][1] - large[name][0] < 0.5 * (small[name][1] - small[name][0]), name


def test_bootstrap_is_deterministic_and_independent_of_other_metrics():
    y, probs = softmax_data(500, 4, 54)
    a = M.bootstrap_ci(y, probs, seed=3)
    assert M.bootstrap_ci(y, probs, seed=3) == a
    assert M.bootstrap_ci(y, probs, seed=4) != a
    assert M.bootstrap_ci(y, probs, metrics=("accuracy",), seed=3)["accuracy"] == a["accuracy"]


@pytest.mark.parametrize(
    "kwargs",
    [{"metrics": ("auc",)}, {"metrics": ()}, {"n_boot": 0}, {"alpha": 1.5}, {"n_boot": 2.5}],
)
def test_bootstrap_rejects_bad_options(kwargs):
    y, probs = softmax_data(20, 3, 55)
    with pytest.raises(InvalidInputError):
        M.bootstrap_ci(y, probs, **kwargs)


# --------------------------------------------------------------------------
# baselines and summary
# --------------------------------------------------------------------------


def test_baselines_from_own_frequencies():
    y = np.array([0, 0, 0, 1, 1, 3])  # class 2 absent
    b = M.baselines(y, 4)
    np.testing.assert_allclose(b["priors"], [0.5, 1 / 3, 0, 1 / 6])
    tiled = np.tile(b["priors"], (len(y), 1))
    assert b["majority_class"] == 0
    assert b["majority_accuracy"] == pytest.approx(skm.accuracy_score(y, np.zeros_like(y)))
    assert b["majority_balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(y, np.zeros_like(y))
    )
    assert b["prior_log_loss"] == pytest.approx(M.log_loss(y, tiled))
    assert b["prior_log_loss"] == pytest.approx(skm.log_loss(y, tiled, labels=np.arange(4)))
    assert b["prior_brier"] == pytest.approx(M.brier_score(y, tiled))
    assert b["chance_accuracy"] == pytest.approx(0.25 + 1 / 9 + 1 / 36)


def test_baselines_with_train_priors():
    y = np.array([0, 1, 1, 2, 2, 2])
    b = M.baselines(y, 3, train_priors=np.array([80, 20, 0]))  # counts are normalised
    np.testing.assert_allclose(b["priors"], [0.8, 0.2, 0.0])
    assert b["majority_class"] == 0
    assert b["majority_accuracy"] == pytest.approx(1 / 6)
    assert b["majority_balanced_accuracy"] == pytest.approx(1 / 3)
    # class 2 has prior 0 but is half the test set: the floor keeps the loss finite
    tiled = np.tile(b["priors"], (len(y), 1))
    assert np.isfinite(b["prior_log_loss"])
    assert b["prior_log_loss"] == pytest.approx(M.log_loss(y, tiled))
    assert b["prior_brier"] == pytest.approx(M.brier_score(y, tiled))


def test_chance_accuracy_is_the_expected_accuracy_of_random_guessing():
    y, _ = softmax_data(400, 5, 61)
    priors = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    rng = np.random.default_rng(0)
    guesses = rng.choice(5, size=(500, len(y)), p=priors)
    simulated = (guesses == y).mean()
    assert M.baselines(y, 5, train_priors=priors)["chance_accuracy"] == pytest.approx(
        simulated, abs=0.005
    )


@pytest.mark.parametrize("priors", [np.ones(4), np.array([1.0, -1.0, 1.0]), np.zeros(3)])
def test_baselines_reject_bad_priors(priors):
    with pytest.raises(InvalidInputError):
        M.baselines(np.array([0, 1, 2]), 3, train_priors=priors)


def test_summary_keys_and_values(case):
    y, probs = case
    s = M.summary(y, probs)
    assert list(s) == [
        "accuracy", "balanced_accuracy", "log_loss", "brier", "ece", "mean_confidence", "n_test"
    ]
    assert s["n_test"] == len(y) and type(s["n_test"]) is int
    expected = {
        "accuracy": M.accuracy(y, probs),
        "balanced_accuracy": M.balanced_accuracy(y, probs),
        "log_loss": M.log_loss(y, probs),
        "brier": M.brier_score(y, probs),
        "ece": M.ece(y, probs, n_bins=15),
        "mean_confidence": M.mean_confidence(probs),
    }
    for key, value in expected.items():
        assert s[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


# --------------------------------------------------------------------------
# streaming accumulator
# --------------------------------------------------------------------------


def _accumulate(y, probs, k, cuts):
    acc = M.CalibrationAccumulator(k)
    bounds = [0, *sorted(cuts), len(y)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        acc.update(y[lo:hi], probs[lo:hi])  # empty chunks included
    return acc


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12, err_msg=key)
        else:
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key


data_params = st.tuples(
    st.integers(1, 60),  # n_samples
    st.integers(1, 7),  # n_classes
    st.integers(0, 2**32 - 1),  # seed
    st.floats(0.2, 3.0),  # temperature
)


@settings(max_examples=60, deadline=None)
@given(params=data_params, cut_fracs=st.lists(st.floats(0, 1), max_size=6))
def test_chunked_updates_equal_one_update(params, cut_fracs):
    n, k, seed, temp = params
    y, probs = softmax_data(n, k, seed, temperature=temp)
    cuts = [int(f * n) for f in cut_fracs]
    chunked = _accumulate(y, probs, k, cuts)
    single = _accumulate(y, probs, k, [])
    _assert_same(chunked.compute(), single.compute())
    np.testing.assert_array_equal(chunked.confusion, single.confusion)
    np.testing.assert_array_equal(chunked.bin_count, single.bin_count)


@settings(max_examples=60, deadline=None)
@given(params=data_params, split=st.floats(0, 1), n_parts=st.integers(2, 4))
def test_merge_equals_concatenation(params, split, n_parts):
    n, k, seed, temp = params
    y, probs = softmax_data(n, k, seed, temperature=temp)
    edges = np.linspace(0, n, n_parts + 1).astype(int)
    edges[1] = int(split * n)
    edges = np.sort(edges)
    parts = [_accumulate(y[a:b], probs[a:b], k, []) for a, b in zip(edges[:-1], edges[1:])]
    merged = parts[0]
    for part in parts[1:]:
        assert merged.merge(part) is merged
    whole = _accumulate(y, probs, k, [])
    _assert_same(merged.compute(), whole.compute())
    _assert_same(merged.per_class(), whole.per_class())


@settings(max_examples=60, deadline=None)
@given(params=data_params)
def test_accumulator_equals_one_shot_functions(params):
    n, k, seed, temp = params
    y, probs = softmax_data(n, k, seed, temperature=temp)
    acc = _accumulate(y, probs, k, [n // 3])
    _assert_same(acc.compute(), M.summary(y, probs))
    _assert_same(acc.per_class(), M.per_class_metrics(y, probs))
    np.testing.assert_array_equal(acc.confusion, M.confusion_matrix(y, probs.argmax(1), k))


def test_accumulator_rejects_misuse():
    acc = M.CalibrationAccumulator(3)
    with pytest.raises(InvalidInputError):
        acc.compute()
    with pytest.raises(InvalidInputError):
        acc.update(np.array([0, 1]), np.full((2, 4), 0.25))
    with pytest.raises(InvalidInputError):
        acc.merge(M.CalibrationAccumulator(3, n_bins=10))
    with pytest.raises(InvalidInputError):
        M.CalibrationAccumulator(0)


# --------------------------------------------------------------------------
# options and docs
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda y, p: M.ece(y, p, n_bins=0),
        lambda y, p: M.ece(y, p, n_bins=2.0),
        lambda y, p: M.ece(y, p, binning="quantile"),
        lambda y, p: M.signed_ece(y, p, binning="equal"),
        lambda y, p: M.reliability_curve(y, p, n_bins=-3),
        lambda y, p: M.log_loss(y, p, eps=0.0),
        lambda y, p: M.smooth_ece(y, p, n_grid=4),
    ],
)
def test_bad_options_raise_invalid_input(call):
    y, probs = softmax_data(10, 3, 71)
    with pytest.raises(InvalidInputError) as info:
        call(y, probs)
    assert "got" in str(info.value)


def test_public_api_is_sorted_and_documented():
    assert M.__all__ == sorted(M.__all__)
    for name in M.__all__:
        assert getattr(M, name).__doc__, name


def test_docstring_examples_run():
    result = doctest.testmod(M, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0
