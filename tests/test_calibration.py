"""Calibration check (overconfidence / underconfidence) and the temperature / vector scalers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import whylow
from whylow import metrics
from whylow.checks.calibration import (
    CalibrationCheck,
    calibrated_null_test,
    gap_test,
    paired_nll_test,
    temperature_lr_test,
)
from whylow.context import Context
from whylow.errors import InvalidInputError
from whylow.fixes.temperature import (
    TemperatureScaler,
    VectorScaler,
    calibrator_from_dict,
    cross_fit,
    load_calibrator,
    stratified_halves,
    to_logits,
)
from whylow.inputs import prepare_splits
from whylow.scenarios import build
from whylow.scenarios.base import torch_probs

CODES = ("overconfidence", "underconfidence")


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrated(seed: int, n: int = 300, k: int = 10, spread: float = 2.5):
    """Logits and labels drawn from softmax(logits): perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * spread
    p = _softmax(z)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return y, z


def _mine(report):
    return [f for f in report.findings if f.code in CODES]


# --------------------------------------------------------------------------
# scenarios, full diagnosis
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def over(diagnosed):
    return diagnosed("memorised")


@pytest.fixture(scope="module")
def sharpened(diagnosed):
    return diagnosed("overconfidence")


def test_sharpened_logits_are_overconfidence_first_fixed_by_temperature(sharpened, validate_report):
    sc, report = sharpened
    top = report.findings[0]
    assert top.code == "overconfidence" and top.severity == "critical", [(f.code, f.severity, f.title) for f in report.findings]
    assert top.evidence["temperature"] == pytest.approx(3.0, rel=0.35)  # the sharpening the scenario left in
    assert top.verified["metric"] == "log_loss" and top.verified["after"] < 0.8 * top.verified["before"]
    assert not [f for f in report.findings if f.code == "overfitting" and f.severity != "info"]
    validate_report(report.to_dict())


@pytest.fixture(scope="module")
def under(diagnosed):
    return diagnosed("underconfidence")


def test_overconfidence_scenario_is_found_under_the_memorising_that_causes_it(over, validate_report):
    sc, report = over
    (top,) = [f for f in report.findings if f.code == "overconfidence"]
    assert sc.expected == "overfitting"
    # the model memorised 10 images per class: the overconfidence is a consequence of that overfitting, ranked under it
    assert top.explained_by == "overfitting" and report.findings.index(top) == 1, [(f.code, f.severity, f.title) for f in report.findings]
    assert top.severity == "critical"
    assert top.explains["metric"] == "log_loss" and top.explains["gap"] == pytest.approx(top.verified["before"] - top.verified["after"], abs=1e-3)
    ev = top.evidence
    assert ev["mean_confidence"] - ev["accuracy"] == pytest.approx(ev["gap"])
    assert ev["gap"] >= 0.03 and ev["gap_ci"][0] > 0 and ev["gap_p_value"] < 0.01
    assert ev["temperature"] > 1.5 and ev["fitted_on"] == "val"
    assert top.verified["metric"] == "log_loss"
    assert top.verified["after"] < 0.8 * top.verified["before"]
    assert ev["ece_after"] < ev["ece_before"]
    assert f"{ev['accuracy']:.2f}" in top.title and "T=" in top.title and "T=" in top.fix
    assert "accuracy" in ev["reading"] and "baseline" in ev["reading"]
    validate_report(json.loads(report.to_json()))


def test_underconfidence_scenario_is_top_finding(under, validate_report):
    sc, report = under
    top = report.findings[0]
    assert top.code == sc.expected == "underconfidence", [(f.code, f.severity, f.title) for f in report.findings]
    assert top.severity == "critical"
    ev = top.evidence
    assert ev["gap"] < -0.3 and ev["gap_ci"][1] < 0
    assert ev["accuracy"] > 0.9 and ev["temperature"] < 0.5
    assert "not bad classification" in top.title
    assert top.verified["after"] < 0.5 * top.verified["before"]
    assert ev["shift_vs_scale"]["temperature_gain_after_bias"] > 0.5  # a scale problem, not a shift
    validate_report(json.loads(report.to_json()))


def test_reliability_artifacts_for_the_report(over):
    _, report = over
    arts = report.artifacts["calibration"]
    for key in ("reliability:test", "reliability:val", "reliability:test:scaled", "confidence_hist:test"):
        assert key in arts
    curve = arts["reliability:test"]
    assert int(np.sum(curve["count"])) == report.summary["n_test"]
    scaled = arts["reliability:test:scaled"]
    assert len(scaled["accuracy"]) == len(curve["accuracy"]) == 15
    assert arts["temperature"] > 1
    hist = arts["confidence_hist:test"]
    assert int(np.sum(hist["count_correct"]) + np.sum(hist["count_wrong"])) == report.summary["n_test"]


@pytest.mark.parametrize("width,seed", [(16, 0), (32, 1)])
def test_healthy_models_raise_nothing(width, seed):
    report = build("none", seed=seed, width=width).diagnose()
    alarms = [(f.code, f.severity, f.title) for f in report.findings if f.severity != "info"]
    assert not alarms
    assert [c.status for c in report.checks if c.name == "calibration"] == ["ran"]


@pytest.mark.parametrize("fixture", ["over", "under"])
def test_temperature_scaling_lowers_heldout_nll(fixture, request):
    sc, _ = request.getfixturevalue(fixture)
    p_val, p_test = torch_probs(sc.model, sc.val.x), torch_probs(sc.model, sc.test.x)
    scaler = TemperatureScaler().fit(sc.val.y, probs=p_val)
    scaled = scaler.transform(probs=p_test)
    before, after = metrics.log_loss(sc.test.y, p_test), metrics.log_loss(sc.test.y, scaled)
    assert after < 0.8 * before
    assert metrics.accuracy(sc.test.y, scaled) == metrics.accuracy(sc.test.y, p_test)  # argmax unchanged
    assert (scaler.temperature_ > 1) == (fixture == "over")


# --------------------------------------------------------------------------
# statistics: power and false alarms
# --------------------------------------------------------------------------


def test_perfectly_calibrated_model_raises_nothing_over_20_seeds():
    """Statistical-power sanity: n=300, calibrated by construction; 40 runs (with and without val) find nothing."""
    for seed in range(20):
        y, z = calibrated(seed)
        yv, zv = calibrated(1000 + seed)
        for val in (None, whylow.Split(y=yv, logits=zv)):
            splits, names = prepare_splits({"test": whylow.Split(y=y, logits=z), "val": val})
            ctx = Context(splits=splits, n_classes=len(names), class_names=names, seed=seed)
            found = CalibrationCheck().run(ctx)
            assert not found, (seed, [(f.code, f.severity, f.title) for f in found])


def test_calibrated_model_through_the_full_diagnosis():
    y, z = calibrated(0)
    report = whylow.diagnose(test=whylow.Split(y=y, logits=z), val=whylow.Split(y=calibrated(1)[0], logits=calibrated(1)[1]))
    assert not _mine(report)
    assert [c.status for c in report.checks if c.name == "calibration"] == ["ran"]


@pytest.mark.parametrize("factor,code", [(3.0, "overconfidence"), (1 / 3, "underconfidence")])
def test_rescaled_logits_are_found_without_a_validation_split(factor, code):
    y, z = calibrated(0, n=2000, k=5, spread=1.5)
    report = whylow.diagnose(test=whylow.Split(y=y, logits=z * factor))
    found = _mine(report)
    assert [f.code for f in found] == [code]
    f = found[0]
    assert f.severity == "critical"
    assert f.evidence["fitted_on"] == "test" and f.evidence["cross_fit"]
    assert f.evidence["temperature"] == pytest.approx(factor, rel=0.15)
    assert len(f.evidence["half_temperatures"]) == 2
    assert f.verified["after"] < f.verified["before"]


def test_a_shift_between_classes_is_not_called_a_temperature_problem():
    """Binary scores shifted by a constant: miscalibrated, but a bias (threshold) fixes it, not a temperature."""
    rng = np.random.default_rng(0)
    n = 3000
    logit = rng.normal(0, 2.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    shifted = logit - 2.5
    split = lambda idx: whylow.Split(y=y[idx], logits=shifted[idx])  # noqa: E731
    report = whylow.diagnose(test=split(np.arange(0, 2000)), val=split(np.arange(2000, n)))
    assert all(f.severity == "info" for f in _mine(report))
    shifts = [f for f in _mine(report) if "shifted" in f.title]
    assert shifts and shifts[0].verified is None
    assert shifts[0].evidence["shift_vs_scale"]["bias_only_relative_gain"] > 0.1
    assert report.findings[0].code == "decision-threshold"


def _run_check(test_y, test_z, val_y, val_z, seed=0):
    splits, names = prepare_splits({"test": whylow.Split(y=test_y, logits=test_z), "val": whylow.Split(y=val_y, logits=val_z)})
    ctx = Context(splits=splits, n_classes=len(names), class_names=names, seed=seed)
    return CalibrationCheck().run(ctx)


@pytest.mark.parametrize("factor,code", [(3.0, "overconfidence"), (1 / 3, "underconfidence")])
def test_an_accurate_model_with_rescaled_logits_is_named_though_its_gap_is_tiny(factor, code):
    """97% accurate, 300 rows per split: the few errors carry the log-loss, so the gap is small and a paired
    test on the per-row NLL differences has little power; the temperature's held-out gain is what counts."""
    y, z = calibrated(0, spread=40)
    yv, zv = calibrated(1, spread=40)
    (f,) = _run_check(y, factor * z, yv, factor * zv)
    ev = f.evidence
    assert f.code == code and f.severity in ("warning", "critical"), f.title
    assert ev["accuracy"] > 0.95 and ev["fitted_on"] == "val"
    assert ev["temperature"] == pytest.approx(factor, rel=0.3)
    assert ev["log_loss_relative_gain"] >= 0.10 and ev["log_loss_p_value"] < 0.01 and ev["temperature_lr_p_value"] < 0.01
    if code == "overconfidence":
        assert abs(ev["gap"]) < 0.03 and ev["mean_confidence_when_wrong"] > 0.8
        assert "log-loss" in f.title and f"T={ev['temperature']:.2f}" in f.title


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_an_ordinary_small_miscalibration_is_no_warning(factor):
    """Validation temperatures within 0.8-1.25 are everyday calibration, not a fault: at most info."""
    for seed in range(8):
        for spread in (3.0, 10.0, 40.0):
            y, z = calibrated(seed, spread=spread)
            yv, zv = calibrated(100 + seed, spread=spread)
            found = _run_check(y, factor * z, yv, factor * zv, seed=seed)
            assert all(f.severity == "info" for f in found), (seed, spread, [(f.severity, f.title) for f in found])


def test_calibrated_null_test_holds_its_level_and_finds_a_temperature():
    rng = np.random.default_rng(0)
    p_null, p_alt = [], []
    for seed in range(200):
        y, z = calibrated(seed, n=200, k=5, spread=4.0)
        probs = _softmax(z)
        softer = _softmax(z / rng.uniform(1.5, 3.0))  # a recalibration fitted elsewhere
        p_null.append(calibrated_null_test(y, probs, softer)["p_value"])
        p_alt.append(calibrated_null_test(y, _softmax(2 * z), _softmax(z))["p_value"])
    assert np.mean(np.array(p_null) < 0.01) <= 0.03
    assert np.mean(np.array(p_alt) < 0.01) >= 0.95
    same = calibrated_null_test(y, probs, probs)
    assert same["p_value"] == 1.0 and same["gain"] == 0.0


def test_temperature_lr_test_on_the_fitting_split():
    y, z = calibrated(2, n=500, k=5)
    scaler = TemperatureScaler().fit(y, logits=z)
    assert temperature_lr_test(y, _softmax(z), scaler.transform(logits=z))["p_value"] > 0.01
    sharp = TemperatureScaler().fit(y, logits=2.5 * z)
    res = temperature_lr_test(y, _softmax(2.5 * z), sharp.transform(logits=2.5 * z))
    assert res["p_value"] < 1e-6 and res["statistic"] > 0


def test_gap_test_is_exact_on_a_hand_example():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.6]])
    g = gap_test(y, probs)
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 1, 0, 1])
    assert g["gap"] == pytest.approx(conf.mean() - correct.mean())
    assert g["z"] == pytest.approx((conf - correct).sum() / np.sqrt((conf * (1 - conf)).sum()))
    assert g["gap"] == pytest.approx(metrics.signed_ece(y, probs, n_bins=2, binning="mass"))


def test_paired_nll_test_direction():
    rng = np.random.default_rng(0)
    before = rng.exponential(1.0, 500)
    better = paired_nll_test(before, before * 0.7)
    worse = paired_nll_test(before, before * 1.1)
    assert better["p_value"] < 1e-6 and better["relative_gain"] == pytest.approx(0.3)
    assert worse["p_value"] > 0.99
    assert paired_nll_test(before, before)["p_value"] == 1.0


def test_check_shares_the_fitted_scaler_through_the_context():
    y, z = calibrated(3, n=800, k=4)
    yv, zv = calibrated(4, n=800, k=4)
    splits, names = prepare_splits({"test": whylow.Split(y=y, logits=2 * z), "val": whylow.Split(y=yv, logits=2 * zv)})
    ctx = Context(splits=splits, n_classes=len(names), class_names=names)
    findings = CalibrationCheck().run(ctx)
    shared = ctx.cache["temperature"]
    assert isinstance(shared["scaler"], TemperatureScaler) and shared["fitted_on"] == "val"
    assert shared["scaler"].temperature_ == pytest.approx(2.0, rel=0.15)
    assert shared["heldout"]["test"].shape == (800, 4)
    assert [f.code for f in findings] == ["overconfidence"]


def test_thresholds_can_be_overridden():
    y, z = calibrated(5, n=1500, k=5)
    split = whylow.Split(y=y, logits=1.4 * z)
    default = _mine(whylow.diagnose(test=split))
    loose = _mine(whylow.diagnose(test=split, options={f"calibration.{k}": 0.01 for k in ("min_nll_gain", "min_scale_gain")}))
    assert default and default[0].severity == "info"  # significant but a small effect
    assert loose and loose[0].severity == "warning"
    assert loose[0].evidence["log_loss_relative_gain"] < 0.10


# --------------------------------------------------------------------------
# TemperatureScaler / VectorScaler
# --------------------------------------------------------------------------


def test_temperature_recovers_a_known_temperature_from_logits_and_probs():
    y, z = calibrated(1, n=4000, k=6, spread=2.0)
    from_logits = TemperatureScaler().fit(y, logits=3.0 * z)
    from_probs = TemperatureScaler().fit(y, probs=_softmax(3.0 * z))
    assert from_logits.temperature_ == pytest.approx(3.0, rel=0.1)
    assert from_probs.temperature_ == pytest.approx(from_logits.temperature_, rel=1e-3)
    assert from_logits.log_loss_after_ < from_logits.log_loss_before_
    # dividing logits or log-probabilities by the same T gives the same probabilities
    np.testing.assert_allclose(from_logits.transform(logits=3.0 * z), from_logits.transform(probs=_softmax(3.0 * z)), atol=1e-10)


def test_binary_single_column_inputs():
    rng = np.random.default_rng(0)
    logit = rng.normal(0, 2, 2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-logit))).astype(int)
    t = TemperatureScaler().fit(y, logits=4 * logit)
    assert t.temperature_ == pytest.approx(4.0, rel=0.15)
    p = t.transform(probs=1 / (1 + np.exp(-4 * logit)))
    assert p.shape == (2000, 2)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-logit * 4 / t.temperature_)), atol=1e-9)


def test_temperature_json_round_trip(tmp_path):
    y, z = calibrated(2, n=500, k=3)
    scaler = TemperatureScaler().fit(y, logits=2 * z)
    path = scaler.save(tmp_path / "sub" / "cal.json")
    text = path.read_text()
    assert json.loads(text)["format"] == "whylow.calibrator/1"
    again = TemperatureScaler.load(path)
    assert again.temperature_ == scaler.temperature_ and again.input_ == "logits"
    assert isinstance(load_calibrator(path), TemperatureScaler)
    np.testing.assert_allclose(again.transform(logits=z), scaler.transform(logits=z))
    assert TemperatureScaler.from_dict(scaler.to_dict()).to_dict() == scaler.to_dict()
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # atomic write leaves no temporary file


def test_vector_scaler_json_round_trip_and_modes(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    z = rng.normal(size=(3000, 3)) + 3 * np.eye(3)[y] + np.array([1.5, 0.0, -1.0])
    for mode in ("vector", "shared", "bias"):
        vs = VectorScaler(mode=mode).fit(y, logits=z)
        assert vs.log_loss_after_ < vs.log_loss_before_
        if mode != "vector":
            assert np.ptp(vs.scale_) == pytest.approx(0.0)
        if mode == "bias":
            assert vs.scale_[0] == 1.0
        again = load_calibrator(vs.save(tmp_path / f"{mode}.json"))
        assert isinstance(again, VectorScaler) and again.mode == mode
        np.testing.assert_allclose(again.transform(logits=z), vs.transform(logits=z))
    # fitted on log-probabilities, it accepts logits (turned into log-probabilities first)
    vs = VectorScaler().fit(y, probs=_softmax(z))
    np.testing.assert_allclose(vs.transform(logits=z + 7.0), vs.transform(probs=_softmax(z)), atol=1e-9)
    with pytest.raises(InvalidInputError, match="fitted on logits"):
        VectorScaler().fit(y, logits=z).transform(probs=_softmax(z))


@pytest.mark.parametrize(
    "content,match",
    [
        ("not json", "not valid JSON"),
        ('{"format": "other"}', "Not a whylow calibrator"),
        ('{"format": "whylow.calibrator/1", "method": "magic"}', "Unknown calibrator method"),
        ('{"format": "whylow.calibrator/1", "method": "temperature", "temperature": -1}', "positive number"),
        ('{"format": "whylow.calibrator/1", "method": "temperature"}', "missing the keys"),
        ('{"format": "whylow.calibrator/1", "method": "vector", "scale": [1, 2], "bias": [0], "input": "logits"}', "equal length"),
    ],
)
def test_bad_calibrator_files(tmp_path, content, match):
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=match):
        load_calibrator(path)


def test_scaler_input_validation():
    y, z = calibrated(0, n=50, k=3)
    with pytest.raises(InvalidInputError, match="exactly one"):
        TemperatureScaler().fit(y, logits=z, probs=_softmax(z))
    with pytest.raises(InvalidInputError, match="out of range"):
        TemperatureScaler().fit(y + 3, logits=z)
    with pytest.raises(InvalidInputError, match="NaN"):
        TemperatureScaler().fit(y, logits=np.where(np.eye(50, 3) > 0, np.nan, z))
    with pytest.raises(InvalidInputError, match="sum to 1"):
        TemperatureScaler().fit(y, probs=np.full((50, 3), 0.5))
    with pytest.raises(InvalidInputError, match="not fitted"):
        TemperatureScaler().transform(logits=z)
    with pytest.raises(InvalidInputError, match="shape"):
        TemperatureScaler().fit(y[:-1], logits=z)
    with pytest.raises(InvalidInputError, match="mode"):
        VectorScaler(mode="diagonal")


def test_cross_fit_predicts_each_half_with_the_other_halfs_calibrator():
    y, z = calibrated(6, n=401, k=4)
    first, second = stratified_halves(y, seed=0)
    assert np.intersect1d(first, second).size == 0 and np.union1d(first, second).size == 401
    assert np.abs(np.bincount(y[first], minlength=4) - np.bincount(y[second], minlength=4)).max() <= 1
    out, (cal_a, cal_b) = cross_fit(TemperatureScaler, y, 2 * z, seed=0)
    np.testing.assert_allclose(out[second], cal_a.transform(logits=2 * z[second]))
    np.testing.assert_allclose(out[first], cal_b.transform(logits=2 * z[first]))
    assert cal_a.n_samples_ == first.size and cal_b.n_samples_ == second.size


def test_to_logits_turns_probabilities_into_log_probabilities():
    p = np.array([[0.2, 0.8], [1.0, 0.0]])
    z, kind = to_logits(probs=p)
    assert kind == "log_probs" and np.isfinite(z).all()
    np.testing.assert_allclose(_softmax(z), p, atol=1e-12)
    assert calibrator_from_dict(TemperatureScaler().fit(np.array([0, 1]), probs=p).to_dict()).temperature_ > 0
