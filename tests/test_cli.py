"""The real `whylow` executable on real files: exit codes and one-sentence errors (design.md §5)."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _case(rng, n=300, k=4):
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.5 * np.eye(k)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    x = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    return x, y, logits, probs


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x, y, logits, probs = _case(rng)
    out = {"dir": tmp}
    np.savez(tmp / "test.npz", x=x, y=y, probs=probs)
    out["good"] = tmp / "test.npz"
    np.savez(tmp / "logits.npz", y=y, logits=logits)
    out["logits"] = tmp / "logits.npz"
    bad = {
        "mismatched": dict(x=x, y=y[:-1], probs=probs),
        "nan_probs": dict(y=y, probs=np.where(np.arange(probs.size).reshape(probs.shape) == 5, np.nan, probs)),
        "labels_out_of_range": dict(y=np.where(np.arange(len(y)) == 3, 9, y), probs=probs),
        "labels_float": dict(y=y + 0.5, probs=probs),
        "logits_as_probs": dict(y=y, probs=logits),
        "empty": dict(y=y[:0], probs=probs[:0]),
        "unexpected_key": dict(y=y, probs=probs, weights=np.ones(len(y))),
        "both_kinds": dict(y=y, probs=probs, logits=logits),
        "bad_x_shape": dict(x=np.zeros((len(y), 2, 2, 2, 2)), y=y, probs=probs),
    }
    for name, arrays in bad.items():
        np.savez(tmp / f"{name}.npz", **arrays)
        out[name] = tmp / f"{name}.npz"
    (tmp / "names.txt").write_text("a\nb\nc\n")
    out["names3"] = tmp / "names.txt"
    (tmp / "table.csv").write_text("label,prob_0,prob_1\n0,0.9,0.1\n1,0.3\n")
    out["ragged_csv"] = tmp / "table.csv"
    (tmp / "nopred.csv").write_text("label,score\n0,0.9\n")
    out["no_pred_columns"] = tmp / "nopred.csv"
    (tmp / "data.txt").write_text("x")
    out["unknown_type"] = tmp / "data.txt"
    (tmp / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    out["corrupt_npz"] = tmp / "corrupt.npz"
    return out


def test_version(run_whylow):
    p = run_whylow("--version")
    assert p.returncode == 0 and p.stdout.strip().startswith("whylow 0.")


def test_diagnose_valid_input_writes_valid_reports(files, run_whylow, validate_report):
    tmp = files["dir"]
    p = run_whylow("diagnose", "--test", files["good"], "--json", tmp / "r.json", "--markdown", tmp / "r.md")
    assert p.returncode == 0, p.stderr
    assert "Findings" in p.stdout or "No findings" in p.stdout
    report = json.loads((tmp / "r.json").read_text())
    validate_report(report)
    assert report["summary"]["n_test"] == 300 and report["inputs"]["prediction_kind"] == "softmax"
    assert report["inputs"]["splits"]["test"]["layout"] == "NHWC"
    assert (tmp / "r.md").read_text().startswith("# whylow report")
    assert not list(tmp.glob(".r.json.*"))  # no temp files left behind by the atomic write


def test_logits_are_detected_and_stated(files, run_whylow):
    out = files["dir"] / "l.json"
    p = run_whylow("diagnose", "--test", files["logits"], "--json", out, "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert json.loads(out.read_text())["inputs"]["prediction_kind"] == "logits"


@pytest.mark.parametrize(
    "case, words",
    [
        ("mismatched", "different numbers of samples"),
        ("nan_probs", "NaN"),
        ("labels_out_of_range", "out of range"),
        ("labels_float", "integer class ids"),
        ("logits_as_probs", "logits"),
        ("empty", "empty"),
        ("unexpected_key", "unexpected keys"),
        ("both_kinds", "both 'probs' and 'logits'"),
        ("bad_x_shape", "axes"),
        ("ragged_csv", "fields on data row"),
        ("no_pred_columns", "no prediction columns"),
        ("unknown_type", "unknown file type"),
        ("corrupt_npz", "not a readable .npz"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(files, run_whylow, case, words):
    p = run_whylow("diagnose", "--test", files[case])
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "Traceback" not in p.stdout + p.stderr
    assert len(err.splitlines()) == 1 and err.startswith("whylow: error:")
    assert words in err


def test_missing_file_and_class_name_mismatch(files, run_whylow):
    p = run_whylow("diagnose", "--test", files["dir"] / "missing.npz")
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = run_whylow("diagnose", "--test", files["good"], "--class-names", files["names3"])
    assert p.returncode == 2 and "4 columns but 3 class names" in p.stderr


def test_usage_errors_exit_2(files, run_whylow):
    assert run_whylow("diagnose").returncode == 2
    assert run_whylow("diagnose", "--test", files["good"], "--fail-on", "sometimes").returncode == 2


def test_fail_on(tmp_path, run_whylow):
    rng = np.random.default_rng(5)
    n, k = 2000, 3
    y = rng.integers(0, k, n)
    probs = np.full((n, k), 1 / k)  # a model that learned nothing: no-signal and friends
    probs = 0.98 * probs + 0.02 * rng.dirichlet(np.ones(k), n)
    np.savez(tmp_path / "t.npz", y=y, probs=probs)
    clean = run_whylow("diagnose", "--test", tmp_path / "t.npz", "--json", tmp_path / "r.json", "--quiet")
    assert clean.returncode == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["findings"][0]["code"] == "no-signal" and report["findings"][0]["severity"] == "critical"
    assert run_whylow("diagnose", "--test", tmp_path / "t.npz", "--fail-on", "warning", "--quiet").returncode == 1
    assert run_whylow("diagnose", "--test", tmp_path / "t.npz", "--fail-on", "critical", "--quiet").returncode == 1
    healthy = tmp_path / "healthy.npz"
    conf = rng.uniform(0.6, 1.0, n)
    right = rng.uniform(size=n) < conf
    pred = np.where(right, y, (y + rng.integers(1, k, n)) % k)
    p = np.repeat(((1 - conf) / (k - 1))[:, None], k, axis=1)
    p[np.arange(n), pred] = conf
    np.savez(healthy, y=y, probs=p)
    assert run_whylow("diagnose", "--test", healthy, "--fail-on", "warning", "--quiet").returncode == 0
