"""preprocessing-mismatch: the map between training and test inputs is estimated, named, undone and verified."""

from __future__ import annotations

import numpy as np
import pytest

from whylow.checks.preprocessing import ModelScorer, estimate_image_mismatch, estimate_transform
from whylow.errors import InvalidInputError
from whylow.fixes.preprocessing import GeometricTransform, InputTransform, resize_images
from whylow.scenarios import build
from whylow.scenarios.base import digits_images
from whylow.summaries import summarise


@pytest.fixture(scope="module")
def raw():
    """scikit-learn's digits as uint8 16×16 images, shuffled, split 1000 / 797, with labels."""
    x, y = digits_images(16)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1000], x[1000:], y[:1000], y[1000:]


def _flat_model(x_train, y_train):
    """A logistic regression on flattened pixels, as a callable ``x -> probs`` (a model whylow can re-run)."""
    from sklearn.linear_model import LogisticRegression

    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few hundred iterations are plenty for these tests
        clf = LogisticRegression(max_iter=300).fit(np.asarray(x_train, np.float64).reshape(len(x_train), -1), y_train)
    return lambda x: clf.predict_proba(np.asarray(x, np.float64).reshape(len(x), -1))


def _estimate(train, test, layout="NHW", model=None, y_test=None, natural=None, **kw):
    """Estimate with the model re-run on the labelled test rows (when given), else from the inputs alone."""
    scorer = None if model is None else ModelScorer(model, np.asarray(test), np.asarray(y_test), layout)
    lattices = (summarise(train, layout=layout).lattices(), summarise(test, layout=layout).lattices())
    return estimate_image_mismatch(train, test, layout, natural_x=natural, lattices=lattices, scorer=scorer, **kw)


def test_divided_by_127_instead_of_255_is_named_with_its_divisors(raw):
    tr, te, ytr, yte = raw
    x_tr, x_te = (tr / 255.0).astype(np.float32), (te / 127.0).astype(np.float32)
    for model in (None, _flat_model(x_tr, ytr)):
        est = _estimate(x_tr, x_te, model=model, y_test=yte)
        assert est.is_mismatch and est.candidate.kind == "scale", est.evidence
        assert est.candidate.params["factor"] == pytest.approx(255 / 127)
        assert "divided by 127 instead of 255" in est.title
        assert "Divide test images by 255 instead of 127" in est.fix
        assert abs(float(est.pre.invert(x_te, "NHW").max()) - 1.0) < 0.01
        assert est.verified_by_model is (model is not None)
    assert est.selection["accuracy_after"] > est.selection["accuracy_before"]


def test_uint8_training_and_float_test_inputs_for_a_model_that_divides_inside(raw):
    tr, te, ytr, yte = raw
    model = _flat_model(tr / 255.0, ytr)
    inside = lambda x: model(np.asarray(x, np.float64) / 255.0)  # the model normalises its uint8 inputs itself
    est = _estimate(tr, (te / 255.0).astype(np.float32), model=inside, y_test=yte)
    assert est.is_mismatch and est.candidate.params["factor"] == pytest.approx(1 / 255)
    assert "raw 0-255" in est.title
    assert "multiply the current test inputs by 255" in est.fix


def test_255_is_named_rather_than_256_when_the_data_cannot_tell(raw):
    tr, te, ytr, yte = raw
    rng = np.random.default_rng(1)
    cont_tr = (tr + rng.uniform(-0.5, 0.5, tr.shape)).astype(np.float32)  # continuous values: no lattice to read
    cont_te = (te + rng.uniform(-0.5, 0.5, te.shape)).astype(np.float32)
    model = _flat_model(cont_tr, ytr)
    for m in (None, model):
        est = _estimate(cont_tr, cont_te / 255.0, model=m, y_test=yte)
        assert est.is_mismatch and est.candidate.params["test_divisor"] == 255, est.candidate.params


def test_forgotten_standardisation_is_named_with_the_constants_to_apply(raw):
    tr, te, ytr, yte = raw
    x_tr = tr / 255.0
    mean, std = x_tr.mean(), x_tr.std()
    std_tr = ((x_tr - mean) / std).astype(np.float32)
    model = _flat_model(std_tr, ytr)
    est = _estimate(std_tr, (te / 255.0).astype(np.float32), model=model, y_test=yte)
    assert est.is_mismatch and est.candidate.kind == "standardisation-missing"
    assert est.candidate.params["mean"] == pytest.approx([mean], rel=0.05)
    assert "mean/std normalised" in est.title and est.fix.startswith("Normalise test inputs")
    x_fixed = est.pre.invert((te / 255.0).astype(np.float32), "NHW")
    assert abs(x_fixed.mean()) < 0.1 and abs(x_fixed.std() - 1) < 0.1


@pytest.fixture(scope="module")
def photos():
    """Colour 12×12 crops of scikit-learn's two sample photos, 8 classes (which quarter of which photo), and a model."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    xs, ys = [], []
    for i, img in enumerate(load_sample_images().images):
        h, w = img.shape[0] // 2, img.shape[1] // 2
        for q, (r0, c0) in enumerate([(0, 0), (0, w), (h, 0), (h, w)]):
            rr = rng.integers(r0, r0 + h - 12, 150)
            cc = rng.integers(c0, c0 + w - 12, 150)
            xs += [img[r:r + 12, c:c + 12] for r, c in zip(rr, cc)]
            ys += [4 * i + q] * 150
    x, y = np.stack(xs).astype(np.float32) / 255.0, np.array(ys)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    return x[:800], y[:800], x[800:], y[800:], _flat_model(x[:800], y[:800])


def test_bgr_photos_are_a_channel_permutation_verified_by_the_model(photos):
    x_tr, y_tr, x_te, y_te, model = photos
    est = _estimate(x_tr, x_te[..., ::-1], layout="NHWC", model=model, y_test=y_te)
    assert est.is_mismatch and est.candidate.kind == "channel-order" and est.candidate.params["order"] == [2, 1, 0]
    assert "BGR" in est.title and "x[..., ::-1]" in est.fix
    assert est.selection["accuracy_after"] > est.selection["accuracy_before"] + 0.05


def test_bgr_photos_through_diagnose_put_the_verified_mismatch_first(photos):
    import whylow

    x_tr, y_tr, x_te, y_te, model = photos
    report = whylow.diagnose(train=(x_tr, y_tr), test=(np.ascontiguousarray(x_te[..., ::-1]), y_te), model=model)
    top = report.findings[0]
    assert top.code == "preprocessing-mismatch" and top.severity == "critical", [(f.code, f.title) for f in report.findings]
    assert top.evidence["preprocessing_candidate"] == {"kind": "channel-order", "order": [2, 1, 0]}
    assert top.verified["method"] == "re-measured" and top.verified["after"] > top.verified["before"]
    lo, hi = top.verified["interval"]
    assert 0 < lo <= hi


@pytest.mark.parametrize("op, kind, params", [("flip-h", "flip", {"axis": "horizontal"}), ("rot90", "rotation", {"k": 1})])
def test_flipped_or_rotated_test_images_are_named(raw, op, kind, params):
    tr, te, ytr, yte = raw
    x_tr = (tr / 255.0).astype(np.float32)
    x_te = GeometricTransform(op).apply((te / 255.0).astype(np.float32), "NHW")
    est = _estimate(x_tr, x_te, model=_flat_model(x_tr, ytr), y_test=yte)
    assert est.is_mismatch and est.candidate.describe() == {"kind": kind, **params}, est.evidence.get("candidates_tried")


def test_quantised_test_inputs_are_not_a_mismatch(raw):
    tr, te, ytr, yte = raw
    rng = np.random.default_rng(2)
    cont_tr = np.clip(tr / 255.0 + rng.uniform(-0.5, 0.5, tr.shape) / 255, 0, 1).astype(np.float32)
    cont_te = np.clip(te / 255.0 + rng.uniform(-0.5, 0.5, te.shape) / 255, 0, 1)
    quantised = (np.round(cont_te * 255) / 255).astype(np.float32)
    for m in (None, _flat_model(cont_tr, ytr)):
        assert not _estimate(cont_tr, quantised, model=m, y_test=yte).is_mismatch


@pytest.mark.parametrize(
    "change",
    [
        lambda x, r: x,  # a random split: nothing
        lambda x, r: np.clip(x + 0.1, 0, None),  # a brightness offset only: shift, not preprocessing
        lambda x, r: x**0.5,  # gamma: not one of the bugs
        lambda x, r: np.clip(x * r.uniform(1.6, 2.4, (len(x), 1, 1)), 0, 1),  # lighting: a gain per image, clipped
    ],
    ids=["same", "offset", "gamma", "lighting"],
)
def test_no_mismatch_for_a_distribution_change(raw, change):
    tr, te, ytr, yte = raw
    x_tr = (tr / 255.0).astype(np.float32)
    x_te = change(te / 255.0, np.random.default_rng(3)).astype(np.float32)
    for m in (None, _flat_model(x_tr, ytr)):
        est = _estimate(x_tr, x_te, model=m, y_test=yte)
        assert not est.is_mismatch and est.pre is None, (est.title, est.evidence.get("candidates_tried"))


def test_seed_style_scale_plus_offset_keeps_the_offset_for_covariate_shift():
    rng = np.random.default_rng(0)
    train = ((rng.random((150, 24, 24, 3)) + 0.2) / 255).astype(np.float32)
    test = ((rng.random((100, 24, 24, 3)) + 0.05) / 127).astype(np.float32)
    est = _estimate(train, test, layout="NHWC")
    assert est.is_mismatch and est.parts == ["scale"] and not est.verified_by_model
    assert "divided by 127 instead of 255" in est.title
    assert est.residual_offset == pytest.approx([-0.15 / 255] * 3, rel=0.1)
    assert "darker" in est.evidence["explanation"]


def test_size_difference_is_a_shape_issue(raw):
    import whylow

    tr, te, ytr, yte = raw
    small = resize_images(te.astype(np.float32), "NHW", (12, 12))
    report = whylow.diagnose(train=(tr.astype(np.float32), ytr), test=(small, yte))
    found = [f for f in report.findings if f.code == "preprocessing-mismatch"]
    assert found and found[0].evidence["size"] == [12, 12] and found[0].evidence["reference_size"] == [16, 16]
    back = resize_images(small, "NHW", (16, 16))
    assert back.shape == te.shape


@pytest.mark.parametrize("layout, shape", [("NHWC", (4, 5, 5, 3)), ("NCHW", (4, 3, 5, 5)), ("NHW", (4, 5, 5)), ("tabular", (4, 3))])
def test_transform_roundtrip(layout, shape):
    c = 1 if layout == "NHW" else 3
    t = InputTransform(np.linspace(0.5, 2, c), np.linspace(-1, 1, c), np.arange(c)[::-1])
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    np.testing.assert_allclose(t.invert(t.apply(x, layout), layout), x, rtol=1e-5, atol=1e-6)
    assert not t.is_identity and InputTransform.identity(c).is_identity


def test_transform_validation():
    with pytest.raises(InvalidInputError, match="permutation"):
        InputTransform([1, 1], [0, 0], [0, 0])
    with pytest.raises(InvalidInputError, match="non-zero"):
        InputTransform([0.0], [0.0], [0])
    with pytest.raises(InvalidInputError, match="channels"):
        InputTransform.identity(3).invert(np.zeros((2, 4, 4, 1)), "NHWC")


# -- full diagnoses of the fault scenarios ------------------------------------------
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

    def get(name):
        if name not in cache:
            cache[name] = build(name, seed=0).diagnose()
        return cache[name]

    return get


@pytest.mark.parametrize(
    "name, words",
    [
        ("normalisation", ("divided by 127 instead of 255",)),
        ("missing-normalisation", ("mean/std normalised",)),
        ("channel-order", ("BGR",)),
    ],
)
def test_scenario_top_finding_is_a_verified_preprocessing_mismatch(reports, name, words):
    report = reports(name)
    top = report.findings[0]
    assert top.code == "preprocessing-mismatch", [(f.code, f.severity, f.title) for f in report.findings[:3]]
    assert top.severity == "critical"
    for w in words:
        assert w in top.title
    assert top.verified["after"] != top.verified["before"] and top.verified["method"] == "re-measured"
    assert top.evidence["verification"]["log_loss_after"] < top.evidence["verification"]["log_loss_before"]
    assert top.fix and top.fix.endswith(".")
    assert not [f for f in report.findings if f.code == "covariate-shift" and f.severity != "info"]


def test_scenario_report_matches_the_schema(reports, validate_report):
    validate_report(reports("normalisation").to_dict())


def test_tabular_standardisation_in_training_only():
    rng = np.random.default_rng(4)
    raw_tr, raw_te = rng.random((500, 6)) * 10 + 3, rng.random((200, 6)) * 10 + 3
    mean, std = raw_tr.mean(axis=0), raw_tr.std(axis=0)
    ref = summarise((raw_tr - mean) / std, layout="tabular")
    est = estimate_transform(ref, summarise(raw_te, layout="tabular"))
    assert est.is_mismatch and est.parts == ["standardisation"] and est.p_value < 1e-6
    np.testing.assert_allclose(est.pre.scale, std, rtol=0.15)
    assert "Standardise test features" in est.fix
    same = estimate_transform(ref, summarise((raw_te - mean) / std, layout="tabular"))
    assert not same.is_mismatch


def test_two_bugs_at_once_are_both_named(photos):
    """BGR *and* raw 0-255 values: undoing the scale alone recovers part, undoing both recovers the rest."""
    x_tr, y_tr, x_te, y_te, model = photos
    est = _estimate(x_tr, np.ascontiguousarray(x_te[..., ::-1] * 255.0), layout="NHWC", model=model, y_test=y_te)
    assert est.is_mismatch and set(est.parts) == {"scale", "channel-order"}, (est.parts, est.evidence.get("candidates_tried"))
    assert est.candidate.params["also"] == {"kind": "channel-order", "order": [2, 1, 0]}
    np.testing.assert_allclose(est.pre.invert(x_te[..., ::-1] * 255.0, "NHWC"), x_te, atol=1e-5)
