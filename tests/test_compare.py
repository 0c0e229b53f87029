"""`whylow.compare` and `whylow compare`: models side by side on the same data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import ks_2samp

from whylow import InvalidInputError, Split, metrics
from whylow.compare import ALPHA, compare, scenario_models


def _binary_case(n=600, seed=0):
    """Labels, a sharp (near 0/1, sometimes wrong) and a soft (near 0.5, mostly right) sigmoid output."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    right = rng.random(n) < 0.85
    towards = np.where(right, y, 1 - y)
    sharp = np.where(towards == 1, rng.uniform(0.95, 1.0, n), rng.uniform(0.0, 0.05, n))
    soft = np.where(y == 1, rng.uniform(0.55, 0.75, n), rng.uniform(0.25, 0.45, n))
    return y, sharp, soft


def _multiclass_case(n=500, k=4, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    return y, logits


# ----------------------------------------------------------------------------
# library
def test_binary_statistics_match_their_definitions():
    y, sharp, soft = _binary_case()
    c = compare(Split(y=y), {"sharp": sharp, "soft": soft})
    for name, p1 in (("sharp", sharp), ("soft", soft)):
        m = c[name]
        probs = np.column_stack([1 - p1, p1])
        assert m.sharpness == pytest.approx(np.mean(np.abs(p1 - 0.5) * 2))
        ent = -(probs * np.log(np.clip(probs, 1e-300, 1))).sum(1) / np.log(2)
        assert m.mean_entropy == pytest.approx(ent.mean())
        assert m.extreme_fraction == pytest.approx(np.mean(np.maximum(p1, 1 - p1) >= 0.99))
        assert m.positive_hist == np.histogram(p1, bins=np.linspace(0, 1, 11))[0].tolist()
        assert sum(m.confidence_hist) == len(y)
        expected = metrics.summary(y, probs)
        for key in ("accuracy", "balanced_accuracy", "log_loss", "brier", "ece", "mean_confidence"):
            assert m.metrics[key] == pytest.approx(expected[key])
        assert m.prediction_kind == "sigmoid"
    pair = c.pairs[0]
    ks = ks_2samp(np.maximum(sharp, 1 - sharp), np.maximum(soft, 1 - soft))
    assert pair.ks_statistic == pytest.approx(ks.statistic)
    assert pair.ks_pvalue == pytest.approx(ks.pvalue)
    assert pair.sharpness_diff == pytest.approx(c["sharp"].sharpness - c["soft"].sharpness)
    assert pair.closer == "sharp" and c.sharpest == "sharp"
    # the sharp model is wrong 15% of the time with near-certain probabilities: worse mean NLL (paired t-test,
    # two-sided; heavy-tailed per-row differences keep p near 0.02 on 600 rows), and less accurate
    assert pair.log_loss_diff > 0 and pair.log_loss_pvalue < 0.05
    assert pair.accuracy_diff < 0 and pair.mcnemar_pvalue < ALPHA
    text = " ".join(c.verdict())
    assert "sharp's predictions are closer to 0/1 than soft's" in text
    assert "soft is more accurate than sharp" in text


def test_multiclass_closeness_uses_top_label_confidence():
    y, logits = _multiclass_case()
    k = logits.shape[1]
    c = compare((None, y), {"t=0.5": logits / 0.5, "t=2": logits / 2.0}, class_names=list("abcd"))
    for name, t in (("t=0.5", 0.5), ("t=2", 2.0)):
        z = logits / t
        probs = np.exp(z - z.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        conf = probs.max(1)
        assert c[name].sharpness == pytest.approx(np.mean((conf - 1 / k) / (1 - 1 / k)))
        assert c[name].confidence_hist == np.histogram(conf, bins=np.linspace(0, 1, 11))[0].tolist()
        assert c[name].positive_hist is None
        assert c[name].prediction_kind == "logits"
    assert c.class_names == list("abcd")
    # temperature scaling never changes the argmax: same accuracy, McNemar cannot reject
    pair = c.pairs[0]
    assert pair.accuracy_diff == 0 and pair.mcnemar_pvalue == 1.0
    assert pair.closer == "t=0.5"
    assert c["t=0.5"].mean_entropy < c["t=2"].mean_entropy


def test_identical_predictions_are_not_distinguishable():
    y, sharp, _ = _binary_case()
    c = compare(Split(y=y), {"a": sharp, "b": sharp.copy()})
    p = c.pairs[0]
    assert p.closer is None and p.wilcoxon_pvalue == 1.0 and p.mcnemar_pvalue == 1.0 and p.ks_statistic == 0
    assert "not distinguishable" in c.verdict()[0]


def test_without_labels_only_the_confidence_is_compared():
    _, sharp, soft = _binary_case()
    c = compare(None, {"sharp": Split(probs=sharp), "soft": Split(probs=soft)})
    assert not c.has_labels
    assert c["sharp"].metrics["accuracy"] is None and c["sharp"].metrics["mean_confidence"] == pytest.approx(
        np.maximum(sharp, 1 - sharp).mean()
    )
    assert c.pairs[0].closer == "sharp" and c.pairs[0].accuracy_diff is None
    d = json.loads(c.to_json())
    assert d["has_labels"] is False and d["models"][0]["metrics"]["log_loss"] is None
    md = c.to_markdown()
    assert "| accuracy |" not in md and "| mean confidence |" in md


def test_three_models_give_every_pair_and_render():
    y, logits = _multiclass_case()
    c = compare(Split(y=y), {"a": logits, "b": logits * 0.3, "c": logits * 3})
    assert [(p.a, p.b) for p in c.pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert c.sharpest == "c"
    text = c.to_text(width=140)
    for name in ("a=a, b=b", "a=a, b=c", "a=b, b=c", "closeness to 0/1", "KS D", "McNemar p"):
        assert name in text
    md = c.to_markdown()
    assert md.count("\n| ") > 20 and "| closer to 0/1 | a | c | c |" in md
    d = c.to_dict()
    assert d["schema"] == "whylow.compare/1" and len(d["models"]) == 3 and len(d["bin_edges"]) == 11
    json.dumps(d, allow_nan=False)


def test_models_are_run_on_the_test_inputs():
    pytest.importorskip("torch")
    from whylow.scenarios.base import make_mlp, torch_probs, train_torch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    big = make_mlp(6, hidden=(128, 128), n_outputs=2, seed=0)
    small = make_mlp(6, hidden=(4,), n_outputs=2, seed=0)
    train_torch(big, x[:300], y[:300], epochs=30, lr=1e-2)
    train_torch(small, x[:300], y[:300], epochs=3, lr=1e-3)
    c = compare((x[300:], y[300:]), {"big": big, "small": small})
    assert np.allclose(c.probs["big"], torch_probs(big, x[300:]), atol=1e-6)
    assert c["big"].source.startswith("model")
    assert c.pairs[0].closer == "big"


def test_sklearn_model_and_predictions_mix():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    clf = LogisticRegression().fit(x, y)
    c = compare(Split(x=x, y=y), {"lr": clf, "given": clf.predict_proba(x)})
    assert np.allclose(c.probs["lr"], c.probs["given"])
    assert c.pairs[0].closer is None


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda y, a, b: (Split(y=y), {"only": a}), "at least two"),
        (lambda y, a, b: (Split(y=y), [a, b]), "must be a dict"),
        (lambda y, a, b: (Split(y=y), {"a": a, "b": b[:-1]}), "different numbers of samples"),
        (lambda y, a, b: (Split(y=y[:-1]), {"a": a[:-1], "b": b[:-1], "c": a}), "different numbers of samples"),
        (lambda y, a, b: (Split(y=y), {"a": a, "b": np.column_stack([b, b, b]) / 3}), "different numbers of classes"),
        (lambda y, a, b: (None, {"a": Split(y=y, probs=a), "b": Split(y=1 - y, probs=b)}), "labels in the predictions of 'b' differ"),
        (lambda y, a, b: (Split(y=y), {"a": a, "b": Split(y=y)}), "hold no probs or logits"),
        (lambda y, a, b: (Split(y=y), {"a": a, "b": lambda x: x}), "needs inputs x"),
        (lambda y, a, b: (Split(y=y * 3), {"a": a, "b": b}), "labels go up to 3"),
        (lambda y, a, b: (Split(y=y), {"a": a, "": b}), "non-empty strings"),
        (lambda y, a, b: (Split(y=y), {"a": a, "b": np.where(a > 0.5, np.nan, a)}), "NaN"),
    ],
)
def test_bad_input_is_one_sentence(make, match):
    y, a, b = _binary_case(n=100)
    test, entries = make(y, a, b)
    with pytest.raises(InvalidInputError, match=match):
        compare(test, entries)


def test_bad_options():
    y, a, b = _binary_case(n=50)
    with pytest.raises(InvalidInputError, match="n_bins"):
        compare(Split(y=y), {"a": a, "b": b}, n_bins=1)
    with pytest.raises(InvalidInputError, match="class names"):
        compare(Split(y=y), {"a": a, "b": b}, class_names=["x", "y", "z"])


# ----------------------------------------------------------------------------
# the seed's Example 2: over-parametrised vs reduced capacity
@pytest.fixture(scope="module")
def seed2():
    from whylow.scenarios import build, list_scenarios

    if "seed-2" not in {s.name for s in list_scenarios()}:
        pytest.fail("the seed-2 scenario is not registered (whylow/scenarios/seed_examples.py)")
    return build("seed-2", seed=0)


def test_seed2_overparametrised_is_closer_to_0_1(seed2):
    entries = scenario_models(seed2)
    assert len(entries) >= 2
    over = next(n for n, v in entries.items() if v is seed2.model or "over" in n.lower())
    reduced = next(n for n in entries if n != over)
    c = compare(seed2.test, entries, class_names=seed2.class_names)
    assert c[over].sharpness > c[reduced].sharpness
    assert c[over].mean_entropy < c[reduced].mean_entropy
    pair = c.pairs[0]
    assert pair.closer == over, (c[over].sharpness, c[reduced].sharpness, pair.ks_pvalue, pair.wilcoxon_pvalue)


# ----------------------------------------------------------------------------
# CLI
@pytest.fixture(scope="module")
def pred_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    y, sharp, soft = _binary_case()
    np.savez(tmp / "sharp.npz", y=y, probs=np.column_stack([1 - sharp, sharp]))
    lines = ["label,prob_0,prob_1"] + [f"{a},{1 - p:.17g},{p:.17g}" for a, p in zip(y, soft)]
    (tmp / "soft.csv").write_text("\n".join(lines) + "\n")
    np.savez(tmp / "test.npz", y=y)
    np.savez(tmp / "short.npz", y=y[:-5], probs=np.column_stack([1 - soft, soft])[:-5])
    np.savez(tmp / "other_labels.npz", y=1 - y, probs=np.column_stack([1 - soft, soft]))
    return tmp


def test_cli_compares_two_prediction_files(run_whylow, pred_files):
    out = pred_files / "cmp.json"
    md = pred_files / "cmp.md"
    p = run_whylow(
        "compare", "--test", pred_files / "test.npz", "--preds", pred_files / "sharp.npz", "--preds", pred_files / "soft.csv",
        "--json", out, "--markdown", md,
    )
    assert p.returncode == 0, p.stderr
    assert "sharp's predictions are closer to 0/1 than soft's" in p.stdout.replace("\n", " ")
    assert "Brier score" in p.stdout and "ECE" in p.stdout and "balanced accuracy" in p.stdout
    d = json.loads(out.read_text())
    assert [m["name"] for m in d["models"]] == ["sharp", "soft"]
    assert d["pairs"][0]["closer"] == "sharp"
    assert d["models"][1]["source"] == "predictions (soft.csv)"
    assert md.read_text().startswith("# Model comparison")


def test_cli_labels_from_the_prediction_files_and_names(run_whylow, pred_files):
    p = run_whylow(
        "compare", "--preds", pred_files / "sharp.npz", "--preds", pred_files / "soft.csv", "--name", "over", "--name", "reduced",
        "--json", pred_files / "named.json", "--quiet",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    d = json.loads((pred_files / "named.json").read_text())
    assert d["has_labels"] and d["pairs"][0]["closer"] == "over"


@pytest.mark.parametrize(
    "args, match",
    [
        (["--preds", "sharp.npz"], "at least two"),
        (["--preds", "sharp.npz", "--preds", "missing.csv"], "does not exist"),
        (["--preds", "sharp.npz", "--preds", "short.npz"], "different numbers of samples"),
        (["--preds", "sharp.npz", "--preds", "other_labels.npz"], "differ from"),
        (["--preds", "sharp.npz", "--preds", "soft.csv", "--name", "one"], "--name"),
        (["--model", "m.onnx", "--preds", "sharp.npz"], "--model needs --test"),
        (["--test", "test.npz", "--preds", "sharp.npz", "--preds", "test.npz"], "hold no probs or logits"),
        (["--scenario", "no-such-scenario"], "Unknown scenario"),
    ],
)
def test_cli_bad_input_exits_2_with_one_sentence(run_whylow, pred_files, args, match):
    args = [str(pred_files / a) if a.endswith((".npz", ".csv", ".onnx")) else a for a in args]
    p = run_whylow("compare", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert match in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_cli_scenario_shortcut(run_whylow, tmp_path, seed2):
    out = tmp_path / "seed2.json"
    p = run_whylow("compare", "--scenario", "seed-2", "--json", out, timeout=600)
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    sharpest = max(d["models"], key=lambda m: m["sharpness"])["name"]
    assert d["pairs"][0]["closer"] == sharpest
    assert "over" in sharpest.lower() or sharpest == d["models"][0]["name"]


def test_user_names_are_rendered_literally():
    y, sharp, soft = _binary_case(n=100)
    names = {"[/]odd|name": sharp, "[bold]x": soft}
    c = compare(Split(y=y), names, n_bins=20)
    text = c.to_text(width=160)
    assert "[/]odd|name" in text and "[bold]x" in text
    md = c.to_markdown()
    assert "[/]odd\\|name" in md and "| 0.05–0.1 |" in md


def test_worse_calibrated_is_claimed_only_when_the_paired_nll_test_supports_it():
    rng = np.random.default_rng(0)
    logits = 2.0 * rng.normal(size=(600, 4))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) < rng.random((600, 1))).sum(axis=1)  # labels drawn from the scores: calibrated by construction
    strong = compare(Split(y=y), {"calibrated": logits, "sharpened": logits * 4})
    assert any("sharpened is closer to 0/1 but worse calibrated than calibrated" in line for line in strong.verdict())
    # a slightly sharper copy on a few rows: higher ECE and NLL by chance, no significant paired difference
    rng = np.random.default_rng(3)
    rows = rng.choice(len(y), 5, replace=False)
    nudged = logits.copy()
    nudged[rows] *= 1.3
    weak = compare(Split(y=y), {"nudged": nudged, "original": logits})
    lines = " ".join(weak.verdict())
    assert "worse calibrated than" not in lines
    pair = weak.pairs[0]
    if pair.closer is not None and weak["nudged"].metrics["ece"] > weak["original"].metrics["ece"]:
        assert "no claim that it is worse calibrated" in lines
