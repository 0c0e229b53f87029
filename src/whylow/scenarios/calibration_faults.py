"""Scenarios for the model-side score faults: ``overconfidence``, ``underconfidence``, ``decision-threshold``.

Each injects its fault through the way the model is trained, not by editing
its outputs afterwards:

- ``overconfidence``: the healthy CNN deployed with its logits multiplied by
  3 (a sharpening temperature left in the exported model): as accurate as
  before, far surer of itself. Temperature scaling undoes it exactly.
- ``memorised`` (``overfitting``): a CNN with a wide dense head, trained 100
  epochs with no regularisation on 10 images per class. It memorises them
  (training loss near 0), its logits keep growing, and on held-out digits it
  claims ~97% confidence while being right ~90% of the time: overconfidence
  as a consequence of the overfitting.
- ``underconfidence``: a CNN trained with label smoothing 0.4. It classifies
  ~96% of test digits correctly but its top score averages ~0.5: low
  predictions that are right.
- ``decision-threshold``: a binary task on digits ("is it a 1, 4 or 7",
  30% positive in every split, so no prior shift and a mild 2.3× imbalance),
  with sensor-like pixel noise so the classes overlap, trained with the
  positive class down-weighted (loss weight 0.3, e.g. a cost weight carried
  over from another project). Its scores are shifted down, so the 0.5
  threshold misses many positives; a lower threshold recovers balanced
  accuracy.
"""

from __future__ import annotations

import numpy as np

from whylow.inputs import Split
from whylow.scenarios import Scenario, scenario
from whylow.scenarios.base import digits_images, digits_splits, healthy_digits, make_cnn, split_indices, train_torch

__all__ = ["decision_threshold_digits", "memorised_cnn", "overconfident_cnn", "underconfident_cnn", "wide_head_cnn"]


def wide_head_cnn(in_channels: int = 1, n_classes: int = 10, width: int = 16, size: int = 16, seed: int = 0):
    """Two conv blocks and a dense head on the full 8×8 feature map (no pooling): many parameters, easy to memorise with."""
    return make_cnn(in_channels, n_classes, width=width, seed=seed, dense_head=size)


def _per_class_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == k))[:per_class] for k in np.unique(y)]
    return np.sort(np.concatenate(keep))


@scenario(
    "memorised",
    "overfitting",
    "A wide-head CNN trained 100 epochs without regularisation on 10 digits per class: it memorises them, and its held-out confidence far exceeds its accuracy.",
)
def memorised_cnn(seed: int = 0, per_class: int = 10, epochs: int = 100, width: int = 16) -> Scenario:
    """Overfitting by memorising a small training set (no weight decay, no early stopping); overconfidence is its consequence."""
    (xtr, ytr), (xva, yva), (xte, yte) = digits_splits(seed)
    idx = _per_class_subset(ytr, per_class, seed)
    xtr, ytr = xtr[idx], ytr[idx]
    model = wide_head_cnn(1, 10, width, seed=seed)
    history = train_torch(model, xtr, ytr, x_val=xva, y_val=yva, epochs=epochs, lr=3e-3, seed=seed)
    return Scenario(
        name="memorised",
        expected="overfitting",
        train=Split(x=xtr, y=ytr),
        val=Split(x=xva, y=yva),
        test=Split(x=xte, y=yte),
        model=model,
        history=history,
        class_names=[str(k) for k in range(10)],
        notes={
            "fault": "overfitting (memorisation)",
            "mechanism": f"{per_class} training images per class, {epochs} epochs, Adam lr 3e-3, no weight decay, no early stopping",
            "architecture": f"wide-head cnn width {width}",
            "related": ["overconfidence"],
            "seed": seed,
        },
    )


@scenario(
    "overconfidence",
    "overconfidence",
    "The healthy CNN deployed with its logits multiplied by 3 (a sharpening temperature left in the exported model): right as often, far surer.",
)
def overconfident_cnn(seed: int = 0, magnitude: float = 3.0) -> Scenario:
    """A well-trained CNN whose deployed logits are ``magnitude`` times too large: pure overconfidence, no overfitting."""
    import copy

    import torch

    healthy = healthy_digits(seed=seed)
    model = copy.deepcopy(healthy.model)
    head = model[-1]
    with torch.no_grad():
        head.weight.mul_(float(magnitude))
        head.bias.mul_(float(magnitude))
    return Scenario(
        name="overconfidence",
        expected="overconfidence",
        train=healthy.train,
        val=healthy.val,
        test=healthy.test,
        model=model,
        history=healthy.history,
        class_names=healthy.class_names,
        notes={
            "fault": "overconfidence",
            "mechanism": f"the healthy CNN's final layer multiplied by {magnitude:g} after training (softmax temperature 1/{magnitude:g} left in the deployed model)",
            "seed": seed,
        },
    )


@scenario(
    "underconfidence",
    "underconfidence",
    "A CNN trained with label smoothing 0.4: it is right ~96% of the time but its top score averages ~0.5.",
)
def underconfident_cnn(seed: int = 0, label_smoothing: float = 0.4, width: int = 16, epochs: int = 15) -> Scenario:
    """Underconfidence from strong label smoothing."""
    (xtr, ytr), (xva, yva), (xte, yte) = digits_splits(seed)
    model = make_cnn(1, 10, width=width, seed=seed)
    history = train_torch(model, xtr, ytr, x_val=xva, y_val=yva, epochs=epochs, label_smoothing=label_smoothing, seed=seed)
    return Scenario(
        name="underconfidence",
        expected="underconfidence",
        train=Split(x=xtr, y=ytr),
        val=Split(x=xva, y=yva),
        test=Split(x=xte, y=yte),
        model=model,
        history=history,
        class_names=[str(k) for k in range(10)],
        notes={"fault": "underconfidence", "label_smoothing": label_smoothing, "architecture": f"cnn width {width}", "seed": seed},
    )


@scenario(
    "decision-threshold",
    "decision-threshold",
    "Binary 'is it a 1, 4 or 7' on noisy digits, trained with the positive class down-weighted: 0.5 is far too high a threshold.",
)
def decision_threshold_digits(
    seed: int = 0,
    positives: tuple[int, ...] = (1, 4, 7),
    positive_weight: float = 0.3,
    noise: float = 0.3,
    width: int = 16,
    epochs: int = 20,
) -> Scenario:
    """A misplaced binary decision threshold from a down-weighted positive class (cost weight)."""
    x, y10 = digits_images(16)
    x = x[:, None].astype(np.float32) / 255.0
    rng = np.random.default_rng(seed + 7)
    x = np.clip(x + rng.normal(0.0, noise, x.shape).astype(np.float32), 0.0, 1.0)  # the same sensor noise in every split
    y = np.isin(y10, positives).astype(np.int64)
    tr, va, te = split_indices(y10, (0.4, 0.2, 0.4), seed=seed)  # a large test split: the gain is measured on it
    model = make_cnn(1, 2, width=width, seed=seed)
    history = train_torch(
        model,
        x[tr],
        y[tr],
        x_val=x[va],
        y_val=y[va],
        epochs=epochs,
        class_weights=np.array([1.0, positive_weight]),
        seed=seed,
    )
    name = "/".join(str(p) for p in positives)
    return Scenario(
        name="decision-threshold",
        expected="decision-threshold",
        train=Split(x=x[tr], y=y[tr]),
        val=Split(x=x[va], y=y[va]),
        test=Split(x=x[te], y=y[te]),
        model=model,
        history=history,
        class_names=["other", name],
        notes={
            "fault": "decision-threshold",
            "positives": list(positives),
            "positive_rate": float(y.mean()),
            "positive_loss_weight": positive_weight,
            "pixel_noise_sd": noise,
            "seed": seed,
        },
    )
