"""Model-side fault scenarios: underfitting, overfitting, no signal, learning rate, misleading metric, small sample.

Every scenario trains the small digits CNN of `whylow.scenarios.base` on
real images (scikit-learn's digits, 16×16) with one fault injected:

* ``underfitting`` — a CNN of width ``width`` (1: one 3×3 filter, then two)
  trained to a plateau: it cannot fit its own training data.
* ``overfitting`` — a wide CNN (``width`` 32) trained for ``epochs`` (100) on
  only ``n_train`` (150) examples: training accuracy ~99%, validation ~86%;
  the validation loss bottoms out (epoch ~60-85) and rises while the training
  loss keeps falling. At Adam lr 3e-3 the held-out scores stay moderately
  calibrated, so the accuracy gap, not overconfidence, is the main symptom
  (at lr 1e-2 the logits grow faster and temperature scaling recovers 20% of
  the log-loss, which the calibration check then reports as critical).
* ``no-signal`` — every label (train, val, test) drawn uniformly at random,
  independent of the image.
* ``learning-rate`` — the healthy CNN trained with Adam at ``lr`` 0.5 (the
  healthy one uses 3e-3): the loss explodes in the first epoch and the
  network never recovers.
* ``misleading-metric`` — a binary task with ``positive_rate`` 10% positives
  whose labels the images do not predict; the CNN answers "negative" for
  everything and its accuracy equals the majority baseline.
* ``small-sample`` — the healthy CNN evaluated on ``n_test`` (40) test images.
"""

from __future__ import annotations

import numpy as np

from whylow.inputs import Split
from whylow.scenarios import Scenario, scenario
from whylow.scenarios.base import digits_splits, make_cnn, split_indices, train_torch

__all__ = ["underfitting", "overfitting", "no_signal", "learning_rate", "misleading_metric", "small_sample"]

_NAMES = [str(k) for k in range(10)]


def _splits(seed: int):
    return digits_splits(seed)


def _scenario(name, expected, train, val, test, model, history, class_names, notes) -> Scenario:
    return Scenario(
        name=name,
        expected=expected,
        train=Split(x=train[0], y=train[1]),
        val=Split(x=val[0], y=val[1]),
        test=Split(x=test[0], y=test[1]),
        model=model,
        history=history,
        class_names=class_names,
        notes=notes,
    )


@scenario("underfitting", "underfitting", "A CNN with a single 3×3 filter trained to a plateau: it cannot fit even its training data.")
def underfitting(seed: int = 0, width: int = 1, epochs: int = 20, lr: float = 1e-2) -> Scenario:
    """Build the underfitting scenario.

    Parameters
    ----------
    seed : int
    width : int
        Filters of the first conv layer (the healthy CNN has 16).
    epochs, lr : int, float
        Enough training for the loss to level off, so the fault is capacity, not training time.
    """
    tr, va, te = _splits(seed)
    model = make_cnn(1, 10, width=width, seed=seed)
    history = train_torch(model, *tr, x_val=va[0], y_val=va[1], epochs=epochs, lr=lr, seed=seed)
    return _scenario("underfitting", "underfitting", tr, va, te, model, history, _NAMES,
                     {"fault": "capacity", "width": width, "healthy_width": 16, "epochs": epochs, "lr": lr, "seed": seed})


@scenario("overfitting", "overfitting", "A wide CNN trained 100 epochs on 150 examples: ~99% on train, ~86% held out, val loss rising.")
def overfitting(seed: int = 0, n_train: int = 150, width: int = 32, epochs: int = 100, lr: float = 3e-3) -> Scenario:
    """Build the overfitting scenario.

    Parameters
    ----------
    seed : int
    n_train : int
        Training examples kept (stratified) out of about 1,080.
    width : int
        Filters of the first conv layer.
    epochs, lr : int, float
    """
    (xtr, ytr), va, te = _splits(seed)
    keep = split_indices(ytr, fractions=(n_train, len(ytr) - n_train), seed=seed)[0]
    tr = (xtr[keep], ytr[keep])
    model = make_cnn(1, 10, width=width, seed=seed)
    history = train_torch(model, *tr, x_val=va[0], y_val=va[1], epochs=epochs, lr=lr, seed=seed)
    return _scenario("overfitting", "overfitting", tr, va, te, model, history, _NAMES,
                     {"fault": "small training set, big model, long training", "n_train": int(len(keep)), "width": width,
                      "epochs": epochs, "seed": seed})


@scenario("no-signal", "no-signal", "Every label drawn at random, independent of its image: nothing to learn.")
def no_signal(seed: int = 0, epochs: int = 15) -> Scenario:
    """Build the no-signal scenario: the digits images with uniformly random labels in every split."""
    tr, va, te = _splits(seed)
    rng = np.random.default_rng(seed + 1000)
    tr, va, te = ((x, rng.integers(0, 10, size=len(y)).astype(np.int64)) for x, y in (tr, va, te))
    model = make_cnn(1, 10, width=16, seed=seed)
    history = train_torch(model, *tr, x_val=va[0], y_val=va[1], epochs=epochs, seed=seed)
    return _scenario("no-signal", "no-signal", tr, va, te, model, history, _NAMES,
                     {"fault": "labels random, independent of the inputs", "seed": seed})


@scenario("learning-rate", "learning-rate", "The healthy CNN trained with Adam at lr=0.5: the loss explodes, then the network is stuck.")
def learning_rate(seed: int = 0, lr: float = 0.5, epochs: int = 15) -> Scenario:
    """Build the learning-rate scenario.

    Parameters
    ----------
    seed : int
    lr : float
        Adam learning rate (the healthy scenario uses 3e-3).
    epochs : int
    """
    tr, va, te = _splits(seed)
    model = make_cnn(1, 10, width=16, seed=seed)
    history = train_torch(model, *tr, x_val=va[0], y_val=va[1], epochs=epochs, lr=lr, seed=seed)
    return _scenario("learning-rate", "learning-rate", tr, va, te, model, history, _NAMES,
                     {"fault": "learning rate too high", "lr": lr, "healthy_lr": 3e-3, "seed": seed})


@scenario("misleading-metric", "misleading-metric",
          "A 90/10 binary task the images do not predict: accuracy 0.90 equals always answering the majority class.")
def misleading_metric(seed: int = 0, positive_rate: float = 0.1, epochs: int = 15) -> Scenario:
    """Build the misleading-metric scenario.

    Parameters
    ----------
    seed : int
    positive_rate : float
        Fraction of positive labels, drawn independently of the image.
    epochs : int
    """
    tr, va, te = _splits(seed)
    rng = np.random.default_rng(seed + 2000)
    tr, va, te = ((x, (rng.random(len(y)) < positive_rate).astype(np.int64)) for x, y in (tr, va, te))
    model = make_cnn(1, 2, width=16, seed=seed)
    history = train_torch(model, *tr, x_val=va[0], y_val=va[1], epochs=epochs, seed=seed)
    return _scenario("misleading-metric", "misleading-metric", tr, va, te, model, history, ["negative", "positive"],
                     {"fault": "accuracy reported on imbalanced data", "positive_rate": positive_rate, "seed": seed})


@scenario("small-sample", "small-sample", "The healthy CNN evaluated on only 40 test images: its accuracy is known to within ±7 points at best.")
def small_sample(seed: int = 0, n_test: int = 40, epochs: int = 15) -> Scenario:
    """Build the small-sample scenario.

    Parameters
    ----------
    seed : int
    n_test : int
        Test images kept (stratified) out of about 360.
    epochs : int
    """
    tr, va, (xte, yte) = _splits(seed)
    keep = split_indices(yte, fractions=(n_test, len(yte) - n_test), seed=seed)[0]
    model = make_cnn(1, 10, width=16, seed=seed)
    history = train_torch(model, *tr, x_val=va[0], y_val=va[1], epochs=epochs, seed=seed)
    return _scenario("small-sample", "small-sample", tr, va, (xte[keep], yte[keep]), model, history, _NAMES,
                     {"fault": "tiny evaluation split", "n_test": int(len(keep)), "seed": seed})
