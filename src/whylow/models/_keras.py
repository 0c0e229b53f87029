"""Keras 3 models (run with whatever backend Keras was imported with; torch when whylow imports it)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from whylow.errors import InvalidInputError, require
from whylow.models._base import Predictor

__all__ = ["KerasPredictor", "import_keras"]


def import_keras():
    """Import Keras, on the torch backend unless the user chose another with KERAS_BACKEND."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras", "keras")


def _layers(model: Any) -> list:
    """The model's layers in order, nested models flattened."""
    out = []
    for layer in getattr(model, "layers", []):
        out.extend(_layers(layer) if getattr(layer, "layers", None) else [layer])
    return out


def _activation_name(layer: Any) -> str | None:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", None) if act is not None else None


def _output_kind(layers: list) -> str | None:
    if not layers:
        return None
    last = layers[-1]
    name = type(last).__name__
    if name == "Softmax":
        return "probs"
    act = _activation_name(last)
    if act in ("softmax", "sigmoid"):
        return "probs"
    if act == "log_softmax" or (name == "Dense" and act == "linear"):
        return "logits"
    return None


class KerasPredictor(Predictor):
    """Run a Keras 3 model with ``predict_on_batch``.

    Parameters
    ----------
    model : keras.Model
        A built model with one input. Its ``input_shape`` gives the expected
        per-sample shape; the layout is its first convolution's
        ``data_format`` (channels_last unless set otherwise).
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the arrays that will be passed to :meth:`predict`.
    """

    kind = "keras"

    def __init__(self, model: Any, *, data_layout: str | None = None) -> None:
        super().__init__(data_layout=data_layout)
        keras = import_keras()
        self._model = model
        try:
            shape = model.input_shape
        except (AttributeError, ValueError):  # a subclassed model that was never called
            shape = None
        if isinstance(shape, list) or isinstance(shape, dict):
            raise InvalidInputError(
                f"The Keras model has {len(shape)} inputs; whylow feeds it one image or feature array, "
                "so wrap it in a model with a single input."
            )
        layers = _layers(model)
        if shape is not None:
            self._sample_shape = tuple(d if isinstance(d, int) else None for d in shape[1:])
            if len(self._sample_shape) == 3:
                fmt = next((l.data_format for l in layers if isinstance(getattr(l, "data_format", None), str)), None)
                fmt = fmt or keras.config.image_data_format()
                self.input_layout = "NHWC" if fmt == "channels_last" else "NCHW"
        inputs = getattr(model, "inputs", None) or []
        dtype = getattr(inputs[0], "dtype", None) if inputs else None
        if isinstance(dtype, str) and dtype.startswith("float"):
            self._input_dtype = np.dtype(dtype)
        self.output = _output_kind(layers)

    def _forward(self, xb: np.ndarray) -> Any:
        out = self._model.predict_on_batch(xb)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out
