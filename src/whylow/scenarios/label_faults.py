"""Label-side fault scenarios: class imbalance, label shift, label noise, train-test leakage.

Every scenario trains the small digits CNN of `whylow.scenarios.base` on
real images with one fault injected, and takes a ``magnitude``:

* ``imbalance`` — ``n_minority`` classes are subsampled ``magnitude``× in the
  training and validation splits; the test split stays balanced.
* ``label-shift`` — training data balanced; test class priors geometric with
  max/min ratio ``magnitude`` (test images subsampled without replacement, so
  no test image repeats). ``test_labels=False`` drops the test labels so the
  priors must be estimated from predictions.
* ``label-noise`` — a fraction ``magnitude`` of labels flipped uniformly to
  another class. ``where`` picks the noisy splits: ``"both"`` (default: the
  whole dataset came from one noisy labelling process; the model learns
  from noisy labels and is scored on noisy labels), ``"test"`` (a healthy
  model scored on noisy evaluation labels: the clearest case, since every
  "error" of the model there is a wrong label) or ``"train"`` (training and
  validation labels noisy, test clean: the symptom on test is an
  underconfident model).
* ``leakage`` — a fraction ``magnitude`` of test images replaced by copies of
  distinct training images (with their labels): half exact, half with
  Gaussian noise of standard deviation ``noise`` grey levels on the stroke
  pixels (kept on the 0-255 grid, so the background stays exactly black and
  the test split's image statistics barely move).
"""

from __future__ import annotations

import numpy as np

from whylow.inputs import Split
from whylow.scenarios import Scenario, scenario
from whylow.scenarios.base import digits_images, make_cnn, split_indices, train_torch

__all__ = ["imbalance", "label_shift", "label_noise", "leakage"]

_NAMES = [str(k) for k in range(10)]


def _digits(seed: int, fractions=(0.6, 0.2, 0.2)):
    """Digits as float32 N×1×16×16 in [0, 1], labels, and stratified split indices."""
    x, y = digits_images(16)
    x = x[:, None].astype(np.float32) / 255.0
    return x, y, split_indices(y, fractions, seed=seed)


def _train(xtr, ytr, xva, yva, seed: int, epochs: int = 15):
    model = make_cnn(1, 10, width=16, seed=seed)
    history = train_torch(model, xtr, ytr, x_val=xva, y_val=yva, epochs=epochs, seed=seed)
    return model, history


def _subsample_classes(idx: np.ndarray, y: np.ndarray, classes, factor: float, rng) -> np.ndarray:
    keep = []
    for k in np.unique(y[idx]):
        members = idx[y[idx] == k]
        if k in classes:
            members = rng.choice(members, size=max(2, int(np.ceil(len(members) / factor))), replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep))


@scenario("imbalance", "class-imbalance", "A few training classes subsampled 20-50×; test balanced: minority classes are under-predicted.")
def imbalance(seed: int = 0, magnitude: float = 30.0, n_minority: int = 4) -> Scenario:
    """Build the class-imbalance scenario.

    Parameters
    ----------
    seed : int
    magnitude : float
        Subsampling factor of the minority classes in training (and validation) data.
    n_minority : int
        Number of minority classes.
    """
    rng = np.random.default_rng(seed)
    x, y, (tr, va, te) = _digits(seed)
    minority = np.sort(rng.choice(10, size=n_minority, replace=False))
    tr = _subsample_classes(tr, y, set(minority.tolist()), magnitude, rng)
    va = _subsample_classes(va, y, set(minority.tolist()), magnitude, rng)
    model, history = _train(x[tr], y[tr], x[va], y[va], seed)
    return Scenario(
        name="imbalance",
        expected="class-imbalance",
        train=Split(x=x[tr], y=y[tr]),
        val=Split(x=x[va], y=y[va]),
        test=Split(x=x[te], y=y[te]),
        model=model,
        history=history,
        class_names=_NAMES,
        notes={"fault": "class imbalance", "magnitude": magnitude, "minority_classes": minority.tolist(),
               "train_counts": np.bincount(y[tr], minlength=10).tolist(), "seed": seed},
    )


@scenario("label-shift", "label-shift", "Balanced training data; test class priors strongly skewed; the model itself is healthy.")
def label_shift(seed: int = 0, magnitude: float = 15.0, test_labels: bool = True) -> Scenario:
    """Build the label-shift scenario.

    Parameters
    ----------
    seed : int
    magnitude : float
        Ratio of the largest to the smallest test class prior.
    test_labels : bool
        Keep the test labels; without them the priors are estimated from predictions.
    """
    rng = np.random.default_rng(seed)
    x, y, (tr, va, pool) = _digits(seed, fractions=(0.5, 0.15, 0.35))
    order = rng.permutation(10)
    q = magnitude ** (-np.arange(10) / 9.0)
    priors = np.empty(10)
    priors[order] = q / q.sum()
    per_class = min(np.bincount(y[pool], minlength=10))
    counts = np.maximum(2, np.round(per_class * priors / priors.max())).astype(int)
    te = np.sort(np.concatenate([rng.choice(pool[y[pool] == k], size=counts[k], replace=False) for k in range(10)]))
    model, history = _train(x[tr], y[tr], x[va], y[va], seed)
    return Scenario(
        name="label-shift",
        expected="label-shift",
        train=Split(x=x[tr], y=y[tr]),
        val=Split(x=x[va], y=y[va]),
        test=Split(x=x[te], y=y[te] if test_labels else None),
        model=model,
        history=history,
        class_names=_NAMES,
        notes={"fault": "label shift", "magnitude": magnitude, "test_priors": (counts / counts.sum()).round(4).tolist(),
               "test_labels": test_labels, "seed": seed},
    )


def flip_labels(y: np.ndarray, fraction: float, n_classes: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``fraction`` of the labels uniformly to another class.

    Returns
    -------
    y_noisy : ndarray of shape (n_samples,)
    flipped : ndarray of int64
        Indices whose label changed.
    """
    y = y.copy()
    flipped = np.sort(rng.choice(len(y), size=int(round(fraction * len(y))), replace=False))
    y[flipped] = (y[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return y, flipped


@scenario("label-noise", "label-noise", "30% of labels flipped (training and evaluation); the model learnt from noisy labels.")
def label_noise(seed: int = 0, magnitude: float = 0.3, where: str = "both") -> Scenario:
    """Build the label-noise scenario.

    Parameters
    ----------
    seed : int
    magnitude : float
        Fraction of labels flipped in each noisy split.
    where : {"both", "train", "test"}
        Which labels are noisy: training and validation (``"train"``), test
        (``"test"``), or all (``"both"``).
    """
    if where not in ("both", "train", "test"):
        from whylow.errors import InvalidInputError

        raise InvalidInputError(f"where must be 'both', 'train' or 'test', got {where!r}.")
    rng = np.random.default_rng(seed)
    x, y, (tr, va, te) = _digits(seed)
    ytr, yva, yte = y[tr], y[va], y[te]
    flipped = {}
    if where in ("both", "train"):
        ytr, flipped["train"] = flip_labels(ytr, magnitude, 10, rng)
        yva, flipped["val"] = flip_labels(yva, magnitude, 10, rng)
    if where in ("both", "test"):
        yte, flipped["test"] = flip_labels(yte, magnitude, 10, rng)
    model, history = _train(x[tr], ytr, x[va], yva, seed)
    return Scenario(
        name="label-noise",
        expected="label-noise",
        train=Split(x=x[tr], y=ytr),
        val=Split(x=x[va], y=yva),
        test=Split(x=x[te], y=yte),
        model=model,
        history=history,
        class_names=_NAMES,
        notes={"fault": "label noise", "magnitude": magnitude, "where": where,
               "flipped": {k: v.tolist() for k, v in flipped.items()}, "seed": seed},
    )


@scenario("leakage", "train-test-leakage", "A quarter of the test images are copies of training images (half exact, half slightly noisy).")
def leakage(seed: int = 0, magnitude: float = 0.25, noise: float = 1.0) -> Scenario:
    """Build the train-test leakage scenario.

    Parameters
    ----------
    seed : int
    magnitude : float
        Fraction of test images replaced by training images.
    noise : float
        Standard deviation of the Gaussian noise added to half of the copies' stroke pixels, in 0-255 grey levels.
    """
    rng = np.random.default_rng(seed)
    x, y, (tr, va, te) = _digits(seed)
    xte, yte = x[te].copy(), y[te].copy()
    n_copy = int(round(magnitude * len(te)))
    slots = np.sort(rng.choice(len(te), size=n_copy, replace=False))
    sources = rng.choice(len(tr), size=n_copy, replace=False)
    copies = x[tr][sources].copy()
    # the second half of the copies get pixel noise on the stroke (background stays exact), on the uint8 grid
    half = n_copy // 2
    jitter = rng.normal(0.0, noise, size=(n_copy - half, *x.shape[1:])) * (copies[half:] > 0)
    copies[half:] = np.clip(np.round(copies[half:] * 255.0 + jitter), 0, 255).astype(np.float32) / 255.0
    xte[slots] = copies
    yte[slots] = y[tr][sources]
    model, history = _train(x[tr], y[tr], x[va], y[va], seed)
    return Scenario(
        name="leakage",
        expected="train-test-leakage",
        train=Split(x=x[tr], y=y[tr]),
        val=Split(x=x[va], y=y[va]),
        test=Split(x=xte, y=yte),
        model=model,
        history=history,
        class_names=_NAMES,
        notes={"fault": "train-test leakage", "magnitude": magnitude, "noise": noise,
               "test_slots": slots.tolist(), "train_sources": sources.tolist(), "seed": seed},
    )
