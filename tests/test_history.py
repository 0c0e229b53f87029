"""learning-rate: the loss-curve heuristics on synthetic curves, and the check inside a diagnosis."""

from __future__ import annotations

import math

import numpy as np
import pytest

import whylow
from whylow.checks.history import analyse_loss_curve
from whylow.scenarios import build

LOG10 = math.log(10)


def _healthy(n=15, start=2.3, end=0.05):
    t = np.arange(n)
    return list(end + (start - end) * np.exp(-t / 3.0))


# -- analyse_loss_curve on synthetic curves ---------------------------------


def test_healthy_exponential_decrease_gives_nothing():
    res = analyse_loss_curve(_healthy(), prior_nll=LOG10, n_classes=10)
    assert res["verdict"] is None and res["direction"] is None


def test_healthy_curve_with_late_wobbles_gives_nothing():
    # a converged loss that wobbles by a few hundredths near zero (mini-batch noise), as small-data training does
    loss = _healthy(40, end=0.02)
    loss[-6:] = [0.015, 0.039, 0.051, 0.015, 0.051, 0.014]
    assert analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)["verdict"] is None


def test_converged_plateau_of_a_small_model_is_not_slow():
    # the tiny-CNN curve: slow start, fast middle, levelled off well below the start
    loss = [2.313, 2.297, 2.268, 2.137, 1.831, 1.71, 1.61, 1.554, 1.511, 1.477, 1.47, 1.46, 1.432, 1.407, 1.391, 1.368, 1.377, 1.354, 1.348, 1.336]
    assert analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)["verdict"] is None


def test_nan_is_reported_with_its_epoch():
    res = analyse_loss_curve([2.3, 1.9, 4.0, float("nan"), float("nan")], prior_nll=LOG10, n_classes=10)
    assert res["verdict"] == "nan" and res["direction"] == "too high"
    assert res["first_nonfinite_epoch"] == 4
    assert analyse_loss_curve([2.3, float("inf")])["verdict"] == "nan"


def test_blow_up_above_an_uninformed_model_is_divergence():
    loss = [66.67, 2.354, 2.331, 2.324, 2.322, 2.339, 2.338, 2.339, 2.347, 2.329]
    res = analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)
    assert res["verdict"] == "diverged" and res["reason"] == "blow-up"
    assert res["blowup_epoch"] == 1 and res["blowup_ratio"] > 20


def test_loss_ending_above_its_start_is_divergence():
    loss = [0.9, 0.7, 0.6, 0.8, 1.0, 1.1, 1.2]
    res = analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)
    assert res["verdict"] == "diverged" and res["reason"] == "ends above start"


def test_jump_is_found_with_its_epoch():
    loss = [2.3, 1.5, 0.9, 0.6, 1.6, 0.7, 0.5, 0.45]
    res = analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)
    assert res["verdict"] == "jump"
    assert (res["jump_epoch"], res["jump_from"], res["jump_to"]) == (5, 0.6, 1.6)


def test_oscillation_is_found():
    loss = [2.3, 1.4, 2.0, 1.2, 1.9, 1.1, 2.0, 1.3, 1.9, 1.2]
    res = analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)
    assert res["verdict"] == "oscillating" and res["direction"] == "too high"
    assert res["sign_change_fraction"] >= 0.9 and res["up_share"] >= 0.4


def test_slow_linear_decrease_is_too_low():
    loss = list(np.linspace(2.305, 2.25, 15))
    res = analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)
    assert res["verdict"] == "slow" and res["direction"] == "too low"
    assert res["relative_decrease"] < 0.05 and res["tail_slope_ratio"] == pytest.approx(1.0, abs=0.05)


def test_noisy_plateau_at_the_prior_level_is_stuck():
    loss = [2.421, 2.308, 2.305, 2.305, 2.308, 2.306, 2.306, 2.306, 2.306, 2.304, 2.306, 2.307, 2.305]
    res = analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)
    assert res["verdict"] == "stuck" and res["tail_mean"] >= 0.95 * LOG10


def test_short_and_empty_curves():
    assert analyse_loss_curve([])["verdict"] is None
    assert analyse_loss_curve([2.3, 2.2])["verdict"] is None


def test_thresholds_are_respected():
    loss = list(np.linspace(2.3, 1.8, 12))  # 22% decrease: slow under the default 0.3, not under 0.2
    assert analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10)["verdict"] == "slow"
    assert analyse_loss_curve(loss, prior_nll=LOG10, n_classes=10, slow_total=0.2)["verdict"] is None


# -- the check inside a diagnosis --------------------------------------------


def _good_predictions(seed=0, n=400, k=10):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    probs = np.full((n, k), 0.05 / (k - 1))
    probs[np.arange(n), y] = 0.95
    return y, probs


def _lr_findings(report):
    return [f for f in report.findings if f.code == "learning-rate"]


def test_check_is_skipped_without_history():
    y, probs = _good_predictions()
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs))
    status = {c.name: c for c in report.checks}["learning-rate"]
    assert status.status == "skipped" and "history" in status.reason


def test_nan_history_is_critical_and_names_the_learning_rate():
    y, probs = _good_predictions()
    history = {"loss": [2.3, 1.2, float("nan"), float("nan")], "lr": [0.3] * 4}
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs), history=history)
    (f,) = _lr_findings(report)
    assert f.severity == "critical" and "too high" in f.title and "0.3" in f.title
    assert "from 0.3 to about 0.03" in f.fix
    assert f.evidence["first_nonfinite_epoch"] == 3 and f.evidence["lr_last"] == 0.3


def test_healthy_history_gives_no_finding():
    y, probs = _good_predictions()
    history = {"loss": _healthy(), "val_loss": [v * 1.1 for v in _healthy()], "lr": [1e-3] * 15}
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs), history=history)
    assert not _lr_findings(report)
    assert {c.name: c.status for c in report.checks}["learning-rate"] == "ran"


def test_slow_curve_without_evidence_of_learnable_labels_is_not_blamed_on_the_learning_rate():
    # predictions only: nothing says the labels are learnable, so a crawling loss is not reported
    y, probs = _good_predictions()
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs), history={"loss": list(np.linspace(2.305, 2.25, 15))})
    assert not _lr_findings(report)


@pytest.fixture(scope="module")
def single_thread():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_scenario_lr_too_high_is_the_top_finding_and_carries_the_underfitting(single_thread):
    report = build("learning-rate").diagnose()
    top = report.findings[0]
    assert top.code == "learning-rate", [(f.code, f.severity, f.title) for f in report.findings]
    assert top.severity == "critical" and "too high" in top.title
    assert top.evidence["lr_last"] == 0.5 and "from 0.5 to about 0.05" in top.fix
    assert top.evidence["reference_accuracy"] - top.evidence["train_accuracy"] > 0.5
    # the underfitting it causes is reported too, below it
    codes = [f.code for f in report.findings]
    assert "underfitting" in codes and codes.index("underfitting") > 0


def test_scenario_lr_too_low_is_reported_as_too_low(single_thread):
    report = build("learning-rate", lr=1e-5, epochs=8).diagnose()
    top = report.findings[0]
    assert top.code == "learning-rate", [(f.code, f.severity, f.title) for f in report.findings]
    assert "too low" in top.title and top.evidence["verdict"] == "slow"
    assert "from 1e-05 to about 0.0001" in top.fix


def test_first_epoch_overshoot_is_a_verdict_only_above_an_uninformed_model():
    import math

    k = 10
    res = analyse_loss_curve([1.8 * math.log(k), 2.2, 1.9, 1.7, 1.5, 1.4, 1.3], prior_nll=math.log(k), n_classes=k)
    assert res["verdict"] == "overshoot" and res["direction"] == "too high" and res["overshoot_ratio"] > 1.5
    healthy = analyse_loss_curve([2.2, 1.6, 1.2, 0.9, 0.7, 0.6, 0.55], prior_nll=math.log(k), n_classes=k)
    assert healthy["verdict"] is None
