"""`Split`: one split of the data (train, val or test) as whylow sees it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Split"]


@dataclass
class Split:
    """Inputs, labels and predictions of one split.

    Every field is optional, but a split needs at least ``y`` or
    predictions to be useful, and image checks need ``x``.

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...), optional
        Images (N×H×W, N×H×W×C, N×C×H×W) or features (N×D). May be a
        ``numpy.memmap``: whylow reads it in chunks.
    y : array-like of shape (n_samples,), optional
        Integer class ids, or class names (mapped through ``class_names``).
    probs : array-like of shape (n_samples, n_classes) or (n_samples,), optional
        Predicted probabilities (softmax rows, or a sigmoid column).
    logits : array-like of shape (n_samples, n_classes) or (n_samples,), optional
        Raw model outputs before softmax / sigmoid.
    layout : {"NHWC", "NCHW", "NHW", "tabular"}, optional
        Layout of ``x``; inferred from its shape when not given.
    source : str, optional
        Where the split came from (a path), for the report.
    files : list of str, optional
        Image file of each sample, for splits read from a folder.
    corrupt_files : list of (str, str)
        Files that could not be read, with the reason; they are not in ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from whylow import Split
    >>> s = Split(y=np.array([0, 1]), probs=np.array([[0.9, 0.1], [0.2, 0.8]]))
    >>> s.n_samples
    2
    """

    x: np.ndarray | None = None
    y: np.ndarray | None = None
    probs: np.ndarray | None = None
    logits: np.ndarray | None = None
    layout: str | None = None
    source: str | None = None
    files: list[str] | None = None
    corrupt_files: list[tuple[str, str]] = field(default_factory=list)
    class_names: list[str] | None = None

    @property
    def n_samples(self) -> int:
        """Number of samples, from the first field that is present."""
        for value in (self.y, self.probs, self.logits, self.x):
            if value is not None:
                return len(value)
        return 0
