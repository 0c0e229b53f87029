"""preprocessing-mismatch: the map between training and test inputs is estimated, named, undone and verified."""

from __future__ import annotations

import numpy as np
import pytest

from whylow.checks.preprocessing import estimate_transform
from whylow.errors import InvalidInputError
from whylow.fixes.preprocessing import InputTransform, resize_images
from whylow.scenarios import build
from whylow.scenarios.base import colourise, digits_images
from whylow.summaries import summarise


@pytest.fixture(scope="module")
def raw():
    """scikit-learn's digits as uint8 16×16 images, shuffled, split 1000 / 797."""
    x, _ = digits_images(16)
    x = x[np.random.default_rng(0).permutation(len(x))]
    return x[:1000], x[1000:]


def _estimate(train, test, layout="NHW", **kw):
    return estimate_transform(summarise(train, layout=layout), summarise(test, layout=layout), **kw)


def test_divided_by_127_instead_of_255_is_named_with_its_divisors(raw):
    tr, te = raw
    est = _estimate((tr / 255.0).astype(np.float32), (te / 127.0).astype(np.float32))
    assert est.is_mismatch and est.parts == ["scale"]
    assert est.pre.scale == pytest.approx([255 / 127])
    assert est.pre.offset == pytest.approx([0.0])
    assert "multiples of 1/255" in est.title and "multiples of 1/127" in est.title
    assert "Divide test images by 255 instead of 127" in est.fix
    assert est.residual_offset is None


def test_uint8_training_and_float_test_inputs(raw):
    tr, te = raw
    est = _estimate(tr, (te / 255.0).astype(np.float32))
    assert est.is_mismatch and est.parts == ["scale"]
    assert est.pre.scale == pytest.approx([1 / 255])
    assert "uint8 0-255" in est.title
    assert "multiply the current test inputs by 255" in est.fix


def test_missing_standardisation_is_named_with_the_constants_to_apply(raw):
    tr, te = raw
    x_tr = tr / 255.0
    mean, std = x_tr.mean(), x_tr.std()
    est = _estimate(((x_tr - mean) / std).astype(np.float32), (te / 255.0).astype(np.float32))
    assert est.is_mismatch and "standardisation" in est.parts
    assert est.pre.scale == pytest.approx([std], rel=0.05) and est.pre.offset == pytest.approx([mean], rel=0.05)
    assert "mean/std normalised" in est.title and est.fix.startswith("Normalise test inputs")
    x_fixed = est.pre.invert((te / 255.0).astype(np.float32), "NHW")
    assert abs(x_fixed.mean()) < 0.1 and abs(x_fixed.std() - 1) < 0.1


def test_bgr_test_images_are_a_channel_permutation(raw):
    tr, te = raw
    rgb_tr, rgb_te = colourise(tr, 0) / 255.0, colourise(te, 1) / 255.0
    rgb_tr[..., 2] += 0.3 * (1 - rgb_tr[..., 0])  # a blue background makes every channel distinct
    rgb_te[..., 2] += 0.3 * (1 - rgb_te[..., 0])
    est = _estimate(rgb_tr.astype(np.float32), rgb_te[..., ::-1].astype(np.float32), layout="NHWC")
    assert est.is_mismatch and est.parts == ["channel-order"]
    assert est.pre.perm.tolist() == [2, 1, 0] and "BGR" in est.title
    np.testing.assert_allclose(est.pre.scale, 1.0)
    assert "x[..., ::-1]" in est.fix


def test_known_normalisation_constants(raw):
    tr, te = raw
    rgb_tr, rgb_te = colourise(tr, 0) / 255.0, colourise(te, 1) / 255.0
    m, s = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    est = _estimate(rgb_tr.astype(np.float32), ((rgb_te - m) / s).astype(np.float32), layout="NHWC")
    assert est.is_mismatch and est.parts == ["normalisation-constants"]
    assert "ImageNet" in est.title and "test inputs only" in est.title
    np.testing.assert_allclose(est.pre.scale, 1 / s, rtol=0.03)


@pytest.mark.parametrize(
    "change",
    [
        lambda x: x,  # a random split: nothing
        lambda x: np.clip(x + 0.1, 0, None),  # a brightness offset only: shift, not preprocessing
        lambda x: x**0.5,  # gamma: not one affine map
    ],
    ids=["same", "offset", "gamma"],
)
def test_no_mismatch_without_one_uniform_map(raw, change):
    tr, te = raw
    est = _estimate((tr / 255.0).astype(np.float32), change(te / 255.0).astype(np.float32))
    assert not est.is_mismatch and est.pre is None


def test_brightness_offset_is_kept_as_residual_not_preprocessing(raw):
    tr, te = raw
    est = _estimate((tr / 255.0).astype(np.float32), (te / 255.0 + 0.1).astype(np.float32))
    assert not est.is_mismatch
    assert est.residual_offset == pytest.approx([0.1], abs=0.01)


def test_seed_style_scale_plus_offset_names_both_parts():
    rng = np.random.default_rng(0)
    train = ((rng.random((150, 24, 24, 3)) + 0.2) / 255).astype(np.float32)
    test = ((rng.random((100, 24, 24, 3)) + 0.05) / 127).astype(np.float32)
    est = _estimate(train, test, layout="NHWC")
    assert est.is_mismatch and est.parts == ["scale"]
    assert "255/127" in est.title and "Divide test images by 255 instead of 127" in est.fix
    assert est.residual_offset == pytest.approx([-0.15 / 255] * 3, rel=0.05)
    assert "darker" in est.evidence["explanation"] and "/255" in est.evidence["explanation"]
    np.testing.assert_allclose(est.pre.offset, 0.0)


def test_size_difference_is_a_shape_issue(raw):
    tr, te = raw
    small = resize_images(te.astype(np.float32), "NHW", (12, 12))
    est = _estimate(tr.astype(np.float32), small)
    assert est.shape_issue["size"] == [12, 12] and est.shape_issue["reference_size"] == [16, 16]
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
        ("normalisation", ("multiples of 1/255", "multiples of 1/127")),
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
    assert top.verified["metric"] == "accuracy" and top.verified["after"] > top.verified["before"]
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
