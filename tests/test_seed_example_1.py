"""The seed's Example 1: random labels, a /255 vs /127 normalisation mismatch and a brightness difference, told apart."""

from __future__ import annotations

import numpy as np
import pytest

from whylow.scenarios import build
from whylow.scenarios.seed_example_1 import seed_1_data


def test_data_follow_the_seed():
    (x_tr, y_tr), (x_te, y_te) = seed_1_data(0, n_train=50, n_test=20, image_size=16)
    assert x_tr.shape == (50, 16, 16, 3) and x_te.shape == (20, 16, 16, 3)
    assert x_tr.min() >= 0.2 / 255 - 1e-7 and x_tr.max() <= 1.2 / 255 + 1e-7
    assert x_te.min() >= 0.05 / 127 - 1e-7 and x_te.max() <= 1.05 / 127 + 1e-7
    assert set(np.unique(y_tr)) <= {0, 1} and y_te.dtype == np.int64


@pytest.fixture(scope="module")
def report():
    return build("seed-1", seed=0).diagnose()


def test_normalisation_mismatch_is_named(report):
    found = [f for f in report.findings if f.code == "preprocessing-mismatch"]
    assert len(found) == 1
    f = found[0]
    assert "divided by 127 instead of 255" in f.title and "Divide test images by 255 instead of 127" in f.fix
    assert f.evidence["undo_map"]["scale"] == pytest.approx([255 / 127] * 3, rel=1e-5)
    assert f.evidence["undo_map"]["offset"] == [0.0, 0.0, 0.0]
    assert f.evidence["preprocessing_candidate"]["factor"] == pytest.approx(255 / 127)
    # random labels: the model predicts at chance, so re-running it cannot confirm the fix; named from the inputs alone
    assert f.severity == "warning" and f.verified is None and "not_verified" in f.evidence
    assert "model_uninformative" in f.evidence


def test_brightness_difference_is_told_apart_from_the_normalisation(report):
    pre = next(f for f in report.findings if f.code == "preprocessing-mismatch")
    assert pre.evidence["residual_offset"] == pytest.approx([-0.15 / 255] * 3, rel=0.05)
    assert "darker" in pre.evidence["explanation"] and "0.15" in pre.evidence["explanation"]
    shift = [f for f in report.findings if f.code == "covariate-shift"]
    assert len(shift) == 1
    s = shift[0]
    assert "darker" in s.title and "after undoing the preprocessing mismatch" in s.title
    assert "judged_on" in s.evidence and s.evidence["drifted"][0]["property"] == "brightness"
    assert s.evidence["drifted"][0]["change_relative"] == pytest.approx(-0.15 / 0.7, rel=0.05)
    assert s.severity == "info"  # random labels: the shift costs no accuracy, so it is no reason for low predictions


def test_random_labels_are_no_signal(report):
    codes = [f.code for f in report.findings]
    assert "no-signal" in codes
    no_signal = report.findings[codes.index("no-signal")]
    assert no_signal.severity == "critical"
