"""data-quality: NaN/inf inputs, blank images, corrupt files, contradictory duplicates, unusable labels."""

from __future__ import annotations

import numpy as np
import pytest

import whylow
from whylow.checks.quality import duplicate_groups
from whylow.inputs import Split, load_split
from whylow.scenarios import build
from whylow.summaries import row_hashes


def _findings(report, kind=None):
    return [f for f in report.findings if f.code == "data-quality" and (kind is None or f.evidence["kind"] == kind)]


def test_duplicate_groups_are_confirmed_byte_by_byte():
    x = np.arange(24, dtype=np.uint8).reshape(6, 4)
    x[3] = x[0]
    x[5] = x[0]
    groups = duplicate_groups(x, row_hashes(x))
    assert [g.tolist() for g in groups] == [[0, 3, 5]]
    # forced hash collisions are split by content, never merged
    fake = np.zeros((6, 2), dtype=np.uint64)
    assert [g.tolist() for g in duplicate_groups(x, fake)] == [[0, 3, 5]]
    assert [g.tolist() for g in duplicate_groups(x, row_hashes(x), rows=np.array([1, 2, 3, 5]))] == [[3, 5]]


def test_tabular_nan_rows_and_contradictory_duplicates():
    rng = np.random.default_rng(0)
    x = rng.random((400, 6))
    y = rng.integers(0, 2, 400)
    x[10:40, 2] = np.nan
    x[100:130] = x[200:230]
    y[100:130] = 1 - y[200:230]
    probs = np.full((400, 2), 0.5)
    report = whylow.diagnose(test=Split(x=x, y=y, probs=probs))
    nonfinite = _findings(report, "nonfinite")[0]
    assert nonfinite.severity == "critical" and nonfinite.evidence["splits"]["test"]["count"] == 30
    assert nonfinite.evidence["splits"]["test"]["examples"] == [10, 11, 12, 13, 14]
    dup = _findings(report, "conflicting-duplicates")[0]
    assert dup.evidence["splits"]["test"]["groups"] == 30 and dup.severity == "critical"


def test_labels_that_cannot_be_used():
    rng = np.random.default_rng(1)
    x_tr, x_te = rng.random((300, 4)), rng.random((200, 4))
    y_tr = rng.integers(0, 3, 300)  # classes 0-2 only
    y_te = rng.integers(0, 4, 200)  # class 3 never seen in training
    p_te = np.full((200, 4), 0.25)
    report = whylow.diagnose(test=Split(x=x_te, y=y_te, probs=p_te), train=Split(x=x_tr, y=y_tr))
    unseen = _findings(report, "unseen-classes")[0]
    assert unseen.evidence["splits"]["test"]["classes"] == ["3"] and unseen.severity == "critical"
    report = whylow.diagnose(test=Split(x=x_te, y=np.zeros(200, dtype=int), probs=np.full((200, 2), 0.5)))
    assert _findings(report, "single-class")[0].severity == "warning"


def test_a_clean_split_has_no_quality_finding():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 3, 300)
    report = whylow.diagnose(test=Split(x=x, y=y, probs=np.full((300, 3), 1 / 3)), train=Split(x=x[::-1].copy(), y=y))
    assert not _findings(report)


def test_corrupt_files_in_an_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    split = load_split(tmp_path, "test")
    assert len(split.corrupt_files) == 1 and split.x.shape == (24, 10, 10, 3)
    report = whylow.diagnose(test=split)
    corrupt = _findings(report, "corrupt")[0]
    assert corrupt.severity == "warning"
    info = corrupt.evidence["splits"]["test"]
    assert info["count"] == 1 and info["examples"][0]["file"].endswith("broken.png")
    assert "cannot be read" in info["examples"][0]["reason"]
    assert corrupt.fix


@pytest.fixture(scope="module")
def scenario_report():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield build("data-quality", seed=0).diagnose()
    finally:
        torch.set_num_threads(threads)


def test_data_quality_scenario_is_diagnosed(scenario_report, validate_report):
    report = scenario_report
    top = report.findings[0]
    assert top.code == "data-quality" and top.severity == "critical", [(f.code, f.severity, f.title) for f in report.findings[:3]]
    kinds = {f.evidence["kind"]: f for f in _findings(report)}
    assert set(kinds) >= {"nonfinite", "constant", "conflicting-duplicates"}
    assert kinds["nonfinite"].evidence["splits"]["train"]["count"] == round(0.08 * 1078)
    blank = kinds["constant"]
    assert blank.evidence["splits"]["test"]["values"][0] == 0.0
    assert blank.verified["after"] > blank.verified["before"]
    assert blank.evidence["accuracy_on_affected_test_examples"] < 0.5
    conflict = kinds["conflicting-duplicates"].evidence["splits"]["train"]
    assert conflict["groups"] == round(0.08 * 1078)
    assert all(len(set(e["labels"])) > 1 for e in conflict["examples"])
    validate_report(report.to_dict())
