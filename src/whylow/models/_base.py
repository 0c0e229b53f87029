"""The :class:`Predictor` base class: batching, layout adaptation, output checks.

A backend subclass states what it knows about the model (``kind``,
``input_layout``, ``output``, the per-sample input shape it expects, a fixed
batch size, the input dtype) and implements ``_forward`` on one prepared
batch. Everything else (validation, moving the data into the model's layout,
batching with padding, the progress bar, turning outputs into a float64
``(n_samples, n_outputs)`` array) lives here, once.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from whylow.errors import InvalidInputError, WhylowError

__all__ = ["LAYOUTS", "Predictor", "check_data_layout", "layout_from_shape", "to_numpy_output"]

#: Layouts whylow can hand to a model: images with channels first / last, grey images, or None (tabular).
LAYOUTS = ("NHWC", "NCHW", "NHW")

_PROGRESS_MIN_BATCHES = 20
_CHANNEL_COUNTS = (1, 2, 3, 4)


def check_data_layout(data_layout: str | None) -> str | None:
    """Validate a data layout name and return it.

    Parameters
    ----------
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the image arrays whylow will pass; None for tabular N×D data.

    Returns
    -------
    str or None
        The same value.
    """
    if data_layout is not None and data_layout not in LAYOUTS:
        raise InvalidInputError(
            f"data_layout must be one of {', '.join(LAYOUTS)} or None (tabular), got {data_layout!r}."
        )
    return data_layout


def layout_from_shape(sample_shape: tuple[int | None, ...] | None) -> str | None:
    """Guess "NCHW" or "NHWC" from a model's per-sample image input shape.

    Parameters
    ----------
    sample_shape : tuple of int or None
        The input shape without the batch axis; unknown dims are None.

    Returns
    -------
    {"NCHW", "NHWC"} or None
        None when the shape is not 3-D or both (or neither) end axes look like
        a channel axis (1 to 4 entries).
    """
    if sample_shape is None or len(sample_shape) != 3:
        return None
    first, last = sample_shape[0], sample_shape[2]
    first_small = first is not None and first in _CHANNEL_COUNTS
    last_small = last is not None and last in _CHANNEL_COUNTS
    if first_small and not last_small:
        return "NCHW"
    if last_small and not first_small:
        return "NHWC"
    return None


def to_numpy_output(out: Any) -> np.ndarray:
    """Turn a model's raw output (tensor, array, list, tuple) into a numpy array.

    A tuple (several outputs) gives its first element; a dict or object with
    ``logits`` (e.g. a Hugging Face output) gives that entry. A list is read as
    rows, one per sample.
    """
    if isinstance(out, tuple) and out:
        out = out[0]
    if isinstance(out, dict) and "logits" in out:
        out = out["logits"]
    elif hasattr(out, "logits") and not isinstance(out, np.ndarray):
        out = out.logits
    if hasattr(out, "detach") and hasattr(out, "cpu"):  # torch.Tensor without importing torch
        out = out.detach().cpu()
        if hasattr(out, "is_floating_point") and out.is_floating_point():
            out = out.double()
        out = out.numpy()
    elif hasattr(out, "numpy") and not isinstance(out, np.ndarray):  # tf / jax arrays
        out = out.numpy()
    return np.asarray(out)


_EXC_PREFIX = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Warning|Exit)\b:")


def last_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line: its type and the last non-empty line of its message.

    Framework errors (a TorchScript interpreter failure, an onnxruntime
    status) carry tracebacks and source excerpts in their message; the last
    line is the error itself.

    >>> last_line(RuntimeError("The following operation failed\\n  File x\\nRuntimeError: shapes (4x64) and (16x10)"))
    'RuntimeError: shapes (4x64) and (16x10)'
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    if not _EXC_PREFIX.match(text):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _fmt_shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _matches(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(e is None or e == d for d, e in zip(shape, expected))


class Predictor:
    """A model whylow can run: batched inference returning raw outputs.

    Subclasses wrap one framework each; get one with
    :func:`whylow.models.as_predictor` or :func:`whylow.models.load_model`.
    A custom subclass may override :meth:`predict` entirely, or set the
    attributes below and implement ``_forward``.

    Attributes
    ----------
    kind : str
        "torch", "torchscript", "torch.export", "keras", "onnx", "sklearn" or "callable".
    input_layout : {"NCHW", "NHWC"} or None
        Layout the model expects for image input; None when unknown or tabular.
    output : {"probs", "logits"} or None
        What the model returns when that is known from its last layer;
        None leaves the detection to the caller.
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the arrays passed to :meth:`predict`; None for tabular N×D
        input or input already in the model's layout.
    """

    kind: str = "callable"
    input_layout: str | None = None
    output: str | None = None
    data_layout: str | None = None

    # What a backend knows about the model's input; None where unknown.
    _sample_shape: tuple[int | None, ...] | None = None  # per-sample input shape, batch axis excluded
    _fixed_batch: int | None = None  # the model only accepts batches of exactly this size
    _input_dtype: np.dtype = np.dtype(np.float32)

    def __init__(self, *, data_layout: str | None = None) -> None:
        self.data_layout = check_data_layout(data_layout)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, input_layout={self.input_layout!r}, "
            f"output={self.output!r}, data_layout={self.data_layout!r})"
        )

    # -- hooks for backends ------------------------------------------------
    def _forward(self, xb: np.ndarray) -> Any:
        """Run the model on one prepared batch (model layout and dtype); return its raw output."""
        raise NotImplementedError(f"{type(self).__name__} must implement _forward or override predict")

    def _session(self) -> contextlib.AbstractContextManager:
        """Context held while all batches run (eval mode, device, no-grad...)."""
        return contextlib.nullcontext()

    # -- public ------------------------------------------------------------
    def predict(self, x: np.ndarray, batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Run the model on ``x`` in batches and return its raw outputs.

        Parameters
        ----------
        x : array-like of shape (n_samples, ...)
            Inputs in ``data_layout`` (N×H×W×C, N×C×H×W, N×H×W images or N×D
            features), any numeric dtype. Values are cast to the model's input
            dtype (float32 by default) and never rescaled.
        batch_size : int, default 256
            Samples per forward pass; a model with a fixed batch size uses its own.
        progress : bool, default False
            Show a progress bar on stderr when there are more than 20 batches.

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), float64
            The model's raw outputs (probabilities or logits); a model with one
            output per sample (binary sigmoid) gives shape (n_samples, 1).
        """
        x = self._check_x(x)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}.")
        batch_size = int(self._fixed_batch or batch_size)
        adapt = self._plan_layout(x.shape)
        n_samples = x.shape[0]
        n_batches = -(-n_samples // batch_size)
        chunks: list[np.ndarray] = []
        with self._session(), _progress(n_batches, progress, f"running {self.kind} model") as advance:
            for start in range(0, n_samples, batch_size):
                xb = adapt(x[start : start + batch_size])
                chunks.append(self._run_batch(xb))
                advance()
        n_outputs = {c.shape[1] for c in chunks}
        if len(n_outputs) != 1:
            raise InvalidInputError(
                f"The {self.kind} model returned a different number of outputs per sample across batches "
                f"({sorted(n_outputs)}); it must return the same (n_samples, n_classes) for every batch."
            )
        return np.concatenate(chunks, axis=0)

    # -- internals ---------------------------------------------------------
    def _check_x(self, x: Any) -> np.ndarray:
        if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"The model input x must be a numeric array, got dtype {x.dtype}; convert it to numbers first."
            )
        if x.ndim < 1 or x.shape[0] == 0:
            raise InvalidInputError(f"The model input x must hold at least one sample, got shape {x.shape}.")
        expected_ndim = {"NHWC": 4, "NCHW": 4, "NHW": 3}.get(self.data_layout or "")
        if expected_ndim is not None and x.ndim != expected_ndim:
            raise InvalidInputError(
                f"The model input x was declared {self.data_layout} and so must be {expected_ndim}-D, "
                f"got shape {x.shape}; pass the images in that layout or give the right data_layout."
            )
        if self._input_dtype.kind in "iu":
            if x.dtype.kind == "f":
                raise InvalidInputError(
                    f"The {self.kind} model takes {self._input_dtype} input but x is {x.dtype}; "
                    "pass the integer images the model was built for."
                )
            info = np.iinfo(self._input_dtype)
            if x.min() < info.min or x.max() > info.max:
                raise InvalidInputError(
                    f"The {self.kind} model takes {self._input_dtype} input but x holds values in "
                    f"[{x.min()}, {x.max()}], outside [{info.min}, {info.max}]."
                )
        return x

    def _plan_layout(self, data_shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
        """Choose the transform that brings data of ``data_shape`` into the model's input shape."""
        candidates = _layout_candidates(data_shape, self.data_layout, self.input_layout, self._sample_shape)
        expected = self._sample_shape
        if expected is None:
            return candidates[0][1]
        for _, fn, out_shape in candidates:
            if _matches(out_shape[1:], expected):
                return fn
        layout = self.input_layout or "layout unknown"
        given = self.data_layout or "no layout given"
        raise InvalidInputError(
            f"The {self.kind} model expects input of shape {_fmt_shape((None, *expected))} ({layout}) but the data has "
            f"shape {_fmt_shape(data_shape)} ({given}), and no transpose or channel axis turns one into the other; "
            "pass images of the size, channel count and layout the model was trained on."
        )

    def _run_batch(self, xb: np.ndarray) -> np.ndarray:
        n = xb.shape[0]
        xb = np.array(xb, dtype=self._input_dtype, order="C", copy=True)
        if self._fixed_batch is not None and n < self._fixed_batch:
            # pad with copies of the last sample; their outputs are dropped below
            pad = np.repeat(xb[-1:], self._fixed_batch - n, axis=0)
            xb = np.concatenate([xb, pad], axis=0)
        try:
            raw = self._forward(xb)
        except WhylowError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"The {self.kind} model failed on a batch of shape {tuple(xb.shape)} {xb.dtype} "
                f"({self.input_layout or self.data_layout or 'as given'}): {last_line(exc)}"
            ) from exc
        out = to_numpy_output(raw)
        if out.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"The {self.kind} model returned values of dtype {out.dtype}; expected numbers "
                "(probabilities or logits)."
            )
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or out.shape[0] != xb.shape[0]:
            raise InvalidInputError(
                f"The {self.kind} model returned shape {out.shape} for a batch of {xb.shape[0]} samples; "
                "expected (n_samples, n_classes) or (n_samples,)."
            )
        return out[:n].astype(np.float64, copy=False)


def _layout_candidates(
    data_shape: tuple[int, ...],
    data_layout: str | None,
    input_layout: str | None,
    sample_shape: tuple[int | None, ...] | None,
) -> list[tuple[str, Callable[[np.ndarray], np.ndarray], tuple[int, ...]]]:
    """Transforms to try, most plausible first: (name, function, resulting shape)."""

    def t(axes):
        return lambda a: a.transpose(axes)

    n = data_shape[0]
    out: list[tuple[str, Callable, tuple[int, ...]]] = []
    identity = ("identity", lambda a: a, data_shape)
    if data_layout == "NHW":
        _, h, w = data_shape
        first = ("channel first", lambda a: a[:, None], (n, 1, h, w))
        last = ("channel last", lambda a: a[..., None], (n, h, w, 1))
        if input_layout == "NCHW":
            out = [first]
        elif input_layout == "NHWC":
            out = [last]
        else:
            out = [identity, first, last]
    elif data_layout in ("NHWC", "NCHW"):
        to_first = ("NHWC->NCHW", t((0, 3, 1, 2)), tuple(data_shape[i] for i in (0, 3, 1, 2)))
        to_last = ("NCHW->NHWC", t((0, 2, 3, 1)), tuple(data_shape[i] for i in (0, 2, 3, 1)))
        other = to_first if data_layout == "NHWC" else to_last
        if input_layout is None or input_layout == data_layout:
            out = [identity] if input_layout else [identity, other]
        else:
            out = [other]
        c_axis = 3 if data_layout == "NHWC" else 1
        if data_shape[c_axis] == 1:  # grey images with a channel axis, model wants N×H×W
            spatial = tuple(d for i, d in enumerate(data_shape) if i != c_axis)
            out.append(("drop channel", lambda a: a.squeeze(axis=c_axis), spatial))
    else:
        out = [identity]
    if sample_shape is not None and len(sample_shape) == 1 and len(data_shape) > 2:
        size = int(np.prod(data_shape[1:]))
        out.append(("flatten", lambda a: a.reshape(a.shape[0], -1), (n, size)))
    return out


@contextlib.contextmanager
def _progress(n_batches: int, enabled: bool, description: str) -> Iterator[Callable[[], None]]:
    """Yield an ``advance()`` callable; a rich bar on stderr when enabled and worth showing.

    Inside a diagnosis (`whylow.progress.Activity`) the bar joins its display, which shows only on a terminal.
    """
    if not enabled or n_batches <= _PROGRESS_MIN_BATCHES:
        yield lambda: None
        return
    from whylow.progress import current_activity

    activity = current_activity()
    if activity is not None:
        with activity.bar(n_batches, description) as advance:
            yield advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=n_batches)
        yield lambda: bar.advance(task)
