"""Input-side fault scenarios: a small CNN trained on correctly preprocessed digits, a fault in the inputs.

Every scenario trains the CNN of `whylow.scenarios.base` on clean training
data (float32 in [0, 1], N×C×H×W) and injects its fault into the test
inputs only (``data-quality`` also into the training split). ``magnitude``
sets the size of the fault; each builder documents its meaning.

=======================  ========================  =========================================================
scenario                 expected code             fault (magnitude)
=======================  ========================  =========================================================
normalisation            preprocessing-mismatch    test scaled by ``magnitude`` (255/127: divided by 127 not 255; 255: left 0-255 uint8)
missing-normalisation    preprocessing-mismatch    train mean/std normalised, test raw (``magnitude`` 1 = fully missing)
channel-order            preprocessing-mismatch    RGB train on blue paper, BGR test (``magnitude`` 1 = fully swapped)
lighting                 covariate-shift           gamma ``1 - magnitude/2`` and random per-image gain and lift
blur                     covariate-shift           Gaussian blur of ``magnitude`` pixels
data-quality             data-quality              ``magnitude`` fraction of NaN / duplicate-conflicting train, blank test
=======================  ========================  =========================================================
"""

from __future__ import annotations

import numpy as np

from whylow.inputs import Split
from whylow.scenarios import Scenario, scenario
from whylow.scenarios.base import digits_splits, make_cnn, torch_probs, train_torch

__all__ = [
    "normalisation_scenario",
    "missing_normalisation_scenario",
    "channel_order_scenario",
    "lighting_scenario",
    "blur_scenario",
    "data_quality_scenario",
]

_CLASSES = [str(k) for k in range(10)]


def _trained(seed: int, rgb: bool = False, epochs: int = 15, width: int = 16, train_x=None, val_x=None):
    """Clean digits splits and a CNN trained on (optionally transformed) training inputs."""
    (xtr, ytr), (xva, yva), (xte, yte) = digits_splits(seed, rgb=rgb)
    xtr_fit = xtr if train_x is None else train_x(xtr)
    xva_fit = xva if val_x is None else val_x(xva)
    model = make_cnn(xtr.shape[1], 10, width=width, seed=seed)
    history = train_torch(model, xtr_fit, ytr, x_val=xva_fit, y_val=yva, epochs=epochs, seed=seed)
    return (xtr, ytr), (xva, yva), (xte, yte), model, history


def _scenario(name, expected, train, val, test, model, history, notes) -> Scenario:
    return Scenario(
        name=name,
        expected=expected,
        train=train,
        val=val,
        test=test,
        model=model,
        history=history,
        class_names=_CLASSES,
        notes=notes,
    )


@scenario("normalisation", "preprocessing-mismatch", "Test images scaled differently from training images (divided by 127 instead of 255).")
def normalisation_scenario(seed: int = 0, magnitude: float = 255 / 127) -> Scenario:
    """Training images are ``raw / 255``; test images are ``magnitude`` times larger.

    ``magnitude = 255/127`` divides the raw test images by 127; ``magnitude
    = 255`` leaves them as raw uint8 0-255.
    """
    (xtr, ytr), (xva, yva), (xte, yte), model, history = _trained(seed)
    raw = np.round(xte * 255.0)
    divisor = 255.0 / float(magnitude)
    if abs(divisor - 1.0) < 1e-9:
        test_x = raw.astype(np.uint8)
    else:
        test_x = (raw / divisor).astype(np.float32)
    return _scenario(
        "normalisation",
        "preprocessing-mismatch",
        Split(x=xtr, y=ytr),
        Split(x=xva, y=yva),
        Split(x=test_x, y=yte),
        model,
        history,
        {"fault": f"test images divided by {divisor:g} instead of 255", "magnitude": float(magnitude), "seed": seed},
    )


#: The benchmark's magnitudes: real divisor mix-ups (/128, /127 instead of /255; raw 0-255 left undivided), not
#: arbitrary factors such as x1.5, which no pipeline step produces and whylow's closed list does not name.
normalisation_scenario.magnitudes = (255 / 128, 255 / 127, 255.0)


@scenario("missing-normalisation", "preprocessing-mismatch", "Training images mean/std normalised, test images left raw in [0, 1].")
def missing_normalisation_scenario(seed: int = 0, magnitude: float = 1.0) -> Scenario:
    """Train and validation are ``(x - mean) / std`` with the training statistics; test skips it.

    ``magnitude`` in (0, 1] blends the test normalisation towards none:
    ``(x - (1 - m) * mean) / ((1 - m) * std + m)``; 1 leaves test raw.
    """
    (xtr, ytr), (xva, yva), (xte, yte) = digits_splits(seed)
    mean = float(xtr.mean())
    std = float(xtr.std())
    (xtr, ytr), (xva, yva), (xte, yte), model, history = _trained(
        seed, train_x=lambda x: (x - mean) / std, val_x=lambda x: (x - mean) / std
    )
    m = float(magnitude)
    test_x = ((xte - (1 - m) * mean) / ((1 - m) * std + m)).astype(np.float32)
    return _scenario(
        "missing-normalisation",
        "preprocessing-mismatch",
        Split(x=((xtr - mean) / std).astype(np.float32), y=ytr),
        Split(x=((xva - mean) / std).astype(np.float32), y=yva),
        Split(x=test_x, y=yte),
        model,
        history,
        {"fault": f"training normalised with mean {mean:.4f} and std {std:.4f}; test not", "magnitude": m, "seed": seed},
    )


def _on_blue_paper(x: np.ndarray, level: float = 0.4) -> np.ndarray:
    """Colourised digits (N×3×H×W, red stroke) on a blue background: ``B += level * (1 - grey)``."""
    grey = x.max(axis=1)
    out = x.copy()
    out[:, 2] = np.clip(out[:, 2] + level * (1.0 - grey), 0.0, 1.0)
    return out


@scenario("channel-order", "preprocessing-mismatch", "RGB training images, BGR test images.")
def channel_order_scenario(seed: int = 0, magnitude: float = 1.0) -> Scenario:
    """Colour digits (`colourise`: red carries the full stroke) on blue paper; test channels reversed.

    The blue background makes the channels carry different content, as in
    photographs, so the channel order matters to the model. ``magnitude``
    in [0, 1] blends RGB towards BGR: ``(1 - m) * RGB + m * BGR``.
    """
    (xtr, ytr), (xva, yva), (xte, yte) = (
        (_on_blue_paper(x), y) for x, y in digits_splits(seed, rgb=True)
    )
    model = make_cnn(3, 10, width=16, seed=seed)
    history = train_torch(model, xtr, ytr, x_val=xva, y_val=yva, epochs=15, seed=seed)
    m = float(magnitude)
    test_x = ((1 - m) * xte + m * xte[:, ::-1]).astype(np.float32)
    return _scenario(
        "channel-order",
        "preprocessing-mismatch",
        Split(x=xtr, y=ytr),
        Split(x=xva, y=yva),
        Split(x=test_x, y=yte),
        model,
        history,
        {"fault": "test channels in BGR order, training in RGB", "magnitude": m, "seed": seed},
    )


@scenario("lighting", "covariate-shift", "Test images under different lighting: gamma and a random gain and lift per image.")
def lighting_scenario(seed: int = 0, magnitude: float = 1.0) -> Scenario:
    """Test images become ``clip(gain_i * x ** gamma + lift_i, 0, 1)``.

    ``gamma = 1 - magnitude / 2`` (0.5 at magnitude 1), ``gain_i ~ U(1 - 0.4 m,
    1 + 0.2 m)`` and ``lift_i ~ U(0, 0.35 m)`` per image: a real change of
    the image distribution, not one map applied to every image.
    """
    (xtr, ytr), (xva, yva), (xte, yte), model, history = _trained(seed)
    m = float(magnitude)
    rng = np.random.default_rng(seed + 1000)
    gamma = 1.0 - m / 2.0
    gain = rng.uniform(1 - 0.4 * m, 1 + 0.2 * m, size=(len(xte), 1, 1, 1))
    lift = rng.uniform(0.0, 0.35 * m, size=(len(xte), 1, 1, 1))
    test_x = np.clip(gain * xte.astype(np.float64) ** gamma + lift, 0.0, 1.0).astype(np.float32)
    return _scenario(
        "lighting",
        "covariate-shift",
        Split(x=xtr, y=ytr),
        Split(x=xva, y=yva),
        Split(x=test_x, y=yte),
        model,
        history,
        {"fault": f"test gamma {gamma:g}, per-image gain and lift", "magnitude": m, "seed": seed},
    )


@scenario("blur", "covariate-shift", "Test images blurred (Gaussian).")
def blur_scenario(seed: int = 0, magnitude: float = 2.0) -> Scenario:
    """Test images are blurred with a Gaussian of standard deviation ``magnitude`` pixels (16×16 images)."""
    from scipy import ndimage

    (xtr, ytr), (xva, yva), (xte, yte), model, history = _trained(seed)
    test_x = ndimage.gaussian_filter(xte, sigma=(0, 0, float(magnitude), float(magnitude)), mode="nearest").astype(np.float32)
    return _scenario(
        "blur",
        "covariate-shift",
        Split(x=xtr, y=ytr),
        Split(x=xva, y=yva),
        Split(x=test_x, y=yte),
        model,
        history,
        {"fault": f"test Gaussian blur sigma {float(magnitude):g} px", "magnitude": float(magnitude), "seed": seed},
    )


@scenario("data-quality", "data-quality", "NaN images and duplicates with conflicting labels in training data, blank test images.")
def data_quality_scenario(seed: int = 0, magnitude: float = 0.08) -> Scenario:
    """Inject broken examples: a ``magnitude`` fraction each of

    * NaN images in the training split,
    * training images duplicated with a different label,
    * blank (all-zero) images in the test split.

    The CNN is trained on the clean training images. A model fed NaN images
    outputs NaN, so this scenario passes the model's predictions for the
    validation and test splits instead of the model (``model=None``).
    """
    (xtr, ytr), (xva, yva), (xte, yte), model, history = _trained(seed)
    rng = np.random.default_rng(seed + 2000)
    m = float(magnitude)
    n_nan = max(1, int(round(m * len(xtr))))
    n_dup = max(1, int(round(m * len(xtr))))
    n_blank = max(1, int(round(m * len(xte))))
    bad_train = xtr.copy()
    nan_rows = rng.choice(len(xtr), n_nan, replace=False)
    bad_train[nan_rows] = np.nan
    clean_rows = np.setdiff1d(np.arange(len(xtr)), nan_rows)
    dup_rows = rng.choice(clean_rows, n_dup, replace=False)
    train_x = np.concatenate([bad_train, xtr[dup_rows]])
    train_y = np.concatenate([ytr, (ytr[dup_rows] + rng.integers(1, 10, n_dup)) % 10])
    blank_rows = rng.choice(len(xte), n_blank, replace=False)
    test_x = xte.copy()
    test_x[blank_rows] = 0.0
    return _scenario(
        "data-quality",
        "data-quality",
        Split(x=train_x, y=train_y),
        Split(x=xva, y=yva, probs=torch_probs(model, xva)),
        Split(x=test_x, y=yte, probs=torch_probs(model, test_x)),
        None,
        history,
        {
            "fault": f"{n_nan} NaN and {n_dup} conflicting duplicate training images, {n_blank} blank test images",
            "magnitude": m,
            "seed": seed,
            "model": "predictions given (a model fed NaN images returns NaN)",
        },
    )
