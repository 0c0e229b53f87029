"""Findings, ranking, the check registry and the renderers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import whylow
from whylow import Finding, Split
from whylow.checks import _REGISTRY, Check, register, registered_checks
from whylow.report import CODES, rank_findings


@pytest.fixture
def extra_checks():
    """Register test-only checks and remove them afterwards."""
    added = []

    def add(cls):
        register(cls)
        added.append(cls.name)
        return cls

    yield add
    for name in added:
        _REGISTRY.pop(name, None)


def _healthy_split(n=400, k=3, seed=0):
    """A calibrated model: the top class has probability c and is right with probability c."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    conf = rng.uniform(0.6, 1.0, n)
    right = rng.uniform(size=n) < conf
    pred = np.where(right, y, (y + rng.integers(1, k, n)) % k)
    p = np.repeat(((1 - conf) / (k - 1))[:, None], k, axis=1)
    p[np.arange(n), pred] = conf
    return Split(y=y, probs=p)


def test_a_failing_check_is_recorded_and_the_report_still_renders(extra_checks, validate_report):
    @extra_checks
    class Boom(Check):
        name = "test-boom"
        codes = ("data-quality",)
        requires = ("test.y",)

        def run(self, ctx):
            raise RuntimeError("kaboom")

    @extra_checks
    class Planted(Check):
        name = "test-planted"
        codes = ("label-noise",)
        requires = ("test.y",)

        def run(self, ctx):
            return [Finding("label-noise", "warning", 0.8, "Planted finding", {"n": 3}, "relabel")]

    @extra_checks
    class NeedsModel(Check):
        name = "test-needs-model"
        codes = ("overfitting",)
        requires = ("model", "train.probs|val.probs")

        def run(self, ctx):  # pragma: no cover - must be skipped
            raise AssertionError("should have been skipped")

    report = whylow.diagnose(test=_healthy_split())
    status = {c.name: c for c in report.checks}
    assert status["test-boom"].status == "failed" and "kaboom" in status["test-boom"].reason
    assert status["test-planted"].status == "ran"
    assert status["test-needs-model"].status == "skipped"
    assert "--model" in status["test-needs-model"].reason and "--train" in status["test-needs-model"].reason
    assert [f.code for f in report.findings if f.check == "test-planted"] == ["label-noise"]
    validate_report(json.loads(report.to_json()))
    text = report.to_text(width=120)
    assert "Planted finding" in text and "test-boom" in text and "kaboom" in text
    md = report.to_markdown()
    assert "| test-boom | failed |" in md
    others = [f for f in report.findings if f.check != "test-planted"]
    assert not [f for f in others if f.severity != "info"], [(f.code, f.title) for f in others]
    assert report.fails("warning") and not report.fails("critical")


def test_ranking_puts_causes_before_symptoms():
    f = lambda code, sev="warning", conf=0.9, verified=None: Finding(code, sev, conf, code, {}, "", verified)  # noqa: E731
    ranked = rank_findings(
        [
            f("overconfidence", conf=0.99),
            f("no-signal", conf=0.7),
            f("small-sample", sev="info"),
            f("overfitting"),
            f("covariate-shift", verified={"metric": "accuracy", "before": 0.5, "after": 0.8}),
            f("label-noise", verified={"metric": "accuracy", "before": 0.1, "after": 0.2}),
        ]
    )
    # no-signal makes the fit and score symptoms moot: they hang on it, in causal order, before the unrelated shift
    assert [x.code for x in ranked] == [
        "no-signal", "label-noise", "overfitting", "overconfidence", "covariate-shift", "small-sample"
    ]
    assert [c["code"] for c in ranked[0].consequences] == ["label-noise", "overfitting", "overconfidence"]
    assert all(x.explained_by == "no-signal" for x in ranked[1:4])


def test_finding_validation():
    with pytest.raises(ValueError):
        Finding("not-a-code", "warning", 0.5, "t")
    with pytest.raises(ValueError):
        Finding("label-noise", "severe", 0.5, "t")
    with pytest.raises(ValueError):
        Finding("label-noise", "info", 0.5, "t", verified={"metric": "accuracy"})
    assert Finding("label-noise", "info", 3.0, "t").confidence == 1.0


def test_every_check_emits_only_contract_codes():
    for cls in registered_checks():
        assert cls.name
        assert set(cls.codes) <= set(CODES), cls


def test_report_json_is_strict_and_matches_schema(validate_report):
    report = whylow.diagnose(test=_healthy_split())
    data = json.loads(report.to_json())
    validate_report(data)
    assert data["schema"] == "whylow.report/1" and data["whylow_version"] == whylow.__version__
    assert len(data["per_class"]) == 3 and {"class", "support", "recall", "mean_true_prob"} <= set(data["per_class"][0])
    assert str(report).startswith("╭")
    core = report.artifacts["core"]
    assert np.array(core["confusion_matrix"]).sum() == 400 and len(core["class_counts:test"]) == 3


def test_public_api_is_explicit():
    assert whylow.__all__ == sorted(whylow.__all__)
    for name in whylow.__all__:
        assert hasattr(whylow, name)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    from whylow.report import write_atomic

    target = tmp_path / "out" / "r.json"
    write_atomic(target, "{}")
    assert target.read_text() == "{}" and [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_the_packaged_schema_is_the_contracts_copy():
    from conftest import CONTRACT_SCHEMA_PATH

    from whylow.report import report_schema

    if not CONTRACT_SCHEMA_PATH.exists():
        pytest.skip(f"the design contract's schema {CONTRACT_SCHEMA_PATH} is not in this checkout (it lives in ../shared)")
    assert report_schema() == json.loads(CONTRACT_SCHEMA_PATH.read_text())


def _report_with_findings():
    from whylow.report import Report
    from whylow.report.finding import make_explains

    long_fix = ("Divide test inputs by 255 as the train inputs were. Then re-run the evaluation; "
                "if the model normalises inside, remove the extra step from the serving code.")
    cause = Finding("preprocessing-mismatch", "critical", 0.97, "Test inputs are raw 0-255 values but train inputs were divided by 255",
                    {"accuracy_before": 0.686666, "p_value": 1.234e-9, "detail": {"nested": 1}}, long_fix,
                    {"metric": "accuracy", "before": 0.6867, "after": 0.8767},
                    explains=make_explains("accuracy", 0.19, 0.22, "validation"))
    symptom = Finding("overconfidence", "warning", 0.8, "Overconfident on the test split", {}, "Divide the logits by T=2.1.",
                      {"metric": "log_loss", "before": 0.112, "after": 0.0961})
    return Report(inputs={"splits": {"test": {"n": 300}}, "n_classes": 10}, summary={"n_test": 300, "accuracy": 0.686667},
                  findings=rank_findings([symptom, cause]))


def test_the_terminal_report_fits_80_columns_one_block_per_finding():
    text = _report_with_findings().to_text(width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("│ 1. CRITICAL  preprocessing-mismatch") for line in lines), text
    assert "verified: accuracy 68.7% → 87.7% (+19.0 points)" in text
    assert "verified: log_loss 0.112 → 0.0961 (−14%)" in text
    assert "fix: Divide test inputs by 255 as the train inputs were." in text
    assert "remove the extra step" not in text  # the full fix is for --verbose
    assert "accuracy before" not in text


def test_verbose_adds_the_full_fix_and_the_evidence_numbers():
    text = _report_with_findings().to_text(width=80, verbose=True)
    flat = " ".join(line.strip("│ ") for line in text.splitlines())
    assert "remove the extra step from the serving code." in flat
    assert "accuracy before: 0.687" in flat and "p value: 1.23e-09" in flat
    assert "nested" not in flat


def test_cli_verbose_prints_the_evidence(run_whylow, tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    probs = np.full((400, 3), 0.02)
    probs[np.arange(400), (y + (rng.random(400) < 0.4)) % 3] = 0.96  # 40% confidently wrong
    np.savez(tmp_path / "test.npz", y=y, probs=probs)
    short = run_whylow("diagnose", "--test", tmp_path / "test.npz")
    verbose = run_whylow("diagnose", "--test", tmp_path / "test.npz", "--verbose")
    assert short.returncode == verbose.returncode == 0
    assert "--verbose" in short.stdout
    assert len(verbose.stdout) > len(short.stdout) and ": " in verbose.stdout
