"""End to end: a real CNN saved as TorchScript / ONNX, real .npz files, the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import whylow  # noqa: E402
from whylow.scenarios.base import digits_splits, make_cnn, train_torch  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    (xtr, ytr), (xva, yva), (xte, yte) = digits_splits(seed=0)
    model = make_cnn(1, 10, width=16, seed=0)
    history = train_torch(model, xtr, ytr, x_val=xva, y_val=yva, epochs=12, seed=0)
    np.savez(tmp / "train.npz", x=xtr, y=ytr)
    np.savez(tmp / "val.npz", x=xva, y=yva)
    np.savez(tmp / "test.npz", x=xte, y=yte)
    torch.jit.save(torch.jit.trace(model, torch.as_tensor(xte[:2])), str(tmp / "model.pt"))
    (tmp / "history.json").write_text(json.dumps(history))
    return {"dir": tmp, "model": model, "test": (xte, yte)}


def test_cli_runs_a_torchscript_model_on_npz_files(trained, run_whylow, validate_report):
    tmp = trained["dir"]
    before = {p.name: p.read_bytes() for p in tmp.iterdir()}
    p = run_whylow(
        "diagnose", "--train", tmp / "train.npz", "--val", tmp / "val.npz", "--test", tmp / "test.npz",
        "--model", tmp / "model.pt", "--history", tmp / "history.json", "--json", tmp / "r.json", "--quiet",
    )
    assert p.returncode == 0, p.stderr
    report = json.loads((tmp / "r.json").read_text())
    validate_report(report)
    assert report["inputs"]["model"] == "torchscript"
    assert report["inputs"]["splits"]["test"]["prediction_source"] == "model"
    assert report["inputs"]["splits"]["test"]["layout"] == "NCHW"
    xte, yte = trained["test"]
    with torch.no_grad():
        expected = (trained["model"](torch.as_tensor(xte)).argmax(1).numpy() == yte).mean()
    assert report["summary"]["accuracy"] == pytest.approx(expected, abs=1e-9)
    assert report["summary"]["accuracy"] > 0.85
    assert {p.name: p.read_bytes() for p in tmp.iterdir() if p.name != "r.json"} == before  # inputs untouched


def test_python_api_accepts_a_torch_dataset_and_module(trained):
    from torch.utils.data import DataLoader, TensorDataset

    xte, yte = trained["test"]
    ds = TensorDataset(torch.as_tensor(xte), torch.as_tensor(yte))
    via_dataset = whylow.diagnose(test=ds, model=trained["model"])
    via_loader = whylow.diagnose(test=DataLoader(ds, batch_size=64), model=trained["model"])
    via_arrays = whylow.diagnose(test=(xte, yte), model=trained["model"])
    accs = {r.summary["accuracy"] for r in (via_dataset, via_loader, via_arrays)}
    assert len(accs) == 1 and accs.pop() > 0.85
    assert via_arrays.inputs["model"] == "torch"


def test_given_predictions_win_over_the_model(trained):
    xte, yte = trained["test"]
    probs = np.full((len(yte), 10), 0.1)
    report = whylow.diagnose(test=whylow.Split(x=xte, y=yte, probs=probs), model=trained["model"])
    assert report.inputs["splits"]["test"]["prediction_source"] == "given"
    assert report.summary["mean_confidence"] == pytest.approx(0.1)


def test_nan_images_with_a_model_are_reported_as_data_not_fatal(trained):
    xte, yte = trained["test"]
    x = xte.copy()
    x[:5, 0, 3, 3] = np.nan
    report = whylow.diagnose(test=(x, yte), train=(x[:50], yte[:50]), model=trained["model"])
    quality = [f for f in report.findings if f.code == "data-quality"]
    assert quality and quality[0].severity in ("warning", "critical")
    assert report.summary["n_test"] == len(yte)


def test_a_model_that_returns_nan_on_clean_inputs_is_an_input_error(trained):
    xte, yte = trained["test"]

    def broken(x):
        out = np.ones((len(x), 10))
        out[2] = np.nan
        return out

    with pytest.raises(whylow.InvalidInputError, match="inputs are finite"):
        whylow.diagnose(test=(xte, yte), model=broken)
