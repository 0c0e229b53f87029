"""Model adapters: run the user's model on whylow's arrays, whatever the framework.

One interface, :class:`Predictor`, with ``predict(x, batch_size, progress)``
returning float64 ``(n_samples, n_outputs)`` raw outputs. Get one from a model
object with :func:`as_predictor` or from a file with :func:`load_model`.

>>> import numpy as np
>>> from whylow.models import as_predictor
>>> predictor = as_predictor(lambda x: x.sum(axis=1, keepdims=True))
>>> predictor.predict(np.ones((3, 2))).shape
(3, 1)
"""

from whylow.models._base import Predictor
from whylow.models._dispatch import as_predictor, load_model

__all__ = ["Predictor", "as_predictor", "load_model"]
