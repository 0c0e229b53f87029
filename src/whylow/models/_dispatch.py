"""Turn what the user gave (a model object or a model file) into a :class:`Predictor`."""

from __future__ import annotations

import copy
import os
import stat
import sys
from pathlib import Path
from typing import Any

from whylow.errors import InvalidInputError, require
from whylow.models._base import Predictor, check_data_layout

__all__ = ["as_predictor", "load_model"]

_TORCH_EXTENSIONS = (".pt", ".pth", ".ts", ".pt2")
_EXTENSIONS = (*_TORCH_EXTENSIONS, ".onnx", ".keras")


def as_predictor(model: Any, *, data_layout: str | None = None) -> Predictor:
    """Wrap a model object so whylow can run it.

    Parameters
    ----------
    model : object
        A ``torch.nn.Module``, ``torch.jit.ScriptModule``,
        ``torch.export.ExportedProgram``, Keras 3 model,
        ``onnxruntime.InferenceSession`` or ``onnx.ModelProto``, an estimator
        with ``predict_proba`` (scikit-learn API), an existing
        :class:`Predictor`, any callable ``x -> probs | logits``, or a path
        (then :func:`load_model` reads it).
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the arrays that will be passed to ``predict``; None for
        tabular N×D features.

    Returns
    -------
    Predictor
        An existing Predictor is returned as is, or as a shallow copy carrying
        ``data_layout`` when a different one is given.

    Examples
    --------
    >>> import numpy as np
    >>> from whylow.models import as_predictor
    >>> p = as_predictor(lambda x: np.stack([1 - x[:, 0], x[:, 0]], axis=1))
    >>> p.predict(np.array([[0.25], [1.0]])).tolist()
    [[0.75, 0.25], [0.0, 1.0]]
    """
    data_layout = check_data_layout(data_layout)
    if isinstance(model, Predictor):
        if data_layout is None or data_layout == model.data_layout:
            return model
        clone = copy.copy(model)
        clone.data_layout = data_layout
        return clone
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, data_layout=data_layout)

    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        # before torch: on the torch backend a Keras model is also a torch.nn.Module
        from whylow.models._keras import KerasPredictor

        return KerasPredictor(model, data_layout=data_layout)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, (torch.nn.Module, torch.export.ExportedProgram)):
        from whylow.models._torch import TorchPredictor

        return TorchPredictor(model, data_layout=data_layout)
    ort = sys.modules.get("onnxruntime")
    if ort is not None and isinstance(model, ort.InferenceSession):
        from whylow.models._onnx import OnnxPredictor

        return OnnxPredictor(model, data_layout=data_layout)
    onnx = sys.modules.get("onnx")
    if onnx is not None and isinstance(model, onnx.ModelProto):
        from whylow.models._onnx import OnnxPredictor

        ort = require("onnxruntime", "onnx")
        session = _onnx_session(ort, model.SerializeToString(), "the ONNX model")
        return OnnxPredictor(session, data_layout=data_layout, graph=model.graph)
    if hasattr(model, "predict_proba"):
        from whylow.models._simple import SklearnPredictor

        return SklearnPredictor(model, data_layout=data_layout)
    if callable(model):
        from whylow.models._simple import CallablePredictor

        return CallablePredictor(model, data_layout=data_layout)
    raise InvalidInputError(
        f"model must be a torch.nn.Module, TorchScript or torch.export program, Keras model, ONNX session, "
        f"estimator with predict_proba, callable x -> probs, or a model file path; got {type(model).__name__}."
    )


def load_model(path: str | os.PathLike, *, data_layout: str | None = None) -> Predictor:
    """Load a model file without running code from it.

    Parameters
    ----------
    path : str or PathLike
        ``.pt`` / ``.pth`` / ``.ts`` / ``.pt2``: a TorchScript (``torch.jit.save``)
        or ``torch.export`` (``torch.export.save``) archive, told apart by its
        contents; ``.onnx``: run with onnxruntime on the CPU; ``.keras``: a
        Keras 3 file, loaded with ``safe_mode=True``.
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the arrays that will be passed to ``predict``.

    Returns
    -------
    Predictor

    Raises
    ------
    InvalidInputError
        The file is missing, has an unknown extension, is corrupt, or would
        run code when loaded: a pickle (e.g. written by ``torch.save``), a
        Keras file with a ``Lambda`` layer, a torch.export archive with pickled
        or compiled parts.
    """
    data_layout = check_data_layout(data_layout)
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"The model path must be a string or path, got {type(path).__name__}.")
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidInputError(f"The model file {str(path)!r} does not exist; check the path.") from None
    except OSError as exc:
        raise InvalidInputError(f"The model file {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
    if not stat.S_ISREG(st.st_mode):
        from whylow.inputs.files import file_kind

        link = f" (a link to {os.path.realpath(path)!r})" if path.is_symlink() else ""
        raise InvalidInputError(
            f"The model path {str(path)!r} is {file_kind(st.st_mode)}{link}, not a regular file; give the model file itself."
        )
    ext = path.suffix.lower()
    if ext in _TORCH_EXTENSIONS:
        from whylow.models._torch import TorchPredictor
        from whylow.models._torch_files import load_torch_file

        return TorchPredictor(load_torch_file(path), data_layout=data_layout)
    if ext == ".onnx":
        return _load_onnx(path, data_layout)
    if ext == ".keras":
        return _load_keras(path, data_layout)
    raise InvalidInputError(
        f"The model file {path} has extension {ext or '(none)'!r}; whylow reads {', '.join(_EXTENSIONS)} "
        "(TorchScript / torch.export, ONNX, Keras 3). Export the model to one of these."
    )


def _onnx_session(ort: Any, source: str | bytes, what: str) -> Any:
    try:
        return ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(
            f"{what} could not be opened by onnxruntime: it is corrupt or unsupported ({first})."
        ) from exc


def _load_onnx(path: Path, data_layout: str | None) -> Predictor:
    from whylow.models._onnx import OnnxPredictor

    ort = require("onnxruntime", "onnx")
    session = _onnx_session(ort, str(path), f"The ONNX file {path}")
    graph = None
    try:
        import onnx
    except ImportError:  # onnxruntime alone runs the model; the graph only refines `output`
        onnx = None
    if onnx is not None:
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception:  # onnxruntime opened the file; a graph onnx cannot parse only leaves `output` unknown
            graph = None
    return OnnxPredictor(session, data_layout=data_layout, graph=graph)


def _load_keras(path: Path, data_layout: str | None) -> Predictor:
    from whylow.models._keras import KerasPredictor, import_keras

    keras = import_keras()
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "lambda" in text.lower():
            raise InvalidInputError(
                f"The Keras file {path} contains a Lambda layer or other Python lambda, which whylow refuses to "
                "load because loading it would run code stored in the file; replace it with a built-in or "
                "registered custom layer and save the model again."
            ) from exc
        first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
        raise InvalidInputError(
            f"The Keras file {path} could not be loaded ({type(exc).__name__}: {first}); it may be corrupt, or use "
            "a custom layer whose module (with @keras.saving.register_keras_serializable) must be imported first."
        ) from exc
    return KerasPredictor(model, data_layout=data_layout)
