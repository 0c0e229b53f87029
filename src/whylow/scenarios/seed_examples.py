"""The seed's Examples 2 and 3 ("Why are CNN predictions so low?"), reproduced with Keras 3 on the torch backend.

Both keep the seed's data generation, models, optimiser (Adam, lr 1e-3),
loss, epochs (10) and batch size (Keras' default 32); the differences are
only what reproducibility and Keras 3 require:

* random numbers come from ``numpy.random.default_rng(seed)`` instead of the
  global ``np.random`` state, and Keras is seeded with
  ``keras.utils.set_random_seed(seed)`` (the global Python / numpy / torch
  states are restored afterwards, so building a scenario changes nothing for
  the caller), and training runs on one torch thread (restored afterwards);
* models start with ``keras.Input(shape)`` instead of the deprecated
  ``input_shape=`` argument;
* each model gets its own ``Adam(1e-3)``: a Keras 3 optimiser is bound to the
  variables it was first built with, so the seed's shared instance cannot
  train two models.

``seed-2`` (over-parametrised vs reduced model): the seed gives ``X_test`` no
labels; here ``y_test`` is drawn the same way as ``y_train`` (random
``{0, 1}``), so both are pure noise and the right diagnosis is ``no-signal``.
The scenario's model is the over-parametrised one; ``notes`` carries both
models and their test predictions (``notes["models"]``,
``notes["test_predictions"]``, ``notes["reduced_model"]``) for
``whylow compare``, and each model's mean distance of its predictions from
0.5 (``notes["mean_abs_margin"]``), the seed's "closer to 0 or 1".

``seed-3`` (evaluation misinterpretation): 1,000 uniform 5-feature rows, 900
labelled 0 then 100 labelled 1 (so the labels carry no information about
the features), ``train_test_split(test_size=0.2, random_state=42 + seed)``.
Accuracy equals always answering 0: the right diagnosis is
``misleading-metric``, with balanced accuracy, log-loss and Brier score in
its evidence.
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np

from whylow.errors import require
from whylow.inputs import Split
from whylow.scenarios import Scenario, scenario

__all__ = ["seed_2", "seed_3", "keras_backend"]


def keras_backend():
    """Import Keras on the torch backend (``KERAS_BACKEND`` is set to ``torch`` unless already set)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras", "keras")


@contextlib.contextmanager
def _seeded(keras, seed: int):
    """Seed Keras and train on one torch thread; restore the global random states and thread count afterwards.

    Tiny dense models train about 10× faster on one thread than on two busy
    ones (thread synchronisation dominates such small matrix products).
    """
    torch = require("torch", "torch")
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    threads = torch.get_num_threads()
    keras.utils.set_random_seed(seed)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


def _dense(keras, n_features: int, hidden: tuple[int, ...]):
    layers = [keras.Input(shape=(n_features,))]
    layers += [keras.layers.Dense(h, activation="relu") for h in hidden]
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _predict(model, x: np.ndarray) -> np.ndarray:
    """Sigmoid outputs of shape (n_samples,), float64."""
    return np.asarray(model.predict(x, verbose=0), dtype=np.float64).reshape(-1)


@scenario("seed-2", "no-signal", "Seed Example 2: over-parametrised vs reduced Keras MLP on random labels; no signal, the big model is more extreme.")
def seed_2(seed: int = 0, epochs: int = 10) -> Scenario:
    """Build the seed's Example 2.

    Parameters
    ----------
    seed : int
    epochs : int
        Training epochs of both models (the seed's 10).

    Returns
    -------
    Scenario
        ``model`` is the over-parametrised model (256-128-64-1), ``history``
        its Keras history; ``notes`` holds the reduced model (64-1) and both
        models' test predictions.
    """
    keras = keras_backend()
    rng = np.random.default_rng(seed)
    x_train = rng.random((1000, 10)).astype(np.float32)
    y_train = rng.integers(0, 2, 1000).astype(np.int64)
    x_test = rng.random((200, 10)).astype(np.float32)
    y_test = rng.integers(0, 2, 200).astype(np.int64)  # the seed has no test labels: drawn the same way
    with _seeded(keras, seed):
        model_over = _dense(keras, 10, (256, 128, 64))
        model_reduced = _dense(keras, 10, (64,))
        hist_over = model_over.fit(x_train, y_train, epochs=epochs, verbose=0)
        hist_reduced = model_reduced.fit(x_train, y_train, epochs=epochs, verbose=0)
        over_test, reduced_test = _predict(model_over, x_test), _predict(model_reduced, x_test)
        over_train = _predict(model_over, x_train)
    return Scenario(
        name="seed-2",
        expected="no-signal",
        train=Split(x=x_train, y=y_train, probs=over_train, layout="tabular"),
        test=Split(x=x_test, y=y_test, probs=over_test, layout="tabular"),
        model=model_over,
        history={k: [float(v) for v in vals] for k, vals in hist_over.history.items()},
        class_names=["0", "1"],
        notes={
            "fault": "labels independent of the features (the seed's random data)",
            "models": {"over-parametrised": model_over, "reduced": model_reduced},
            "reduced_model": model_reduced,
            "reduced_history": {k: [float(v) for v in vals] for k, vals in hist_reduced.history.items()},
            "test_predictions": {"over-parametrised": over_test, "reduced": reduced_test},
            "mean_abs_margin": {
                "over-parametrised": float(np.abs(over_test - 0.5).mean()),
                "reduced": float(np.abs(reduced_test - 0.5).mean()),
            },
            "seed": seed,
        },
    )


@scenario("seed-3", "misleading-metric", "Seed Example 3: a Keras MLP on 90/10 labels its features do not predict; accuracy equals the majority baseline.")
def seed_3(seed: int = 0, epochs: int = 10) -> Scenario:
    """Build the seed's Example 3.

    Parameters
    ----------
    seed : int
    epochs : int
        Training epochs (the seed's 10).
    """
    keras = keras_backend()
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    x = rng.random((1000, 5)).astype(np.float32)
    y = np.concatenate([np.zeros(900), np.ones(100)]).astype(np.int64)  # 90% class 0, 10% class 1
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42 + seed)
    with _seeded(keras, seed):
        model = _dense(keras, 5, (32,))
        hist = model.fit(x_train, y_train, epochs=epochs, verbose=0)
        test_probs, train_probs = _predict(model, x_test), _predict(model, x_train)
    return Scenario(
        name="seed-3",
        expected="misleading-metric",
        train=Split(x=x_train, y=y_train, probs=train_probs, layout="tabular"),
        test=Split(x=x_test, y=y_test, probs=test_probs, layout="tabular"),
        model=model,
        history={k: [float(v) for v in vals] for k, vals in hist.history.items()},
        class_names=["0", "1"],
        notes={
            "fault": "accuracy reported on 90/10 data; labels independent of the features",
            "seed_printout": {
                "accuracy": float(np.mean((test_probs > 0.5).astype(int) == y_test)),
                "log_loss": float(-np.mean(y_test * np.log(np.clip(test_probs, 1e-15, 1)) + (1 - y_test) * np.log(np.clip(1 - test_probs, 1e-15, 1)))),
                "brier": float(np.mean((test_probs - y_test) ** 2)),
            },
            "seed": seed,
        },
    )
