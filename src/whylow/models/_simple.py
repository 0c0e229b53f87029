"""scikit-learn style estimators and plain callables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from whylow.errors import InvalidInputError
from whylow.models._base import Predictor

__all__ = ["CallablePredictor", "SklearnPredictor"]


class SklearnPredictor(Predictor):
    """Run an estimator's ``predict_proba`` (scikit-learn or its API).

    Parameters
    ----------
    model : estimator with ``predict_proba``
        A fitted estimator. When it records ``n_features_in_``, image input
        whose pixel count matches is flattened in its own layout.
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the arrays that will be passed to :meth:`predict`.

    Notes
    -----
    Input is cast to float64, not float32: scikit-learn computes in float64,
    so this keeps predictions identical to calling the estimator directly.
    """

    kind = "sklearn"
    output = "probs"
    _input_dtype = np.dtype(np.float64)

    def __init__(self, model: Any, *, data_layout: str | None = None) -> None:
        super().__init__(data_layout=data_layout)
        try:
            from sklearn.base import BaseEstimator
            from sklearn.exceptions import NotFittedError
            from sklearn.utils.validation import check_is_fitted
        except ImportError:  # pragma: no cover - scikit-learn is a core dependency
            BaseEstimator = None
        if BaseEstimator is not None and isinstance(model, BaseEstimator):
            try:
                check_is_fitted(model)
            except NotFittedError as exc:
                raise InvalidInputError(
                    f"The scikit-learn model {type(model).__name__} is not fitted; fit it before diagnosing."
                ) from exc
        self._model = model
        n_features = getattr(model, "n_features_in_", None)
        if isinstance(n_features, (int, np.integer)):
            self._sample_shape = (int(n_features),)

    def _forward(self, xb: np.ndarray) -> Any:
        return self._model.predict_proba(xb)


class CallablePredictor(Predictor):
    """Run any callable ``f(x) -> probs | logits`` on float32 batches in the data's own layout.

    Parameters
    ----------
    fn : callable
        Takes an array of shape (batch, ...) and returns (batch, n_outputs) or
        (batch,) numbers (numpy, torch, lists).
    data_layout : {"NHWC", "NCHW", "NHW"} or None
        Layout of the arrays that will be passed to :meth:`predict`.
    """

    kind = "callable"

    def __init__(self, fn: Callable[[np.ndarray], Any], *, data_layout: str | None = None) -> None:
        super().__init__(data_layout=data_layout)
        self._fn = fn

    def _forward(self, xb: np.ndarray) -> Any:
        return self._fn(xb)
