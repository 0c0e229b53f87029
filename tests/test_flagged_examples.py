"""Every flagged example of every finding: ``Report.flagged_examples()`` and ``--examples-csv``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import whylow

Image = pytest.importorskip("PIL.Image", reason="image folders need Pillow")


@pytest.fixture(scope="module")
def folder_with_blanks(tmp_path_factory):
    """A digits PNG test folder in which 30 of 300 images are blank, and the predictions of a model that fits the rest."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("blanks")
    d = load_digits()
    x = np.clip(np.round(d.images[:300] * 255 / 16), 0, 255).astype(np.uint8)
    y = d.target[:300]
    blank = np.arange(0, 300, 10)
    x[blank] = 0
    for i, (img, label) in enumerate(zip(x, y)):
        (root / "test" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "test" / str(label) / f"img{i:04d}.png")
    return root, set(int(i) for i in blank)


def test_every_blank_image_is_listed_with_its_path(folder_with_blanks, run_whylow, tmp_path):
    root, blank = folder_with_blanks
    out = tmp_path / "examples.csv"
    proc = run_whylow("diagnose", "--test", root / "test", "--examples-csv", out, "--json", tmp_path / "r.json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert rows and set(rows[0]) == set(whylow.Report.EXAMPLE_COLUMNS)
    quality = [r for r in rows if r["code"] == "data-quality"]
    assert len(quality) == len(blank)  # all of them, not the evidence's first few
    assert all(r["path"].endswith(".png") and (root / "test").as_posix() in r["path"] for r in quality)
    files = sorted(p.as_posix() for p in (root / "test").rglob("*.png"))
    assert {files.index(r["path"]) for r in quality} == {int(r["index"]) for r in quality}
    report = json.loads((tmp_path / "r.json").read_text())
    assert "all_flagged" not in json.dumps(report)  # the full list stays out of the JSON


def test_flagged_examples_lists_every_label_issue_as_a_dataframe():
    pd = pytest.importorskip("pandas", reason="flagged_examples() returns a pandas DataFrame")
    rng = np.random.default_rng(3)
    n, k = 2000, 5
    y = rng.integers(0, k, n)
    probs = np.full((n, k), 0.02)
    probs[np.arange(n), y] = 0.92  # a confident model, right on every true label
    wrong = rng.choice(n, n // 4, replace=False)
    noisy = y.copy()
    noisy[wrong] = (noisy[wrong] + rng.integers(1, k, len(wrong))) % k  # a quarter of the labels flipped
    report = whylow.diagnose(test=whylow.Split(y=noisy, probs=probs))
    noise = next(f for f in report.findings if f.code == "label-noise")
    df = report.flagged_examples()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(whylow.Report.EXAMPLE_COLUMNS)
    rows = df[df.code == "label-noise"]
    assert len(rows) == len(noise.examples) >= len(noise.evidence["splits"][0]["examples"])
    assert set(rows["index"]) <= set(wrong) and len(rows) > 0.9 * len(wrong)
    assert (rows["suggested"] != rows["given"]).all() and rows["score"].between(0, 1).all()


def test_html_thumbnails_name_their_row_and_say_how_many_are_shown():
    import re

    from sklearn.datasets import load_digits

    d = load_digits()
    n = 900
    x = (d.images[:n] * 255 / 16).astype(np.uint8)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(n, 10))
    logits[np.arange(n), d.target[:n]] += 6
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    noisy = d.target[:n].copy()
    wrong = rng.choice(n, 200, replace=False)
    noisy[wrong] = (noisy[wrong] + 1) % 10
    report = whylow.diagnose(test=whylow.Split(x=x, y=noisy, probs=probs))
    noise = next(f for f in report.findings if f.code == "label-noise")
    html = report.to_html()
    labels = re.findall(r'class="label">([^<]*)<', html)
    assert labels and all(re.fullmatch(r"test #\d+", t) for t in labels)
    assert {int(t.split("#")[1]) for t in labels} <= {e["index"] for e in noise.examples}
    assert f"{len(labels)} of {len(noise.examples)} shown" in html


def test_an_unreadable_file_is_listed_by_its_path_without_a_row(folder_with_blanks, tmp_path):
    import shutil

    root, _ = folder_with_blanks
    shutil.copytree(root / "test", tmp_path / "test")
    broken = tmp_path / "test" / "3" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    report = whylow.diagnose(test=str(tmp_path / "test"))
    rows = [r for r in report.example_rows() if r["path"] and r["path"].endswith("broken.png")]
    assert len(rows) == 1 and rows[0]["index"] is None and rows[0]["code"] == "data-quality"
    assert rows[0]["note"].startswith("unreadable")
