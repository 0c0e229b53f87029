"""The seed's Examples 2 and 3 reproduced with Keras (torch backend) and diagnosed as the seed explains them."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
pytest.importorskip("keras")
pytest.importorskip("torch")

from findings_asserts import assert_top, describe  # noqa: E402

from whylow.scenarios import build, list_scenarios  # noqa: E402

@pytest.fixture(scope="module")
def seed2():
    build("seed-3", epochs=1)  # warm up the Keras import so the timing below measures training
    t = time.process_time()
    sc = build("seed-2")
    return sc, time.process_time() - t


@pytest.fixture(scope="module")
def seed3():
    sc = build("seed-3")
    return sc, sc.diagnose()


def test_both_are_registered_with_their_expected_codes():
    specs = {s.name: s for s in list_scenarios()}
    assert specs["seed-2"].expected == "no-signal"
    assert specs["seed-3"].expected == "misleading-metric"


def test_seed2_trains_in_seconds(seed2):
    _, cpu_seconds = seed2
    # two Keras models, 10 epochs each on 1,000 rows: about 2.5 s of CPU (CPU time, so a busy machine does not fail it)
    assert cpu_seconds < 20


def test_seed2_over_parametrised_model_is_more_extreme_than_the_reduced_one(seed2):
    sc, _ = seed2
    preds = sc.notes["test_predictions"]
    over, reduced = np.asarray(preds["over-parametrised"]), np.asarray(preds["reduced"])
    assert over.shape == reduced.shape == (200,)
    assert np.abs(over - 0.5).mean() > np.abs(reduced - 0.5).mean()
    assert sc.notes["mean_abs_margin"]["over-parametrised"] > sc.notes["mean_abs_margin"]["reduced"]
    assert over.std() > reduced.std()  # the seed's "greater range" is the reduced model's narrower one
    # the stored models reproduce the stored predictions
    assert set(sc.notes["models"]) == {"over-parametrised", "reduced"}
    again = np.asarray(sc.notes["reduced_model"].predict(sc.test.x, verbose=0)).reshape(-1)
    np.testing.assert_allclose(again, reduced, rtol=1e-5, atol=1e-6)
    assert sc.model.count_params() > 10 * sc.notes["reduced_model"].count_params()


def test_seed2_is_diagnosed_as_no_signal(seed2, validate_report):
    sc, _ = seed2
    report = sc.diagnose()
    assert_top(report, "no-signal")
    f = report.findings[0]
    assert f.severity == "critical"
    assert abs(f.evidence["reference_accuracy"] - f.evidence["reference_chance_accuracy"]) < 0.05
    assert f.evidence["log_loss"] >= f.evidence["prior_log_loss"] - 0.01
    assert report.inputs["layout"] == "tabular"
    validate_report(report.to_dict())


def test_seed2_is_deterministic():
    a, b = build("seed-2", epochs=2), build("seed-2", epochs=2)
    np.testing.assert_allclose(a.notes["test_predictions"]["over-parametrised"], b.notes["test_predictions"]["over-parametrised"], rtol=1e-5)
    np.testing.assert_array_equal(a.test.y, b.test.y)


def test_building_does_not_reseed_the_callers_random_state():
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    build("seed-3", epochs=1)
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_seed3_is_diagnosed_as_misleading_metric(seed3, validate_report):
    sc, report = seed3
    assert sc.test.n_samples == 200 and sc.train.n_samples == 800
    f = [g for g in report.findings if g.code == "misleading-metric"]
    assert len(f) == 1, describe(report)
    f = f[0]
    assert f.severity == "critical"
    ev = f.evidence
    # the seed's three numbers, next to what they should be compared with
    assert ev["accuracy"] == pytest.approx(sc.notes["seed_printout"]["accuracy"])
    assert abs(ev["accuracy"] - ev["majority_baseline_accuracy"]) < 0.02
    assert ev["balanced_accuracy"] == pytest.approx(0.5, abs=0.05)
    assert ev["log_loss"] == pytest.approx(sc.notes["seed_printout"]["log_loss"], abs=1e-3)
    assert abs(ev["log_loss"] - ev["prior_log_loss"]) < 0.05
    assert ev["brier"] == pytest.approx(sc.notes["seed_printout"]["brier"], abs=1e-3)  # the binary Brier, as the seed prints it
    assert ev["worst_classes"][0]["class"] == "1" and ev["worst_classes"][0]["recall"] < 0.1
    validate_report(report.to_dict())
    assert_top(report, "misleading-metric")


def test_seed3_no_signal_is_reported_below_the_misleading_metric(seed3):
    _, report = seed3
    codes = [f.code for f in report.findings]
    assert "no-signal" in codes and codes.index("no-signal") > codes.index("misleading-metric")
    assert {f.code: f.severity for f in report.findings}["no-signal"] == "warning"
