"""The HTML report: produced for real and synthetic reports, parses, fetches nothing, escapes user strings, stays fast.

`synthetic_report` builds a `Report` carrying every artifact kind the
renderer reads (see the docstring of `whylow.report.html`); the browser test
(tests/test_html_browser.py) reuses it.
"""

from __future__ import annotations

import functools
import re
import time
from html.parser import HTMLParser

import numpy as np
import pytest

import whylow
from whylow.report import CheckStatus, Finding, Report
from whylow.report.html import render_html
from whylow.report.thumbnails import thumbnail_png

EVIL = "<script>alert(1)</script>"
SECTIONS = ("findings", "calibration", "per-class", "confusion", "priors", "properties", "history", "examples",
            "metrics", "per-class-table", "checks", "inputs")


# -- a report with every artifact kind ----------------------------------------


def synthetic_report(n_classes: int = 10, n_samples: int = 2000, seed: int = 0, evil: str = EVIL) -> Report:
    """A report as a diagnosis with every check would make it, with a hostile class name and path.

    Vectorised and free of an n_samples × n_classes matrix, so 50k × 1000 builds in a moment.
    """
    rng = np.random.default_rng(seed)
    k, n = n_classes, n_samples
    y = rng.integers(0, k, n)
    correct = rng.random(n) < 0.75
    pred = np.where(correct, y, (y + rng.integers(1, k, n)) % k)
    conf = np.where(correct, rng.beta(6, 2, n), rng.beta(3, 3, n))
    names = [f"class {c}" for c in range(k)]
    names[1] = evil
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)

    def reliability(c, ok, n_bins=15):
        edges = np.linspace(0, 1, n_bins + 1)
        idx = np.clip(np.digitize(c, edges) - 1, 0, n_bins - 1)
        count = np.bincount(idx, minlength=n_bins)
        sum_conf = np.bincount(idx, weights=c, minlength=n_bins)
        sum_ok = np.bincount(idx, weights=ok, minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"bin_edges": edges, "count": count, "mean_confidence": sum_conf / count, "accuracy": sum_ok / count}

    def conf_hist(c, ok):
        edges = np.linspace(0, 1, 21)
        return {"bin_edges": edges.tolist(), "count_correct": np.histogram(c[ok], edges)[0].tolist(),
                "count_wrong": np.histogram(c[~ok], edges)[0].tolist()}

    support = np.bincount(y, minlength=k)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    per_class = [
        {"class": names[c], "support": int(support[c]),
         "precision": float(tp[c] / predicted[c]) if predicted[c] else None,
         "recall": float(tp[c] / support[c]) if support[c] else None, "f1": 0.7, "mean_true_prob": 0.6}
        for c in range(k)
    ]
    images = rng.integers(0, 256, (6, 16, 16), dtype=np.uint8)
    train_counts = rng.integers(20, 400, k)
    artifacts = {
        "core": {
            "confusion_matrix": cm.tolist(),
            "confidence_hist:test": conf_hist(conf, correct),
            "confidence_hist:train": conf_hist(np.sqrt(conf), correct),
            "class_counts:train": train_counts.tolist(),
            "class_counts:test": support.tolist(),
            "thumbnails": {"label-noise: test": [
                {"png_base64": thumbnail_png(im, 0, 255), "label": names[i % k], "caption": f"given {evil}, likely 8"}
                for i, im in enumerate(images)
            ]},
        },
        "calibration": {
            "reliability:test": reliability(conf, correct),
            "reliability:test:scaled": reliability(conf * 0.85, correct),
            "temperature:test": 1.7,
            "reliability:val": reliability(conf, correct),
        },
        "label-shift": {"estimated_priors:test": (support / support.sum()).tolist()},
        "class-imbalance": {"recall_vs_count": {"classes": names, "counts": train_counts.tolist(),
                                                "recall": [r["recall"] for r in per_class],
                                                "recall_after_adjustment": [min(1.0, (r["recall"] or 0) + 0.05) for r in per_class]}},
        "shift": {"property:brightness": {"train": rng.normal(0.5, 0.1, n), "test": rng.normal(0.6, 0.12, n)},
                  "property:contrast": {"train": rng.gamma(2, 0.1, n).tolist(), "test": rng.gamma(2, 0.12, n).tolist()}},
        "preprocessing": {"property:max value": {"bin_edges": [0, 0.5, 1, 1.5, 2], "train": [0, 10, 80, 0], "test": [0, 0, 10, 80]},
                          "test_quantiles": {"levels": [0.01, 0.25, 0.5, 0.75, 0.99], "train": [0, 0.1, 0.3, 0.6, 1.0],
                                             "test": [0, 25, 76, 150, 255]},
                          "val_quantiles": {"levels": [0.1, 0.5, 0.9], "train": [[0.1, 0.5, 0.9]] * 3,
                                            "val": [[0.2, 0.6, 1.0], [0.1, 0.5, 0.9], [0.0, 0.4, 0.8]]}},
        "learning-rate": {"loss_curve": {"loss": [2.0, 1.2, 0.8, 0.6, float("nan")], "val_loss": None, "verdict": "diverged"}},
        "history": {"history": {"loss": [2.0, 1.2, 0.8, 0.6, float("nan")], "val_loss": [2.1, 1.4, 1.0, 0.9, 1.1],
                                "accuracy": [0.3, 0.6, 0.7, 0.8, 0.8], "val_accuracy": [0.3, 0.5, 0.6, 0.7, 0.7],
                                "lr": [0.1, 0.1, 0.01, 0.01, 0.001]}},
        "leakage": {"examples:pairs": [{"split": "test", "index": i, "caption": f"duplicate of train #{i} {evil}"}
                                       for i in range(25)]},
    }
    findings = [
        Finding("overconfidence", "critical", 0.97, f"Predictions on {evil} are overconfident: ECE 0.12",
                {"ece": 0.1234567, "bins": list(range(30)), "nested": {"a": 1, "b": [1.5, 2.5]}, "class": evil,
                 **{f"extra_{i}": i / 7 for i in range(8)}},
                f"Apply temperature scaling to {evil}.", {"metric": "log_loss", "before": 1.2, "after": 0.8}),
        Finding("label-noise", "warning", 0.8, "About 3% of test labels look wrong", {"n_flagged": 60},
                "Review the flagged labels.", {"metric": "accuracy", "before": 0.61, "after": 0.66}),
        Finding("small-sample", "info", 0.5, "The test split is small", {}, "", None),
    ]
    checks = [CheckStatus("calibration", "ran"), CheckStatus("leakage", "skipped", "needs inputs x of the train split"),
              CheckStatus("history", "failed", f"ValueError: {evil}")]
    split = {"shape": [16, 16, 1], "dtype": "float32", "layout": "NHWC", "has_labels": True, "has_predictions": True}
    inputs = {
        "splits": {"test": {**split, "n": n, "prediction_source": "given", "source": f"/data/{evil}.npz", "corrupt_files": 0},
                   "train": {**split, "n": int(train_counts.sum()), "prediction_source": "model", "source": None, "corrupt_files": 2}},
        "model": "torch", "prediction_kind": "softmax", "n_classes": k, "class_names": names, "layout": "NHWC",
        "history": ["loss", "val_loss"],
    }
    summary = {"accuracy": float(correct.mean()), "balanced_accuracy": 0.6, "log_loss": 1.1, "brier": 0.5, "ece": 0.12,
               "mean_confidence": float(conf.mean()), "n_test": n}
    return Report(inputs=inputs, summary=summary, findings=findings, checks=checks, per_class=per_class,
                  intervals={"accuracy": [0.58, 0.64], "log_loss": [1.0, 1.2]},
                  baselines={"majority_accuracy": 0.12, "majority_balanced_accuracy": 1 / k, "prior_log_loss": 2.3,
                             "prior_brier": 0.9, "chance_accuracy": 1 / k},
                  artifacts=artifacts)


# -- parsing the page ----------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_FETCH_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "formaction", "data", "poster", "background",
                "ping", "manifest", "codebase", "longdesc", "usemap"}
_FORBIDDEN_TAGS = {"script", "link", "iframe", "frame", "object", "embed", "base", "audio", "video", "form"}


class PageParser(HTMLParser):
    """Parses a page strictly enough to catch unbalanced tags, fetches, scripts, and to read the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.fetches: list[str] = []
        self.tags: dict[str, int] = {}
        self.ids: list[str] = []
        self.all_ids: set[str] = set()
        self.text: list[str] = []
        self.css: list[str] = []
        self.imgs: list[dict] = []

    def _attrs(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        if "id" in a:
            if a["id"] in self.all_ids:
                self.errors.append(f"duplicate id {a['id']!r}")
            self.all_ids.add(a["id"])
            if tag == "section":
                self.ids.append(a["id"])
        for name, value in attrs:
            if name.lower() in _FETCH_ATTRS and value and not value.startswith(("#", "data:")):
                self.fetches.append(f"<{tag} {name}={value!r}>")
            if name.lower().startswith("on"):
                self.errors.append(f"event handler attribute {name} on <{tag}>")
            if name.lower() == "style" and value:
                self.css.append(value)
        if tag == "img":
            self.imgs.append(a)
        if tag in _FORBIDDEN_TAGS:
            self.errors.append(f"forbidden tag <{tag}>")

    def handle_starttag(self, tag, attrs):
        self._attrs(tag, attrs)
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._attrs(tag, attrs)

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style":
            self.css.append(data)
        else:
            self.text.append(data)

    def close(self):
        super().close()
        if self.stack:
            self.errors.append(f"unclosed tags {self.stack}")
        for css in self.css:
            for url in re.findall(r"url\(\s*['\"]?([^)'\"]*)", css):
                if not url.startswith(("#", "data:")):
                    self.fetches.append(f"css url({url})")
            if "@import" in css:
                self.fetches.append("css @import")


def parse_page(page: str) -> PageParser:
    """Parse ``page``; fail the test on structural errors, fetches or scripts."""
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert not parser.fetches, parser.fetches[:5]
    assert "<script" not in page.lower(), "a <script> tag (or an unescaped one) is in the page"
    return parser


def visible_text(parser: PageParser) -> str:
    return " ".join(" ".join(parser.text).split())


# -- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    report = synthetic_report()
    return report, render_html(report)


@functools.cache
def healthy_report() -> Report:
    """The full diagnosis of the healthy scenario, built once per test session (the browser test reuses it)."""
    from whylow import scenarios

    return scenarios.build("none").diagnose()


@pytest.fixture(scope="module")
def healthy():
    report = healthy_report()
    return report, render_html(report)


# -- tests --------------------------------------------------------------------


def test_every_section_renders_from_its_artifacts(synthetic):
    report, page = synthetic
    assert page.startswith("<!DOCTYPE html>")
    parsed = parse_page(page)
    assert parsed.ids == [s for s in SECTIONS], parsed.ids  # every plot section, in reading order, and no notes
    # reliability test + val, confidence histograms, per-class bars, recall vs count, confusion, priors,
    # properties, learning curves
    assert parsed.tags.get("svg", 0) >= 11
    thumbs = [i for i in parsed.imgs if i["src"].startswith("data:image/png;base64,")]
    assert len(thumbs) == 6 and all(i.get("width") == "96" for i in thumbs)
    text = visible_text(parsed)
    assert report.verdict in text
    assert "temperature-scaled, T=1.7 (ECE" in page  # the legend names the fitted temperature
    assert "1.2 → 0.8" in text and "-33%" in text  # verified log-loss, relative change
    assert "61.0% → 66.0%" in text and "+5.0 points" in text  # verified accuracy, in points
    assert "58.0% – 64.0%" in text  # the accuracy CI
    assert "needs inputs x of the train split" in text  # why a check was skipped
    assert "duplicate of train #3" in text  # flagged examples without thumbnails are listed
    assert "non-finite from epoch 5" in page  # the NaN loss is marked on the learning curve
    assert "input values: train vs test" in page and "train R" in page  # quantiles, per channel when given so


def test_findings_come_first_in_rank_order(synthetic):
    report, page = synthetic
    positions = [page.index(f"<span class=\"code\">{f.code}</span>") for f in report.findings]
    assert positions == sorted(positions)
    assert page.index('id="findings"') < page.index('id="calibration"') < page.index('id="metrics"')


def test_user_strings_are_escaped(synthetic):
    report, page = synthetic
    parsed = parse_page(page)
    text = visible_text(parsed)
    # shown as text in the finding, the fix, the evidence, tables, check reasons, paths and captions
    assert text.count(EVIL) >= 8, text.count(EVIL)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert parsed.tags.get("script", 0) == 0


def test_matplotlib_labels_take_user_strings_literally():
    """A class name with mathtext or markup is drawn as plain text and escaped inside the SVG."""
    report = synthetic_report(evil="$x^{2}$ & <b>bold</b>")
    page = render_html(report)
    parse_page(page)
    assert 'id="notes"' not in page  # no plot failed on the mathtext-like name
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "$x^{2}$ &amp; &lt;b&gt;" in page  # the SVG tick label: '$' kept literally, markup escaped


def test_healthy_scenario_report(healthy):
    report, page = healthy
    parsed = parse_page(page)
    text = visible_text(parsed)
    assert report.verdict in text
    for section in ("calibration", "per-class", "confusion", "metrics", "per-class-table", "checks", "inputs"):
        assert section in parsed.ids, section
    for check in report.checks:
        assert check.name in text
    assert 'id="notes"' not in page, re.findall(r'<ul class="notes">(.*?)</ul>', page, re.S)
    assert len(page.encode()) < 2_000_000


def test_a_scenario_with_a_fault_renders():
    from whylow import scenarios

    if "imbalance" not in [s.name for s in scenarios.list_scenarios()]:
        pytest.skip("the imbalance scenario is not registered")
    report = scenarios.build("imbalance").diagnose()
    page = report.to_html()
    parsed = parse_page(page)
    assert report.findings and f'<span class="code">{report.findings[0].code}</span>' in page
    assert "per-class" in parsed.ids


def test_broken_artifacts_skip_their_plot_with_a_note():
    report = synthetic_report()
    report.artifacts["calibration"]["reliability:test"] = {"bin_edges": [0, 1], "count": [1, 2, 3]}
    report.artifacts["core"]["confidence_hist:train"] = {"bin_edges": "nope"}
    report.artifacts["core"]["confusion_matrix"] = [[1, 2], [3]]
    report.artifacts["core"]["thumbnails"]["label-noise: test"][0]["png_base64"] = '" onerror="alert(1)'
    report.artifacts["core"]["thumbnails"]["label-noise: test"][1]["png_base64"] = "aGVsbG8="  # base64, not a PNG
    report.artifacts["core"]["thumbnails_error"] = "OSError: disk on fire"
    report.artifacts["shift"]["property:brightness"] = {"train": ["a", "b"]}
    report.artifacts["history"] = {"history": {"loss": [1, "x"]}}
    report.artifacts["label-shift"] = "not a dict"
    report.artifacts[None] = {"property:": 3}
    page = render_html(report)
    parsed = parse_page(page)
    notes = re.search(r'<ul class="notes">(.*?)</ul>', page, re.S).group(1)
    for what in ("reliability diagram (test)", "confidence histogram", "confusion matrix", "thumbnail",
                 "disk on fire", "input properties", "learning curves"):
        assert what in notes, what
    # what was not broken still renders
    assert {"per-class", "priors", "calibration", "examples"} <= set(parsed.ids)
    assert "onerror" not in page
    assert len([i for i in parsed.imgs if i["src"].startswith("data:image/png")]) == 4


def test_a_bare_report_renders():
    report = Report(inputs={}, summary={"accuracy": None, "n_test": 5})
    page = render_html(report)
    parsed = parse_page(page)
    assert parsed.ids == ["findings", "metrics", "checks", "inputs"]
    assert "No finding" in visible_text(parsed)


def test_rendering_is_deterministic(synthetic):
    report, page = synthetic
    assert render_html(report) == page


def test_save_html_and_jupyter(tmp_path):
    y = np.arange(300) % 3
    probs = np.full((300, 3), 0.1)
    probs[np.arange(300), y] = 0.8
    report = whylow.diagnose(test=whylow.Split(y=y, probs=probs), class_names=["a", EVIL, "c"])
    path = report.save_html(tmp_path / "r.html")
    page = path.read_text(encoding="utf-8")
    assert page == report._repr_html_()
    parse_page(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_cli_writes_the_html_report(run_whylow, tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    logits = rng.normal(size=(400, 3)) + 2.0 * np.eye(3)[y]
    np.savez(tmp_path / "test.npz", y=y, logits=logits)
    (tmp_path / "names.txt").write_text(f"cat\n{EVIL}\ndog\n", encoding="utf-8")
    out = tmp_path / "report.html"
    p = run_whylow("diagnose", "--test", tmp_path / "test.npz", "--class-names", tmp_path / "names.txt",
                   "--html", out, "--quiet")
    assert p.returncode in (0, 1), p.stderr
    page = out.read_text(encoding="utf-8")
    parsed = parse_page(page)
    assert EVIL in visible_text(parsed)
    assert "confusion" in parsed.ids


def test_top_confusions_and_shifted_classes():
    from whylow.report.html import _shifted_classes
    from whylow.report.plots import top_confusions

    cm = np.array([[50, 7, 0], [1, 40, 9], [3, 0, 30]])
    top = top_confusions(cm, ["a", "b", "c"], n=3)
    assert [(r["true"], r["predicted"], r["count"]) for r in top] == [("b", "c", 9), ("a", "b", 7), ("c", "a", 3)]
    assert top[0]["share"] == pytest.approx(9 / 50)
    assert top_confusions(np.eye(3) * 5, ["a", "b", "c"]) == []
    table = _shifted_classes({"train": [100, 100, 100], "test": [100, 100, 400]}, ["a", "b", "c"])
    assert table["rows"][0][0] == "c" and table["rows"][0][3] == "2.00×"
    assert _shifted_classes({"train": [10, 10], "test": [10, 10]}, ["a", "b"]) is None


def test_large_report_is_fast_and_small(capsys):
    report = synthetic_report(n_classes=1000, n_samples=50_000)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    page = render_html(report)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    size = len(page.encode("utf-8"))
    with capsys.disabled():
        print(f"\nHTML report, 1000 classes x 50k samples: {wall:.2f} s wall, {cpu:.2f} s CPU, {size / 1e6:.2f} MB")
    parsed = parse_page(page)
    assert size < 5_000_000
    assert cpu < 15.0, cpu  # a few seconds on one core; the bound leaves room for a loaded CI machine
    assert {"confusion", "per-class", "priors"} <= set(parsed.ids)
    assert "With 1000 classes a heatmap is unreadable" in page  # the top-confusions table instead
    assert page.count("<tr>") > 1000  # the full per-class table is there


def test_flagged_examples_are_shown_as_thumbnails():
    """Leaked duplicates (and label errors) appear as inline PNG thumbnails with their captions."""
    from whylow.scenarios import build

    report = build("leakage").diagnose()
    thumbs = report.artifacts["core"]["thumbnails"]
    assert "train-test-leakage: duplicated in training" in thumbs
    page = report.to_html()
    assert page.count("data:image/png;base64,") >= len(thumbs["train-test-leakage: duplicated in training"])
    assert "copy of train #" in page
