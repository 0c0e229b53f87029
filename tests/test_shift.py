"""covariate-shift: image-property drift, a domain classifier, output drift, and the accuracy it explains."""

from __future__ import annotations

import numpy as np
import pytest

import whylow
from whylow.checks.shift import class_matched_rows, domain_classifier, holm
from whylow.inputs import Split
from whylow.scenarios import build

MINE = ("preprocessing-mismatch", "covariate-shift", "data-quality")


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    assert holm([]).size == 0


def test_domain_classifier_separates_only_different_data():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 10)), rng.normal(size=(300, 10))
    same = domain_classifier(a, b, seed=0)
    assert 0.4 < same["auc"] < 0.6 and same["p_value"] > 0.01
    b[:, 3] += 1.0
    diff = domain_classifier(a, b, seed=0)
    assert diff["auc"] > 0.7 and diff["p_value"] < 1e-6
    assert len(diff["scores_ref"]) == 300 and len(diff["scores_tst"]) == 300


def test_pooled_thumbnail_scale_ignores_rounding_sized_offsets():
    """A pixel constant within each split but off by 1e-4 between them is no shift."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    a[:, 0], b[:, 0] = -0.9610, -0.9611
    assert domain_classifier(a, b, seed=0)["auc"] > 0.95  # scaled on its own, the constant pixel separates
    assert domain_classifier(a, b, seed=0, groups=[slice(0, 16)])["auc"] < 0.65


def test_class_matched_rows_have_the_same_class_counts_on_both_sides():
    rng = np.random.default_rng(0)
    y_ref, y_tst = np.repeat([0, 1, 2], [50, 50, 5]), np.repeat([0, 1, 3], [10, 30, 7])
    r, t = class_matched_rows(y_ref, y_tst, rng)
    np.testing.assert_array_equal(np.bincount(y_ref[r], minlength=4), [10, 30, 0, 0])
    np.testing.assert_array_equal(np.bincount(y_tst[t], minlength=4), [10, 30, 0, 0])
    assert len(np.unique(r)) == len(r) and len(np.unique(t)) == len(t)  # drawn without replacement


def test_a_new_class_mix_alone_is_not_covariate_shift():
    """Classes whose inputs differ, in a new mix on test (label shift): p(x | y) is unchanged, so no input shift."""
    rng = np.random.default_rng(3)

    def split(counts):
        y = np.repeat(np.arange(3), counts)
        x = rng.normal(size=(len(y), 6)) + 1.5 * y[:, None]
        pred = y.copy()
        hard = np.flatnonzero(y == 0)
        pred[hard[: int(0.4 * len(hard))]] = 1  # class 0 is the hard one: the test mix, mostly class 0, costs accuracy
        probs = np.full((len(y), 3), 0.1)
        probs[np.arange(len(y)), pred] = 0.8
        return Split(x=x, y=y, probs=probs)

    train, val, test = split([300, 300, 300]), split([100, 100, 100]), split([240, 40, 20])
    report = whylow.diagnose(train=train, val=val, test=test)
    found = [f for f in report.findings if f.code == "covariate-shift"]
    assert not found or found[0].evidence.get("class_matched")
    assert not [f for f in found if f.severity != "info"]
    # the same class mix with the test inputs moved is still found, on the class-matched samples
    moved = Split(x=test.x + 1.0, y=test.y, probs=test.probs)
    found = [f for f in whylow.diagnose(train=train, val=val, test=moved).findings if f.code == "covariate-shift"]
    assert found and "class_matched" in found[0].evidence
    assert any(d["property"].startswith("column") for d in found[0].evidence["drifted"])


def _tabular(seed, shift=0.0, n=600):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=5)
    x_tr, x_te = rng.random((n, 5)), rng.random((n // 2, 5))
    x_te[:, 2] += shift
    y_tr, y_te = (x_tr @ w > np.median(x_tr @ w)).astype(int), (x_te @ w > np.median(x_tr @ w)).astype(int)
    p_te = np.clip(np.column_stack([1 - y_te, y_te]) * 0.8 + 0.1, 0, 1)
    return Split(x=x_tr, y=y_tr), Split(x=x_te, y=y_te, probs=p_te)


def test_tabular_column_drift_is_found_and_a_clean_split_is_not():
    train, test = _tabular(0, shift=0.5)
    report = whylow.diagnose(test=test, train=train)
    found = [f for f in report.findings if f.code == "covariate-shift"]
    assert found and found[0].severity == "info"  # the predictions stay right: a drift that costs nothing
    assert found[0].evidence["drifted"][0]["property"] == "column 2"
    # the same drift, with the model wrong on the shifted rows, is a warning that says what it costs
    val = Split(x=train.x[:300], y=train.y[:300], probs=np.clip(np.column_stack([1 - train.y[:300], train.y[:300]]) * 0.8 + 0.1, 0, 1))
    shifted = test.x[:, 2] > np.quantile(test.x[:, 2], 0.6)
    probs = test.probs.copy()
    probs[shifted] = probs[shifted][:, ::-1]
    report = whylow.diagnose(test=Split(x=test.x, y=test.y, probs=probs), train=train, val=val)
    found = [f for f in report.findings if f.code == "covariate-shift"]
    assert found and found[0].severity in ("warning", "critical"), [(f.code, f.severity, f.title) for f in report.findings]
    assert "accuracy points" in found[0].title and found[0].explains["gap"] > 0.05
    train, test = _tabular(1)
    report = whylow.diagnose(test=test, train=train)
    assert not [f for f in report.findings if f.code in MINE and f.severity != "info"]


# -- full diagnoses --------------------------------------------------------------------
@pytest.fixture(scope="module")
def single_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reports(single_thread):
    cache = {}

    def get(name, seed=0, **params):
        key = (name, seed, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = build(name, seed=seed, **params).diagnose()
        return cache[key]

    return get


@pytest.mark.parametrize("name, property_", [("lighting", "brightness"), ("blur", "sharpness")])
def test_shift_scenarios_put_covariate_shift_on_top(reports, name, property_):
    report = reports(name)
    top = report.findings[0]
    assert top.code == "covariate-shift", [(f.code, f.severity, f.title) for f in report.findings[:3]]
    assert top.severity == "critical"
    ev = top.evidence
    assert property_ in [d["property"] for d in ev["drifted"]]
    assert ev["domain_classifier"]["auc"] >= 0.9 and ev["domain_classifier"]["p_value"] < 0.01
    assert ev["accuracy_drop_explained"] >= 0.05 and ev["drop_p_value"] < 0.01
    assert ev["output_drift_bbsd"]["reference"] == "val"
    assert "judged_on" not in ev  # no preprocessing mismatch to undo
    assert not [f for f in report.findings if f.code == "preprocessing-mismatch"]
    assert "augmentation" in top.fix
    hists = report.artifacts["covariate-shift"]["properties"]
    assert sum(hists[property_]["train"]) == report.inputs["splits"]["train"]["n"]


def test_blur_is_described_as_blurrier(reports):
    top = reports("blur").findings[0]
    assert "blurrier" in top.title and "sharpness" in top.title


def test_mild_shift_that_costs_no_accuracy_is_info(reports):
    report = reports("blur", magnitude=0.6)
    found = [f for f in report.findings if f.code == "covariate-shift"]
    assert found and found[0].severity == "info"  # detectable, but the model keeps its validation accuracy
    assert found[0].evidence["drifted"][0]["property"] in ("sharpness", "noise", "clipped", "contrast")
    assert found[0].explains is None or found[0].explains["gap"] < 0.02


def test_quantised_test_inputs_raise_no_warning(single_thread):
    """Float test images rounded to 1/255 (8-bit storage) next to continuous float training images: not a shift."""
    scn = build("none", seed=0)
    rng = np.random.default_rng(0)

    def dithered(split):
        return Split(x=np.clip(split.x + rng.uniform(-0.5, 0.5, split.x.shape).astype(np.float32) / 255, 0, 1), y=split.y)

    train, val = dithered(scn.train), dithered(scn.val)
    test = Split(x=(np.round(dithered(scn.test).x * 255) / 255).astype(np.float32), y=scn.test.y)
    report = whylow.diagnose(train=train, val=val, test=test, model=scn.model)
    assert not [(f.code, f.title) for f in report.findings if f.code in MINE and f.severity != "info"]


@pytest.mark.parametrize("seed, rgb", [(0, False), (1, True), (2, False), (3, True)])
def test_healthy_scenarios_raise_nothing_from_the_input_checks(single_thread, seed, rgb):
    report = build("none", seed=seed, rgb=rgb).diagnose()
    assert not [(f.code, f.severity, f.title) for f in report.findings if f.code in MINE and f.severity != "info"]
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["covariate-shift"] == statuses["preprocessing-mismatch"] == statuses["data-quality"] == "ran"


def test_tabular_preprocessing_mismatch_is_not_counted_again_as_shift():
    rng = np.random.default_rng(5)
    raw_tr, raw_te = rng.random((600, 5)) * 10 + 3, rng.random((300, 5)) * 10 + 3
    mean, std = raw_tr.mean(axis=0), raw_tr.std(axis=0)
    y_tr, y_te = rng.integers(0, 2, 600), rng.integers(0, 2, 300)
    report = whylow.diagnose(
        test=Split(x=raw_te, y=y_te, probs=np.full((300, 2), 0.5)), train=Split(x=(raw_tr - mean) / std, y=y_tr)
    )
    codes = [f.code for f in report.findings if f.severity != "info"]
    assert "preprocessing-mismatch" in codes and "covariate-shift" not in codes
