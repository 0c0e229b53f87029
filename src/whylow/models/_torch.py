"""PyTorch models: ``nn.Module``, TorchScript and ``torch.export`` programs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from whylow.errors import require
from whylow.models._base import Predictor, layout_from_shape

__all__ = ["TorchPredictor"]

# Last layers / ops that say what a model returns.
_PROB_LAYERS = {"Softmax", "Sigmoid"}
_LOGIT_LAYERS = {"Linear", "LogSoftmax", "LazyLinear"}
_PROB_OPS = {"aten.softmax.int", "aten._softmax.default", "aten.sigmoid.default"}
_LOGIT_OPS = {"aten.linear.default", "aten.addmm.default", "aten.log_softmax.int", "aten._log_softmax.default"}


def _layer_name(module: Any) -> str:
    """Class name of a module; TorchScript modules keep it in ``original_name``."""
    return getattr(module, "original_name", None) or type(module).__name__


def _first_conv_channels(module: Any) -> tuple[bool, int | None]:
    """Whether the module has a Conv2d, and the input channels of the first one (None if unknown)."""
    for sub in module.modules():
        if _layer_name(sub) not in ("Conv2d", "LazyConv2d"):
            continue
        in_channels = getattr(sub, "in_channels", None)
        if isinstance(in_channels, int) and in_channels > 0:
            return True, in_channels
        weight = getattr(sub, "weight", None)
        groups = getattr(sub, "groups", None)
        shape = getattr(weight, "shape", ())
        if len(shape) == 4 and not _is_uninitialized(weight):
            if isinstance(groups, int):
                return True, int(shape[1]) * groups
            # a traced TorchScript conv keeps no `groups`; one input channel per group is ambiguous
            return True, int(shape[1]) if shape[1] > 1 else None
        return True, None
    return False, None


def _is_uninitialized(tensor: Any) -> bool:
    torch = require("torch", "torch")
    return isinstance(tensor, torch.nn.parameter.UninitializedParameter)


def _sequential_output_kind(module: Any) -> str | None:
    """"probs"/"logits" when the module is a Sequential ending in a telling layer."""
    while _layer_name(module) == "Sequential":
        children = list(module.children())
        if not children:
            return None
        module = children[-1]
    name = _layer_name(module)
    if name in _PROB_LAYERS:
        return "probs"
    if name in _LOGIT_LAYERS:
        return "logits"
    return None


def _pick_device(module: Any) -> Any:
    """Device to run on: where the weights already are if not the CPU, else CUDA when present."""
    torch = require("torch", "torch")
    current = _current_device(module)
    if current is not None and current.type != "cpu":
        return current
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _current_device(module: Any) -> Any:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return None


def _floating_dtype(module: Any) -> Any:
    torch = require("torch", "torch")
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


class TorchPredictor(Predictor):
    """Run a ``torch.nn.Module``, a TorchScript module or a ``torch.export.ExportedProgram``.

    Parameters
    ----------
    model : torch.nn.Module, torch.jit.ScriptModule or torch.export.ExportedProgram
        The model. An ``nn.Module`` or TorchScript module is put in eval mode
        and moved to the run device for the duration of :meth:`predict`; its
        training flag and device are restored afterwards. An exported program
        runs on the device its weights are on.
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the arrays that will be passed to :meth:`predict`.

    Notes
    -----
    The input layout of an ``nn.Module`` is not declared anywhere. When the
    model contains a ``Conv2d``, it takes NCHW and the first one's
    ``in_channels`` is the channel count it expects: data whose channel axis
    matches is transposed to NCHW, N×H×W data gets a channel axis at 1, and a
    mismatch is an error that names both shapes. Without a ``Conv2d`` the data
    is passed in its own layout. An exported program declares its input shape,
    which is used as is.
    """

    def __init__(self, model: Any, *, data_layout: str | None = None) -> None:
        super().__init__(data_layout=data_layout)
        torch = require("torch", "torch")
        if isinstance(model, torch.export.ExportedProgram):
            self.kind = "torch.export"
            self._program = model
            self._module = model.module()
            self._init_exported(model)
            device = _current_device(self._module)
            self._device = device if device is not None else torch.device("cpu")
            self._movable = False
        else:
            self.kind = "torchscript" if isinstance(model, torch.jit.ScriptModule) else "torch"
            self._module = model
            has_conv, channels = _first_conv_channels(model)
            self.input_layout = "NCHW" if has_conv else None
            self._sample_shape = (channels, None, None) if channels is not None else None
            self.output = _sequential_output_kind(model)
            self._device = _pick_device(model)
            self._torch_dtype = _floating_dtype(model)
            self._movable = True
        if self._torch_dtype == torch.float64:  # keep double-precision models' input exact
            self._input_dtype = np.dtype(np.float64)

    def _init_exported(self, program: Any) -> None:
        torch = require("torch", "torch")
        user_inputs = list(program.graph_signature.user_inputs)
        nodes = {n.name: n for n in program.graph.nodes}
        self._torch_dtype = torch.float32
        if len(user_inputs) == 1 and user_inputs[0] in nodes:
            val = nodes[user_inputs[0]].meta.get("val")
            shape = getattr(val, "shape", None)
            if shape is not None and len(shape) >= 1:
                dims = tuple(d if isinstance(d, int) else None for d in shape)
                self._fixed_batch = dims[0]
                self._sample_shape = dims[1:]
                self.input_layout = layout_from_shape(self._sample_shape)
                if val.dtype.is_floating_point:
                    self._torch_dtype = val.dtype
        outputs = [n for n in program.graph.nodes if n.op == "output"]
        if outputs and outputs[0].args and isinstance(outputs[0].args[0], (tuple, list)) and outputs[0].args[0]:
            last = outputs[0].args[0][0]
            target = str(getattr(last, "target", ""))
            self.output = "probs" if target in _PROB_OPS else "logits" if target in _LOGIT_OPS else None

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        torch = require("torch", "torch")
        module = self._module
        was_training = getattr(module, "training", False) if self._movable else None
        original_device = _current_device(module) if self._movable else None
        try:
            if self._movable:
                module.eval()
                if original_device is not None and original_device != self._device:
                    module.to(self._device)
            with torch.inference_mode():
                yield
        finally:
            if self._movable:
                if original_device is not None and original_device != self._device:
                    module.to(original_device)
                module.train(was_training)

    def _forward(self, xb: np.ndarray) -> Any:
        torch = require("torch", "torch")
        tensor = torch.from_numpy(xb).to(device=self._device, dtype=self._torch_dtype)
        return self._module(tensor)
