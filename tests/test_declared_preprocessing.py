"""Declared preprocessing of file inputs: ``--scale``, ``--mean`` / ``--std``, ``--layout``, ``--color``, ``transform=``."""

from __future__ import annotations

import json

import numpy as np
import pytest

import whylow
from whylow.errors import InvalidInputError
from whylow.inputs.preprocess import apply_preprocessing, parse_split_values, preprocessing_by_split

torch = pytest.importorskip("torch", reason="the model-backed folder tests need torch (dev extra)")
Image = pytest.importorskip("PIL.Image", reason="image folders need Pillow")


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.round(d.images * 255 / 16), 0, 255).astype(np.uint8)
    return x, d.target


def _write_folder(root, x, y, ext):
    for i, (img, label) in enumerate(zip(x, y)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / str(label) / f"img{i:04d}.{ext}")


def _train_scripted(x01: np.ndarray, y: np.ndarray, path):
    """A small CNN trained on [0, 1] inputs in the given 4-D layout (N×1×H×W or N×H×W×3), saved as TorchScript."""
    torch.manual_seed(0)
    channels_last = x01.shape[-1] == 3
    c = 3 if channels_last else 1

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(c, 8, 3, padding=1)
            self.head = torch.nn.Linear(8 * 64, 10)

        def forward(self, x):
            if x.shape[-1] == 3:
                x = x.permute(0, 3, 1, 2)
            return self.head(torch.relu(self.conv(x)).flatten(1))

    net = Net()
    xt, yt = torch.tensor(x01), torch.tensor(y)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    torch.jit.script(net).save(str(path))


@pytest.fixture(scope="module")
def grey_case(tmp_path_factory):
    """A grey PNG test folder (0-255) next to N×1×H×W float [0, 1] .npz splits and a model trained on them."""
    root = tmp_path_factory.mktemp("grey")
    x, y = _digits()
    _write_folder(root / "test", x[:300], y[:300], "png")
    np.savez(root / "train.npz", x=x[300:1000, None].astype(np.float32) / 255, y=y[300:1000])
    np.savez(root / "val.npz", x=x[1000:1300, None].astype(np.float32) / 255, y=y[1000:1300])
    _train_scripted(x[300:1000, None].astype(np.float32) / 255, y[300:1000], root / "model.pt")
    return root


@pytest.fixture(scope="module")
def rgb_case(tmp_path_factory):
    """An RGB JPEG test folder (0-255) next to N×H×W×3 float [0, 1] .npz splits and a model trained on them."""
    root = tmp_path_factory.mktemp("rgb")
    x, y = _digits()
    tint = np.array([1.0, 0.8, 0.6])
    rgb = np.clip(x[..., None] * tint, 0, 255).astype(np.uint8)
    _write_folder(root / "test", rgb[:300], y[:300], "jpg")
    np.savez(root / "train.npz", x=rgb[300:1000].astype(np.float32) / 255, y=y[300:1000])
    np.savez(root / "val.npz", x=rgb[1000:1300].astype(np.float32) / 255, y=y[1000:1300])
    _train_scripted(rgb[300:1000].astype(np.float32) / 255, y[300:1000], root / "model.pt")
    return root


def _diagnose(run_whylow, root, *extra):
    out = root / f"report-{abs(hash(extra))}.json"
    proc = run_whylow("diagnose", "--test", root / "test", "--train", root / "train.npz", "--val", root / "val.npz",
                      "--model", root / "model.pt", "--json", out, "--quiet", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", ["grey_case", "rgb_case"])
def test_a_png_or_jpeg_folder_with_its_scale_declared_is_diagnosed_next_to_npz_splits(request, run_whylow, validate_report, case):
    root = request.getfixturevalue(case)
    report = _diagnose(run_whylow, root, "--scale", "test=1/255")
    validate_report(report)
    test = report["inputs"]["splits"]["test"]
    assert test["preprocessing"] == ["multiplied by 1/255"]
    assert report["inputs"]["splits"]["train"]["preprocessing"] == []
    assert "preprocessing-mismatch" not in [f["code"] for f in report["findings"]]
    assert report["summary"]["accuracy"] > 0.8


@pytest.mark.parametrize("case", ["grey_case", "rgb_case"])
def test_without_the_declaration_the_raw_folder_is_a_verified_preprocessing_mismatch(request, run_whylow, case):
    root = request.getfixturevalue(case)
    report = _diagnose(run_whylow, root)
    top = report["findings"][0]
    assert top["code"] == "preprocessing-mismatch"
    assert top["severity"] in ("warning", "critical")
    assert top["verified"]["after"] > top["verified"]["before"]


def test_a_grey_folder_is_converted_to_rgb_for_an_rgb_model(rgb_case, tmp_path, run_whylow):
    x, y = _digits()
    _write_folder(tmp_path / "test", x[:300], y[:300], "png")  # grey files, an RGB-trained model
    proc = run_whylow("diagnose", "--test", tmp_path / "test", "--train", rgb_case / "train.npz", "--model",
                      rgb_case / "model.pt", "--scale", "test=1/255", "--color", "test=rgb", "--json", tmp_path / "r.json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["inputs"]["splits"]["test"]["preprocessing"] == ["converted to RGB", "multiplied by 1/255"]
    assert report["inputs"]["splits"]["test"]["shape"] == [8, 8, 3]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--scale", "tset=1/255"], "'tset' is not a split"),
        (["--scale", "0"], "--scale must be a positive number"),
        (["--scale", "test=1/0"], "--scale for the test split must be a positive number"),
        (["--mean", "foo"], "--mean must be one or three numbers"),
        (["--std", "0,1,1"], "positive numbers"),
        (["--color", "test=cmyk"], "--color for the test split must be rgb or grey"),
        (["--scale", "test=1/255", "--scale", "test=1/127"], "--scale is given twice for the test split"),
        (["--layout", "test=XYZ"], "--layout for the test split must be one of NHWC"),
    ],
)
def test_a_bad_declaration_is_one_sentence_and_exit_2(grey_case, run_whylow, args, words):
    proc = run_whylow("diagnose", "--test", grey_case / "test", *args, "--quiet")
    assert proc.returncode == 2
    assert words in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_python_preprocess_and_transform_leave_the_users_arrays_alone():
    x, y = _digits()
    x = x[:200]
    before = x.copy()
    seen = []

    def to_unit(batch):
        seen.append(batch.shape)
        return batch / 255.0

    report = whylow.diagnose(test=whylow.Split(x=x, y=y[:200]), train=whylow.Split(x=x.astype(np.float32) / 255, y=y[:200]),
                             transform={"test": to_unit})
    assert np.array_equal(x, before)
    assert seen and seen[0][1:] == (8, 8)
    assert report.inputs["splits"]["test"]["preprocessing"] == ["transform to_unit"]
    assert report.inputs["splits"]["test"]["dtype"] == "float32"


def test_presets_and_the_order_scale_then_normalise():
    p = preprocessing_by_split({"*": {"scale": "1/255", "mean": "imagenet", "std": "imagenet"}})["test"]
    x = np.full((2, 6, 6, 3), 255, np.uint8)
    out = apply_preprocessing(whylow.Split(x=x), p, "test").x
    want = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(out[0, 0, 0], want, atol=1e-5)
    assert p.steps() == ["multiplied by 1/255", "normalised (x - mean) / std with mean imagenet, std imagenet"]


def test_split_values_and_shared_values_merge_key_by_key():
    assert parse_split_values(["test=1/255", "2"], "--scale") == {"test": "1/255", "*": "2"}
    by_split = preprocessing_by_split({"*": {"scale": 2}, "test": {"scale": "1/255", "color": "grey"}})
    assert by_split["train"].scale == 2 and by_split["train"].color is None
    assert by_split["test"].scale == pytest.approx(1 / 255) and by_split["test"].color == "grey"


@pytest.mark.parametrize(
    "preprocess, transform, words",
    [
        ({"tests": {"scale": 1}}, None, "preprocess has key 'tests'"),
        ({"test": {"scael": 1}}, None, "unknown key(s) 'scael'"),
        ({"test": {"mean": [0.1, 0.2]}}, None, "one or three numbers"),
        (None, {"test": 3}, "must be callable"),
        (None, "x", "must be a callable or a dict"),
    ],
)
def test_python_declarations_are_validated(preprocess, transform, words):
    with pytest.raises(InvalidInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        preprocessing_by_split(preprocess, transform)


def test_a_transform_that_drops_rows_or_fails_is_an_input_error():
    x = np.zeros((10, 8, 8), np.float32)
    with pytest.raises(InvalidInputError, match="returned 5 rows for 10"):
        apply_preprocessing(whylow.Split(x=x), preprocessing_by_split(transform=lambda b: b[::2])["test"], "test")
    with pytest.raises(InvalidInputError, match="transform failed: ZeroDivisionError"):
        apply_preprocessing(whylow.Split(x=x), preprocessing_by_split(transform=lambda b: 1 / 0)["test"], "test")
