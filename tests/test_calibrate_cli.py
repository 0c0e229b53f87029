"""``whylow calibrate`` on real files, through the installed executable."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from whylow import metrics
from whylow.fixes.temperature import TemperatureScaler, VectorScaler, load_calibrator


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _split(seed, n, k=4, factor=3.0):
    """Labels drawn from softmax(z); the model reports logits factor * z (overconfident for factor > 1)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 1.5
    y = (rng.random(n)[:, None] > np.cumsum(_softmax(z), axis=1)).sum(axis=1)
    return y, factor * z


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calibrate")
    yv, zv = _split(0, 1200)
    yt, zt = _split(1, 1000)
    paths = {"dir": tmp}
    np.savez(tmp / "val.npz", y=yv, probs=_softmax(zv))
    np.savez(tmp / "test.npz", y=yt, probs=_softmax(zt))
    np.savez(tmp / "val_logits.npz", y=yv, logits=zv)
    np.savez(tmp / "test_logits.npz", y=yt, logits=zt)
    np.savez(tmp / "no_labels.npz", probs=_softmax(zv))
    np.savez(tmp / "no_preds.npz", y=yv)
    np.savez(tmp / "three_classes.npz", y=yt % 3, probs=_softmax(zt[:, :3]))
    bad = _softmax(zv)
    bad[5, 1] = np.nan
    np.savez(tmp / "nan.npz", y=yv, probs=bad)
    (tmp / "table.csv").write_text("label,prob_0,prob_1\n" + "".join(f"{i % 2},{0.9 if i % 2 == 0 else 0.2},{0.1 if i % 2 == 0 else 0.8}\n" for i in range(40)))
    for name in ("val", "test", "val_logits", "test_logits", "no_labels", "no_preds", "three_classes", "nan"):
        paths[name] = tmp / f"{name}.npz"
    paths["csv"] = tmp / "table.csv"
    paths["truth"] = (yt, zt)
    return paths


def _table(stdout: str) -> dict[str, list[float]]:
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"\s+(before|after)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            rows[m.group(1)] = [float(v) for v in m.groups()[1:]]
    return rows


def test_calibrate_with_test_split(run_whylow, files):
    out = files["dir"] / "cal.json"
    p = run_whylow("calibrate", "--val", files["val"], "--test", files["test"], "--out", out)
    assert p.returncode == 0, p.stderr
    assert "temperature T = " in p.stdout and "measured on test" in p.stdout
    t = float(re.search(r"T = ([\d.]+)", p.stdout).group(1))
    assert t == pytest.approx(3.0, rel=0.15)
    table = _table(p.stdout)
    assert table["after"][0] < 0.8 * table["before"][0]  # log-loss
    assert table["after"][1] < table["before"][1]  # ECE
    assert table["after"][2] == table["before"][2]  # accuracy unchanged
    saved = json.loads(out.read_text())
    assert saved["method"] == "temperature" and saved["format"] == "whylow.calibrator/1"
    # the saved calibrator, loaded back, reproduces the printed gain on the test file
    cal = load_calibrator(out)
    assert isinstance(cal, TemperatureScaler)
    yt, zt = files["truth"]
    after = metrics.log_loss(yt, cal.transform(logits=zt))
    assert after == pytest.approx(table["after"][0], abs=1e-4)


def test_calibrate_cross_fits_without_test(run_whylow, files):
    out = files["dir"] / "cal_cv.json"
    p = run_whylow("calibrate", "--val", files["val"], "--out", out)
    assert p.returncode == 0, p.stderr
    assert "cross-fitted" in p.stdout
    table = _table(p.stdout)
    assert table["after"][0] < table["before"][0]
    assert load_calibrator(out).temperature_ > 2


def test_calibrate_vector_on_logits(run_whylow, files):
    out = files["dir"] / "vec.json"
    p = run_whylow("calibrate", "--val", files["val_logits"], "--test", files["test_logits"], "--out", out, "--method", "vector")
    assert p.returncode == 0, p.stderr
    assert "vector scaling" in p.stdout
    cal = load_calibrator(out)
    assert isinstance(cal, VectorScaler) and cal.input_ == "logits" and cal.scale_.shape == (4,)
    table = _table(p.stdout)
    assert table["after"][0] < 0.8 * table["before"][0]


def test_calibrate_quiet_and_csv(run_whylow, files):
    out = files["dir"] / "csv.json"
    p = run_whylow("calibrate", "--val", files["csv"], "--out", out, "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and out.exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--val", "missing.npz"], "does not exist"),
        (["--val", "{no_labels}"], "no labels"),
        (["--val", "{no_preds}"], "predictions"),
        (["--val", "{nan}"], "NaN"),
        (["--val", "{val}", "--test", "{three_classes}"], "classes"),
        (["--val", "{val_logits}", "--test", "{test}", "--method", "vector"], "logits"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(run_whylow, files, args, needle):
    out = files["dir"] / "never.json"
    args = [a.format(**{k: v for k, v in files.items() if k not in ("dir", "truth")}) for a in args]
    p = run_whylow("calibrate", *args, "--out", out, cwd=files["dir"])
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert err.startswith("whylow: error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert needle in err
    assert not out.exists()


def test_out_must_not_overwrite_an_input(run_whylow, files):
    before = files["val"].read_bytes()
    p = run_whylow("calibrate", "--val", files["val"], "--out", files["val"])
    assert p.returncode == 2 and "overwritten" in p.stderr
    assert files["val"].read_bytes() == before


def test_calibrate_and_diagnose_report_the_same_ece(files):
    """One ECE definition: `calibrate`'s "before" is `diagnose`'s test-split ECE for the same predictions."""
    import whylow
    from whylow.cli.calibrate import fit_and_measure

    _, measured = fit_and_measure(files["val"], files["test"])
    report = whylow.diagnose(test=files["test"])
    assert measured["ece_before"] == pytest.approx(report.summary["ece"], rel=1e-9)
