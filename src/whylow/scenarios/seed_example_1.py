"""The seed's Example 1 ("Dataset Bias"), reproduced with Keras 3 on the torch backend.

The seed builds random 64×64×3 images with random binary labels, brightens
the training images by 0.2 and the test images by 0.05, then divides the
training images by 255 and the test images by 127, and trains its CNN
(Conv 32 - pool - Conv 64 - pool - Dense(1, sigmoid), Adam 1e-3, binary
cross-entropy). Kept exactly: the data generation, the two brightness
offsets and the two divisors, the architecture, optimiser and loss.
Changed for speed and reproducibility (recorded in ``notes``):

* 400 training images (the seed: 1,000) and 3 epochs (the seed: 10), so a
  build takes seconds on a CPU; the labels are random either way, so more
  data or epochs would not add signal;
* random numbers come from ``numpy.random.default_rng(seed)``, Keras is
  seeded and trains on one torch thread (global states restored);
* the model starts with ``keras.Input`` instead of ``input_shape=``; the
  seed's test set has no use for its labels, here they are drawn the same
  way as the training labels so the diagnosis can score the model.

The right diagnosis has three parts, which whylow must tell apart:

* ``no-signal``: the labels are random, so nothing can be learnt (on top);
* ``preprocessing-mismatch``: test inputs are 255/127 ≈ 2.008× the training
  inputs (divided by 127, not 255);
* a brightness difference: once that scale is undone, test inputs are
  still darker by 0.15/255 (the 0.2 vs 0.05 offsets), i.e. about half a
  training pixel standard deviation. It is named in the preprocessing
  finding's evidence and judged by ``covariate-shift`` on the test inputs
  with the scale undone.
"""

from __future__ import annotations

import numpy as np

from whylow.inputs import Split
from whylow.scenarios import Scenario, scenario
from whylow.scenarios.seed_examples import _seeded, keras_backend

__all__ = ["seed_1", "seed_1_data"]


def seed_1_data(seed: int = 0, n_train: int = 400, n_test: int = 200, image_size: int = 64):
    """The seed's synthetic data: ``((x_train, y_train), (x_test, y_test))`` as float32 NHWC and int64 labels."""
    rng = np.random.default_rng(seed)
    x_train = rng.random((n_train, image_size, image_size, 3))
    y_train = rng.integers(0, 2, n_train)
    x_test = rng.random((n_test, image_size, image_size, 3))
    y_test = rng.integers(0, 2, n_test)
    x_train = (x_train + 0.2) / 255.0  # brightened, then normalised by 255
    x_test = (x_test + 0.05) / 127.0  # slightly darker, then normalised by 127
    return (x_train.astype(np.float32), y_train.astype(np.int64)), (x_test.astype(np.float32), y_test.astype(np.int64))


@scenario(
    "seed-1",
    "no-signal",
    "Seed Example 1: Keras CNN on random labels; train brightened +0.2 and /255, test +0.05 and /127.",
)
def seed_1(seed: int = 0, n_train: int = 400, n_test: int = 200, epochs: int = 3, image_size: int = 64) -> Scenario:
    """Build the seed's Example 1.

    Parameters
    ----------
    seed : int
    n_train, n_test : int
        Numbers of images (the seed: 1,000 and 200).
    epochs : int
        Training epochs (the seed: 10).
    image_size : int
        Side of the square images (the seed: 64).

    Returns
    -------
    Scenario
        The Keras model is given as ``model`` (whylow runs it on both
        splits); ``history`` is its Keras history.
    """
    keras = keras_backend()
    (x_train, y_train), (x_test, y_test) = seed_1_data(seed, n_train, n_test, image_size)
    with _seeded(keras, seed):
        model = keras.Sequential(
            [
                keras.Input(shape=(image_size, image_size, 3)),
                keras.layers.Conv2D(32, (3, 3), activation="relu"),
                keras.layers.MaxPooling2D((2, 2)),
                keras.layers.Conv2D(64, (3, 3), activation="relu"),
                keras.layers.MaxPooling2D((2, 2)),
                keras.layers.Flatten(),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="binary_crossentropy", metrics=["accuracy"])
        history = model.fit(x_train, y_train, epochs=epochs, verbose=0)
    return Scenario(
        name="seed-1",
        expected="no-signal",
        train=Split(x=x_train, y=y_train),
        test=Split(x=x_test, y=y_test),
        model=model,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        class_names=["0", "1"],
        notes={
            "fault": "random labels; test divided by 127 instead of 255; training brightened by 0.2, test by 0.05",
            "expected_findings": ["no-signal", "preprocessing-mismatch", "covariate-shift (brightness, after undoing the scale)"],
            "changes_from_seed": f"{n_train} training images instead of 1,000 and {epochs} epochs instead of 10, for speed",
            "seed": seed,
        },
    )
