"""Model adapters: every framework gives the same outputs as calling it directly.

Each test builds a real tiny model. Files that would run code when loaded
(pickles, Keras Lambda layers, tampered torch.export archives) carry a payload
that creates a marker file, and the tests check that it never appears.
"""

from __future__ import annotations

import io
import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

from whylow.errors import InvalidInputError
from whylow.models import Predictor, as_predictor, load_model

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-5, 1e-6


# -- helpers ------------------------------------------------------------------
class PlantedPayload:
    """Unpickling this creates the file at ``marker``: proof that code from a file ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def small_cnn(in_channels: int = 3, n_classes: int = 5, dropout: float = 0.0):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Dropout(dropout),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, n_classes),
    ).eval()


def torch_direct(model, x_nchw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x_nchw, dtype=np.float32))).double().numpy()


@pytest.fixture(scope="module")
def images():
    """37 float images 8×8×3 in NCHW and NHWC (37 is not a multiple of any batch size used)."""
    rng = np.random.default_rng(0)
    x_nchw = rng.normal(size=(37, 3, 8, 8)).astype(np.float32)
    return x_nchw, x_nchw.transpose(0, 2, 3, 1).copy()


@pytest.fixture(scope="module")
def keras():
    from whylow.models._keras import import_keras

    return import_keras()


@pytest.fixture(scope="module")
def keras_cnn(keras):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    return model


@pytest.fixture(scope="module")
def exported_file(tmp_path_factory):
    model = small_cnn()
    example = torch.zeros(4, 3, 8, 8)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path_factory.mktemp("export") / "model.pt2"
    torch.export.save(program, path)
    return model, path


def rewrite_zip(src, dst, edit):
    """Copy a zip, passing each entry through ``edit(name, data) -> data``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, edit(name, zin.read(name)))


# -- torch.nn.Module ------------------------------------------------------------
def test_torch_module_matches_direct_call_on_nchw(images):
    x_nchw, _ = images
    model = small_cnn()
    predictor = as_predictor(model, data_layout="NCHW")
    out = predictor.predict(x_nchw, batch_size=8)
    assert (predictor.kind, predictor.input_layout, predictor.output) == ("torch", "NCHW", "logits")
    assert out.dtype == np.float64 and out.shape == (37, 5)
    np.testing.assert_allclose(out, torch_direct(model, x_nchw), rtol=RTOL, atol=ATOL)


def test_torch_module_fed_nhwc_is_transposed(images):
    x_nchw, x_nhwc = images
    model = small_cnn()
    out = as_predictor(model, data_layout="NHWC").predict(x_nhwc, batch_size=16)
    np.testing.assert_allclose(out, torch_direct(model, x_nchw), rtol=RTOL, atol=ATOL)


def test_torch_module_grey_nhw_gets_channel_axis():
    model = small_cnn(in_channels=1)
    x = np.random.default_rng(1).integers(0, 256, size=(10, 8, 8)).astype(np.uint8)
    out = as_predictor(model, data_layout="NHW").predict(x)
    # uint8 values reach the model unscaled (0..255), with a channel axis at 1
    np.testing.assert_allclose(out, torch_direct(model, x[:, None].astype(np.float32)), rtol=RTOL, atol=ATOL)


def test_torch_channel_mismatch_names_both_shapes(images):
    model = small_cnn(in_channels=3)
    grey = np.zeros((4, 8, 8, 1), dtype=np.float32)
    with pytest.raises(InvalidInputError, match=r"expects input of shape \(\?, 3, \?, \?\).*\(4, 8, 8, 1\)"):
        as_predictor(model, data_layout="NHWC").predict(grey)


def test_torch_eval_mode_used_and_training_flag_restored(images):
    x_nchw, _ = images
    model = small_cnn(dropout=0.5)
    expected = torch_direct(model, x_nchw)  # eval mode: dropout off
    model.train()
    out = as_predictor(model, data_layout="NCHW").predict(x_nchw)
    np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)
    assert model.training


def test_softmax_last_layer_reports_probs():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    predictor = as_predictor(model)
    assert predictor.output == "probs" and predictor.input_layout is None
    out = predictor.predict(np.ones((5, 4)))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)


# -- TorchScript and torch.export files --------------------------------------------
def test_torchscript_file_matches_module(tmp_path, images):
    x_nchw, x_nhwc = images
    model = small_cnn()
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(model), path)
    predictor = load_model(path, data_layout="NHWC")
    assert (predictor.kind, predictor.input_layout) == ("torchscript", "NCHW")
    np.testing.assert_allclose(predictor.predict(x_nhwc), torch_direct(model, x_nchw), rtol=RTOL, atol=ATOL)


def test_exported_program_file_matches_module(exported_file, images):
    x_nchw, x_nhwc = images
    model, path = exported_file
    predictor = load_model(path, data_layout="NHWC")
    assert (predictor.kind, predictor.input_layout, predictor.output) == ("torch.export", "NCHW", "logits")
    out = predictor.predict(x_nhwc, batch_size=10)
    np.testing.assert_allclose(out, torch_direct(model, x_nchw), rtol=RTOL, atol=ATOL)


def test_exported_program_with_fixed_batch_pads_last_batch(images):
    x_nchw, _ = images
    model = small_cnn()
    program = torch.export.export(model, (torch.zeros(4, 3, 8, 8),))  # batch fixed at 4
    out = as_predictor(program, data_layout="NCHW").predict(x_nchw, batch_size=100)
    np.testing.assert_allclose(out, torch_direct(model, x_nchw), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("legacy_format", [False, True])
def test_torch_save_pickle_is_refused_without_running_it(tmp_path, legacy_format):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "model.pt"
    torch.save({"a": PlantedPayload(str(marker))}, path, _use_new_zipfile_serialization=not legacy_format)
    with pytest.raises(InvalidInputError, match="never unpickles") as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def _tamper_sample_inputs(marker):
    buf = io.BytesIO()
    torch.save(((PlantedPayload(marker),), {}), buf)
    return lambda name, data: buf.getvalue() if "sample_inputs/" in name else data


def _tamper_json(old: str, new: str, where: str):
    def edit(name, data):
        if where in name:
            text = data.decode()
            assert old in text, f"{old!r} not in {name}; the archive layout changed"
            return text.replace(old, new).encode()
        return data

    return edit


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda m: _tamper_sample_inputs(m), "sample inputs"),
        (
            lambda m: _tamper_json('"torch.ops.aten.relu.default"', '"torch.os.system"', "models/"),
            "registered operator",
        ),
        (
            lambda m: _tamper_json("Symbol('", f"__import__('os').system('touch {m}') or Symbol('", "models/"),
            "shape expression",
        ),
        (lambda m: _tamper_json('"use_pickle": false', '"use_pickle": true', "weights_config"), "stored as a pickle"),
    ],
    ids=["pickled-sample-inputs", "foreign-target", "eval-in-shape", "pickled-weights"],
)
def test_tampered_export_archive_is_refused(exported_file, tmp_path, tamper, reason):
    _, path = exported_file
    marker = tmp_path / "payload_ran"
    bad = tmp_path / "bad.pt2"
    rewrite_zip(path, bad, tamper(str(marker)))
    with pytest.raises(InvalidInputError, match=reason):
        load_model(bad)
    assert not marker.exists()


# -- Keras ------------------------------------------------------------------------------
def test_keras_sequential_matches_direct_call(keras_cnn, images):
    x_nchw, x_nhwc = images
    expected = np.asarray(keras_cnn.predict_on_batch(x_nhwc), dtype=np.float64)
    predictor = as_predictor(keras_cnn, data_layout="NHWC")
    assert (predictor.kind, predictor.input_layout, predictor.output) == ("keras", "NHWC", "probs")
    np.testing.assert_allclose(predictor.predict(x_nhwc, batch_size=8), expected, rtol=RTOL, atol=ATOL)
    # NCHW data is transposed to the model's channels_last
    from_nchw = as_predictor(keras_cnn, data_layout="NCHW").predict(x_nchw)
    np.testing.assert_allclose(from_nchw, expected, rtol=RTOL, atol=ATOL)


def test_keras_file_matches_model(keras_cnn, images, tmp_path):
    _, x_nhwc = images
    path = tmp_path / "model.keras"
    keras_cnn.save(path)
    predictor = load_model(path, data_layout="NHWC")
    expected = np.asarray(keras_cnn.predict_on_batch(x_nhwc), dtype=np.float64)
    np.testing.assert_allclose(predictor.predict(x_nhwc), expected, rtol=RTOL, atol=ATOL)


def test_keras_lambda_file_is_refused(keras, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda z: z * 2), keras.layers.Dense(2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(InvalidInputError, match="Lambda layer.*refuses to load"):
        load_model(path)


# -- ONNX ---------------------------------------------------------------------------------
def _export_onnx(model, path, batch: int, dynamic: bool):
    kwargs = {"dynamic_axes": {"x": {0: "n"}, "y": {0: "n"}}} if dynamic else {}
    torch.onnx.export(
        model, (torch.zeros(batch, 3, 8, 8),), str(path), dynamo=False, input_names=["x"], output_names=["y"], **kwargs
    )


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic-batch", "fixed-batch"])
def test_onnx_file_matches_torch_and_onnxruntime(tmp_path, images, dynamic):
    ort = pytest.importorskip("onnxruntime")
    x_nchw, x_nhwc = images
    model = small_cnn()
    path = tmp_path / "model.onnx"
    _export_onnx(model, path, batch=4, dynamic=dynamic)
    predictor = load_model(path, data_layout="NHWC")
    assert (predictor.kind, predictor.input_layout, predictor.output) == ("onnx", "NCHW", "logits")
    out = predictor.predict(x_nhwc, batch_size=16)
    np.testing.assert_allclose(out, torch_direct(model, x_nchw), rtol=1e-4, atol=1e-5)
    if dynamic:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        direct = session.run(None, {"x": x_nchw})[0]
        np.testing.assert_allclose(out, direct, rtol=RTOL, atol=ATOL)


def test_onnx_wrong_image_size_is_explained(tmp_path):
    path = tmp_path / "model.onnx"
    _export_onnx(small_cnn(), path, batch=2, dynamic=True)
    with pytest.raises(InvalidInputError, match=r"expects input of shape \(\?, 3, 8, 8\).*\(2, 28, 28, 3\)"):
        load_model(path, data_layout="NHWC").predict(np.zeros((2, 28, 28, 3)))


# -- scikit-learn and callables ---------------------------------------------------------------
def test_sklearn_matches_predict_proba_and_flattens_images():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    clf = LogisticRegression(max_iter=200).fit(digits.data[:300], digits.target[:300])
    predictor = as_predictor(clf)
    assert (predictor.kind, predictor.output) == ("sklearn", "probs")
    expected = clf.predict_proba(digits.data[300:400])
    np.testing.assert_allclose(predictor.predict(digits.data[300:400], batch_size=32), expected, rtol=1e-12)
    images = as_predictor(clf, data_layout="NHW").predict(digits.images[300:400])
    np.testing.assert_allclose(images, expected, rtol=1e-12)


def test_unfitted_sklearn_is_refused():
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(InvalidInputError, match="not fitted"):
        as_predictor(LogisticRegression())


def test_callable_gets_float32_unscaled_in_data_layout():
    seen = []

    def fn(x):
        seen.append((x.dtype, x.shape))
        return torch.from_numpy(x.reshape(len(x), -1)[:, :2].copy())  # a tensor, as a torch-based callable returns

    x = np.full((5, 4, 4, 3), 200, dtype=np.uint8)
    out = as_predictor(fn, data_layout="NHWC").predict(x, batch_size=2)
    assert seen == [(np.float32, (2, 4, 4, 3)), (np.float32, (2, 4, 4, 3)), (np.float32, (1, 4, 4, 3))]
    np.testing.assert_array_equal(out, np.full((5, 2), 200.0))


# -- batching, progress, validation -----------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batching_gives_same_result_as_one_batch(images, batch_size):
    x_nchw, _ = images
    predictor = as_predictor(small_cnn(), data_layout="NCHW")
    one = predictor.predict(x_nchw, batch_size=len(x_nchw))
    np.testing.assert_allclose(predictor.predict(x_nchw, batch_size=batch_size), one, rtol=RTOL, atol=ATOL)


def test_progress_bar_only_when_asked_and_long(capsys):
    predictor = as_predictor(lambda x: x[:, :2])
    x = np.ones((60, 3))
    predictor.predict(x, batch_size=2, progress=True)  # 30 batches
    assert "running callable model" in capsys.readouterr().err
    predictor.predict(x, batch_size=2, progress=False)
    predictor.predict(x, batch_size=30, progress=True)  # 2 batches: no bar
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_bad_model_output_and_failures_are_invalid_input():
    with pytest.raises(InvalidInputError, match=r"returned shape \(3, 2, 2\)"):
        as_predictor(lambda x: np.zeros((len(x), 2, 2))).predict(np.ones((3, 4)))
    with pytest.raises(InvalidInputError, match=r"failed on a batch of shape \(3, 4\)"):
        as_predictor(lambda x: x @ np.ones((5, 2))).predict(np.ones((3, 4)))


def test_input_validation():
    predictor = as_predictor(lambda x: x[:, :1], data_layout="NHWC")
    with pytest.raises(InvalidInputError, match="4-D"):
        predictor.predict(np.ones((3, 4)))
    with pytest.raises(InvalidInputError, match="numeric"):
        predictor.predict(np.array([["a"]]))
    with pytest.raises(InvalidInputError, match="batch_size"):
        predictor.predict(np.ones((2, 2, 2, 1)), batch_size=0)
    with pytest.raises(InvalidInputError, match="data_layout"):
        as_predictor(lambda x: x, data_layout="HWC")
    with pytest.raises(InvalidInputError, match="got int"):
        as_predictor(42)


def test_existing_predictor_returned_as_is_or_relabelled():
    predictor = as_predictor(lambda x: x, data_layout="NHWC")
    assert as_predictor(predictor) is predictor
    relabelled = as_predictor(predictor, data_layout="NCHW")
    assert isinstance(relabelled, Predictor) and relabelled.data_layout == "NCHW" and predictor.data_layout == "NHWC"


# -- files ---------------------------------------------------------------------------------------
def test_missing_file_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")


@pytest.mark.parametrize("name", ["model.h5", "model.pkl", "model"])
def test_unknown_extension_is_invalid_input(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04K\x01.")  # a tiny pickle: must not be opened
    with pytest.raises(InvalidInputError, match="whylow reads"):
        load_model(path)


@pytest.mark.parametrize("name", ["model.pt", "model.pt2", "model.onnx", "model.keras"])
def test_corrupt_file_is_invalid_input(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(InvalidInputError, match=str(path).replace("\\", "\\\\")):
        load_model(path)
