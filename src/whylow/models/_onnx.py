"""ONNX models, run with onnxruntime on the CPU."""

from __future__ import annotations

from typing import Any

import numpy as np

from whylow.errors import InvalidInputError
from whylow.models._base import Predictor, layout_from_shape

__all__ = ["OnnxPredictor"]

_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}
_PROB_OPS = {"Softmax", "Sigmoid"}
_LOGIT_OPS = {"LogSoftmax", "Gemm", "MatMul"}


def _output_kind(graph: Any, output_name: str) -> str | None:
    """"probs"/"logits" from the op that produces the output, when the graph is at hand."""
    if graph is None:
        return None
    for node in reversed(list(graph.node)):
        if output_name in node.output:
            return "probs" if node.op_type in _PROB_OPS else "logits" if node.op_type in _LOGIT_OPS else None
    return None


class OnnxPredictor(Predictor):
    """Run an ``onnxruntime.InferenceSession`` with one input.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        The session. Its input shape gives the expected per-sample shape and
        layout (``[N, 3, H, W]`` is NCHW); a fixed batch dimension is honoured
        by padding the last batch.
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the arrays that will be passed to :meth:`predict`.
    graph : onnx.GraphProto, optional
        The model's graph, to tell probabilities from logits by the last op.
    """

    kind = "onnx"

    def __init__(self, session: Any, *, data_layout: str | None = None, graph: Any = None) -> None:
        super().__init__(data_layout=data_layout)
        self._ort_session = session
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise InvalidInputError(
                f"The ONNX model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                "whylow feeds it one image or feature array, so export it with a single input."
            )
        inp = inputs[0]
        if inp.type not in _ONNX_DTYPES:
            raise InvalidInputError(
                f"The ONNX model's input {inp.name!r} has type {inp.type}; whylow feeds "
                f"{', '.join(_ONNX_DTYPES)} tensors."
            )
        self._input_name = inp.name
        self._input_dtype = np.dtype(_ONNX_DTYPES[inp.type])
        if inp.shape is not None and len(inp.shape) >= 1:
            dims = tuple(d if isinstance(d, int) and d > 0 else None for d in inp.shape)
            self._fixed_batch = dims[0]
            self._sample_shape = dims[1:]
            self.input_layout = layout_from_shape(self._sample_shape)
        outputs = session.get_outputs()
        numeric = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)", "tensor(float16)")]
        if not numeric:
            raise InvalidInputError(
                f"The ONNX model has no floating-point output (outputs: "
                f"{', '.join(f'{o.name} {o.type}' for o in outputs)}); whylow needs probabilities or logits."
            )
        self._output_name = numeric[0].name
        self.output = _output_kind(graph, self._output_name)

    def _forward(self, xb: np.ndarray) -> Any:
        return self._ort_session.run([self._output_name], {self._input_name: xb})[0]
