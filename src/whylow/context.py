"""`Context`: the validated inputs and shared, cached evidence that every check reads.

A check never re-validates or recomputes what another check already
computed: expensive evidence (input summaries, fitted calibrators, model
outputs on corrected inputs) goes through `Context.cached`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from whylow.errors import InvalidInputError
from whylow.inputs.detect import predictions_to_probs
from whylow.inputs.prepare import SplitData

__all__ = ["Context", "REQUIREMENT_HINTS"]

#: What the user supplies to satisfy a requirement, for "skipped" reasons.
REQUIREMENT_HINTS = {
    "x": "inputs x",
    "images": "images (x with H×W, not tabular features)",
    "y": "labels y",
    "probs": "predictions (probs/logits, or --model to compute them)",
}


@dataclass
class Context:
    """Everything a check may read.

    Attributes
    ----------
    splits : dict of str to SplitData
        The validated splits present (``train``, ``val``, ``test``).
    n_classes : int
    class_names : list of str
    model : whylow.models.Predictor or None
        The user's model, able to re-run on corrected inputs.
    history : dict of str to list of float, or None
        Per-epoch training history (``loss``, ``val_loss``, ...).
    options : dict
        User overrides of check thresholds, keyed ``"<check>.<threshold>"``.
    seed : int
        Seed for every random choice, so a diagnosis is deterministic.
    """

    splits: dict[str, SplitData]
    n_classes: int
    class_names: list[str]
    model: Any = None
    history: dict | None = None
    options: dict = field(default_factory=dict)
    seed: int = 0
    cache: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)

    # -- access ------------------------------------------------------------
    def split(self, name: str) -> SplitData | None:
        """The split called ``name``, or None."""
        return self.splits.get(name)

    @property
    def test(self) -> SplitData:
        """The test split (always present)."""
        return self.splits["test"]

    def has(self, requirement: str) -> bool:
        """Whether a requirement such as ``"train.probs"``, ``"test.images"``, ``"model"`` or ``"history"`` holds.

        Alternatives are separated by ``|``: ``"val.probs|train.probs"``.
        """
        return any(self._has_one(r) for r in requirement.split("|"))

    def _has_one(self, req: str) -> bool:
        if req == "model":
            return self.model is not None
        if req == "history":
            return bool(self.history)
        split_name, _, what = req.partition(".")
        s = self.splits.get(split_name)
        if s is None:
            return False
        if what == "images":
            return s.is_image
        return getattr(s, what) is not None

    def option(self, check: str, name: str, default):
        """A threshold of ``check``, overridden by ``options["<check>.<name>"]`` when the user set it."""
        return self.options.get(f"{check}.{name}", default)

    def cached(self, key: str, compute: Callable[[], Any]):
        """Compute ``compute()`` once per diagnosis and share it between checks."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def add_artifact(self, check: str, key: str, value) -> None:
        """Keep data behind a plot for the HTML report."""
        self.artifacts.setdefault(check, {})[key] = value

    # -- model -------------------------------------------------------------
    def run_model(self, x: np.ndarray, progress: bool = False) -> tuple[np.ndarray, str]:
        """Run the model on ``x`` (in the splits' layout).

        Returns
        -------
        probs : ndarray of shape (n_samples, n_classes)
        prediction_kind : {"softmax", "sigmoid", "logits"}
            How the model's outputs were read, as for given predictions.
        """
        if self.model is None:
            raise RuntimeError("no model was given")
        raw = np.asarray(self.model.predict(x, progress=progress), dtype=np.float64)
        kind = {"probs": "probs", "logits": "logits"}.get(getattr(self.model, "output", None) or "", "auto")
        rows = raw.reshape(len(raw), -1)
        bad = ~np.isfinite(rows).all(axis=1)
        if not bad.any():
            return predictions_to_probs(raw, "the model's output", kind)
        # Broken inputs (NaN/inf pixels) give broken outputs: those rows get uniform probabilities so the
        # diagnosis goes on and the data-quality check reports them; NaN from clean inputs is a model error.
        bad_inputs = np.array([not np.isfinite(np.asarray(x[i], dtype=np.float64)).all() for i in np.flatnonzero(bad)])
        if not bad_inputs.all():
            first = int(np.flatnonzero(bad)[~bad_inputs][0])
            raise InvalidInputError(
                f"The model returned NaN or infinite outputs for {int((~bad_inputs).sum())} samples whose inputs are "
                f"finite (first at row {first}); check the model's numerics."
            )
        if bad.all():
            raise InvalidInputError("Every input sample holds NaN or infinite values, so the model has nothing to predict on.")
        good_probs, kind = predictions_to_probs(raw[~bad], "the model's output", kind)
        probs = np.full((len(raw), good_probs.shape[1]), 1.0 / good_probs.shape[1])
        probs[~bad] = good_probs
        return probs, kind

    def predict_probs(self, x: np.ndarray, progress: bool = False) -> np.ndarray:
        """Run the model on ``x`` and return probabilities of shape (n_samples, n_classes)."""
        return self.run_model(x, progress)[0]

    def labelled(self, *names: str) -> list[SplitData]:
        """The splits among ``names`` that have both labels and predictions."""
        return [s for n in names if (s := self.splits.get(n)) is not None and s.y is not None and s.probs is not None]
