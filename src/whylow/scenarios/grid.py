"""A randomised grid of fault-injected and healthy cases: how well does whylow generalise?

The registered scenarios of this package are all one small CNN on
scikit-learn's digits. This module draws cases from a much wider grid, each
fully determined by an integer seed:

* **image sources** (all offline, from installed packages):

  =================  =====================================================================
  ``digits``          scikit-learn's 1,797 handwritten digits, 16×16, grey (or a
                      coloured stroke on coloured paper); 10 classes
  ``sklearn-photos``  random crops of scikit-learn's two sample photos (china, flower);
                      class = photo × quadrant (8 classes), RGB or grey
  ``skimage-photos``  random crops of scikit-image's bundled photos; class = which
                      photo (4–6 colour photos, or 4–8 grey ones); needs scikit-image
  ``shapes``          procedurally drawn shapes (disk, square, triangle, plus, L, arrows,
                      stripes) with random colours, size, position, small rotation,
                      background gradients and noise; 4–8 classes; includes
                      orientation-dependent classes, so flips and rotations matter
  =================  =====================================================================

  Photo crops are cut from non-overlapping tiles, each tile assigned to one
  split, so no test crop shares pixels with a training crop (overlapping crops
  would be train–test leakage). Crops with almost no texture are redrawn.
  Every source yields float images in [0, 1] (N×H×W×C, 16–32 pixels a side)
  that are not on the 1/255 grid (they were resized in floating point).

* **storage** (what the splits hold): ``uint8-nhwc`` (0–255), ``float01-nhwc``
  / ``float01-nchw`` ([0, 1]), ``standardised-nhwc`` / ``standardised-nchw``
  (per-channel training mean and std removed). The model either normalises
  inside (``model_input="normalises-inside"``: a first `InputNorm` layer maps
  the stored values to standardised ones) or takes the stored values as they
  are (``"takes-stored"``). A model with a ``Conv2d`` is fed N×C×H×W (as
  whylow's torch adapter feeds it); the others get the stored layout.

* **architectures** (torch, trained on one CPU thread): ``cnn`` (the small CNN
  of `whylow.scenarios.base.make_cnn`), ``cnn-bn`` (the same with batch norm),
  ``mlp`` and ``logreg`` (Flatten + Linear). Healthy training is Adam with
  early stopping on the validation loss, restoring the best epoch's weights;
  the history holds every epoch run (as Keras' ``EarlyStopping`` leaves it).

* **faults**: one per case, each finding code of the contract, with its
  magnitude drawn from a range (see `FAULT_VARIANTS` and the ``_before_*`` /
  ``_after_*`` functions). Input faults (``preprocessing-mismatch``,
  ``covariate-shift``) pass an effect gate: the model's accuracy and log-loss
  on the clean and the faulted test inputs are compared, and a draw that costs
  less than 5 accuracy points and less than 10 % log-loss (or 0.05 nats) is
  redrawn (from a generator seeded by the case seed, so deterministically).
  Other faults have their own gate: a temperature left in must cost log-loss,
  an underfit model must score 10 points below a healthy one trained on the
  same data, a down-weighted positive class must leave 0.5 at least 5 points
  of balanced accuracy short of the best threshold. A fault that fails its
  gate is kept but marked (``notes["effect"]["gate"]`` starts with
  "failed"), and the benchmark excludes it from scoring. What was injected
  and its measured effect are in the scenario's ``notes``; ``notes["fit"]``
  holds the trained model's train / validation accuracy, gap and own
  temperature.

* **healthy cases** (``fault=None``): the same grid, with two variants that
  must stay quiet: ``late-rise`` (trained past its best epoch without early
  stopping, the validation loss rising while validation accuracy stays within
  one point of its best) and ``quantised-test`` (float test inputs rounded to
  the 1/255 grid).

Seeds in `DEV_SEEDS` are the only ones thresholds may be tuned on; seeds in
`HELDOUT_SEEDS` (same distribution) are only ever scored.

Examples
--------
>>> from whylow.scenarios.grid import sample_case
>>> case = sample_case(3, fault="label-noise")
>>> case.fault
'label-noise'
>>> sample_case(3, fault="label-noise") == case
True
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from whylow.errors import require
from whylow.inputs import Split
from whylow.report.finding import CODES
from whylow.scenarios import Scenario
from whylow.scenarios.base import make_cnn, torch_probs, train_epoch

__all__ = [
    "ARCHITECTURES",
    "DEV_SEEDS",
    "FAULT_CODES",
    "FAULT_VARIANTS",
    "GridCase",
    "HELDOUT_SEEDS",
    "InputNorm",
    "PREPROCESSING_KINDS",
    "SOURCES",
    "STORAGES",
    "build_case",
    "load_source",
    "sample_case",
    "shrink_case",
]

#: Seeds thresholds may be tuned on.
DEV_SEEDS = range(0, 10_000)
#: Seeds that are only ever scored (same distribution as `DEV_SEEDS`).
HELDOUT_SEEDS = range(10_000, 20_000)

SOURCES = ("digits", "sklearn-photos", "skimage-photos", "shapes")
STORAGES = ("uint8-nhwc", "float01-nhwc", "float01-nchw", "standardised-nhwc", "standardised-nchw")
ARCHITECTURES = ("cnn", "cnn-bn", "mlp", "logreg")

#: The closed list of finding codes (design.md §3), each one a fault the grid injects.
FAULT_CODES = CODES

#: ``notes["preprocessing"]["kind"]`` values of preprocessing faults.
PREPROCESSING_KINDS = (
    "scale",
    "standardisation-missing",
    "normalisation-constants",
    "channel-order",
    "flip",
    "rotation",
    "inversion",
)
COVARIATE_KINDS = ("lighting", "blur", "noise", "contrast", "colour-cast")

#: How each fault is injected (the ``variant`` of a case), for people reading results.
FAULT_VARIANTS = {
    "preprocessing-mismatch": PREPROCESSING_KINDS,
    "covariate-shift": COVARIATE_KINDS,
    "label-shift": ("labelled", "unlabelled"),
    "class-imbalance": ("subsampled",),
    "label-noise": ("both", "test"),
    "overconfidence": ("logits-scaled",),
    "underconfidence": ("label-smoothing", "logits-divided"),
    "underfitting": ("one-epoch", "tiny-lr", "tiny-capacity"),
    "overfitting": ("memorise",),
    "no-signal": ("random-labels",),
    "train-test-leakage": ("copies",),
    "misleading-metric": ("rare-unpredictable-positive",),
    "decision-threshold": ("down-weighted-positive",),
    "learning-rate": ("too-high",),
    "small-sample": ("tiny-test",),
    "data-quality": ("nan-and-blank", "blank-test", "conflicting-duplicates"),
    None: ("early-stopping", "late-rise", "quantised-test"),
}

_GATE_ACCURACY = 0.05  # an input fault must cost at least this much accuracy ...
_GATE_LOG_LOSS = 0.10  # ... or this relative increase of log-loss
_GATE_LOG_LOSS_ABS = 0.05  # ... and at least this many nats (0.005 -> 0.01 on a near-perfect model is no cause)
_MAX_REDRAWS = 6
_SAME_KIND_REDRAWS = 2  # the first redraws keep the kind (other axis, k, divisor or a larger magnitude)
_TRAIN_SECONDS = 5.0  # training budget per case on one core (sets image size and epochs)


# -- the case ---------------------------------------------------------------------------------------
@dataclass
class GridCase:
    """One point of the grid: where the images come from, how they are stored, the model, the fault.

    Attributes
    ----------
    seed : int
        Determines everything else (`sample_case`) and the data drawn (`build_case`).
    source : {"digits", "sklearn-photos", "skimage-photos", "shapes"}
    colour : {"grey", "rgb"}
    size : int
        Image side in pixels (16–32).
    n_classes : int
        Classes of the source; a binary task (``params["task"] == "binary"``) relabels them.
    storage : str
        One of `STORAGES`.
    model_input : {"normalises-inside", "takes-stored"}
    arch : str
        One of `ARCHITECTURES`.
    width : int
        Convolution filters of the first block (cnn, cnn-bn) or hidden units (mlp); 0 for logreg.
    n_train, n_val, n_test : int
        Split sizes requested (a source with few images may deliver fewer; see ``notes["sizes"]``).
    fault : str or None
        The injected finding code; None for a healthy case.
    variant : str
        How the fault is injected (a value of `FAULT_VARIANTS`), or the healthy variant.
    params : dict
        The fault's magnitudes and choices, and training settings.
    """

    seed: int
    source: str
    colour: str
    size: int
    n_classes: int
    storage: str
    model_input: str
    arch: str
    width: int
    n_train: int
    n_val: int
    n_test: int
    fault: str | None
    variant: str
    params: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short one-line description, e.g. ``"17 label-noise/both shapes-rgb24 float01-nchw+norm cnn n=310"``."""
        norm = "+norm" if self.model_input == "normalises-inside" else ""
        return (
            f"{self.seed} {self.fault or 'healthy'}/{self.variant} {self.source}-{self.colour}{self.size} "
            f"{self.storage}{norm} {self.arch} n={self.n_train}"
        )

    @property
    def value_kind(self) -> str:
        """``"uint8"``, ``"float01"`` or ``"standardised"``."""
        return self.storage.split("-")[0]

    @property
    def layout(self) -> str:
        """``"NHWC"`` or ``"NCHW"``: the layout of the stored splits."""
        return self.storage.split("-")[1].upper()

    @property
    def channels(self) -> int:
        return 3 if self.colour == "rgb" else 1


# -- sampling ---------------------------------------------------------------------------------------
def sample_case(seed: int, fault: str | None = "any") -> GridCase:
    """Draw the grid case of ``seed``.

    Parameters
    ----------
    seed : int
        Every choice comes from ``numpy.random.default_rng(seed)``: the same
        seed (and ``fault``) always gives the same case.
    fault : str, None or "any", default "any"
        A finding code to inject, None for a healthy case, or "any" to draw
        the code from the seed too.

    Returns
    -------
    GridCase
    """
    seed = int(seed)
    if fault not in (None, "any") and fault not in FAULT_CODES:
        from whylow.errors import InvalidInputError

        raise InvalidInputError(f"fault must be None, 'any' or one of {', '.join(FAULT_CODES)}; got {fault!r}.")
    rng = np.random.default_rng(seed)
    drawn = str(rng.choice(FAULT_CODES))  # drawn even when ``fault`` is given: the rest of the case stays the same
    code = drawn if fault == "any" else fault
    source = str(rng.choice(SOURCES))
    colour = _draw_colour(rng, source)
    n_classes = _draw_n_classes(rng, source, colour)
    storage = str(rng.choice(STORAGES))
    model_input = _draw_model_input(rng, storage)
    arch = str(rng.choice(ARCHITECTURES, p=[0.35, 0.25, 0.2, 0.2]))
    width = _draw_width(rng, arch)
    n_train = _draw_n_train(rng, source)
    size = _draw_size(rng, source, arch, width, n_train, 3 if colour == "rgb" else 1)
    case = GridCase(
        seed=seed, source=source, colour=colour, size=size, n_classes=n_classes, storage=storage,
        model_input=model_input, arch=arch, width=width, n_train=n_train,
        n_val=max(50, round(0.25 * n_train)), n_test=max(100, round(0.25 * n_train)),
        fault=code, variant="", params={},
    )
    _DRAW[code](rng, case)
    case.params.setdefault("max_epochs", _epoch_budget(case))
    case.params.setdefault("lr", 3e-3)
    case.params.setdefault("batch_size", 32 if case.n_train < 1000 else 64)
    return case


def shrink_case(case: GridCase, max_train: int | None = None, max_epochs: int | None = None) -> GridCase:
    """A smaller copy of ``case`` for smoke tests: at most ``max_train`` training images and ``max_epochs`` epochs.

    Validation and test splits shrink alike (a small-sample case keeps its
    tiny test split). The fault and its magnitudes are unchanged.
    """
    c = copy.deepcopy(case)
    if max_train is not None and c.n_train > max_train:
        c.n_train = int(max_train)
        c.n_val = max(30, round(0.25 * c.n_train))
        if c.fault != "small-sample":
            c.n_test = max(60, round(0.25 * c.n_train))
        c.params["batch_size"] = 32
    if max_epochs is not None:
        c.params["max_epochs"] = min(int(c.params["max_epochs"]), int(max_epochs))
    return c


def _draw_colour(rng, source: str) -> str:
    p_rgb = {"digits": 0.4, "sklearn-photos": 0.75, "skimage-photos": 0.7, "shapes": 0.6}[source]
    return "rgb" if rng.random() < p_rgb else "grey"


def _draw_n_classes(rng, source: str, colour: str) -> int:
    if source == "digits":
        return 10
    if source == "sklearn-photos":
        return 8
    if source == "skimage-photos":
        return int(rng.integers(4, len(_SKIMAGE_RGB if colour == "rgb" else _SKIMAGE_GREY) + 1))
    return int(rng.integers(4, len(SHAPES) + 1))


def _draw_model_input(rng, storage: str) -> str:
    if storage.startswith("uint8"):
        return "normalises-inside"
    if storage.startswith("standardised"):
        return "takes-stored"
    return "normalises-inside" if rng.random() < 0.5 else "takes-stored"


def _draw_width(rng, arch: str) -> int:
    if arch in ("cnn", "cnn-bn"):
        return int(rng.choice([8, 16]))
    if arch == "mlp":
        return int(rng.choice([64, 128, 256]))
    return 0


def _draw_n_train(rng, source: str) -> int:
    n = int(round(math.exp(rng.uniform(math.log(100), math.log(5000)))))
    if source == "digits":  # train + val + test (0.25 n each, test at least 100) must fit in 1,797 images
        n = min(n, 1150)
    if source == "sklearn-photos":  # two photos: more crops would mostly repeat the same pixels
        n = min(n, 2500)
    return n


def _train_rate(arch: str, width: int, size: int, channels: int) -> float:
    """Training images per second on one core (measured on a 2-core EPYC; a rough cost model)."""
    pixels = size * size
    if arch in ("cnn", "cnn-bn"):
        rate = 9000.0 * (256.0 / pixels) * (16.0 / max(width, 8)) ** 0.8  # narrower nets are no faster
        return rate * (0.5 if arch == "cnn-bn" else 1.0)
    hidden = width if arch == "mlp" else 10
    return 1.0e6 / (13.0 + 1.7e-4 * pixels * channels * hidden)


def _draw_size(rng, source: str, arch: str, width: int, n_train: int, channels: int) -> int:
    """Image side: 16 for digits; else 16–32, the largest sizes dropped when training would take too long."""
    if source == "digits":
        return 16
    sizes = [s for s in (16, 20, 24, 28, 32) if _TRAIN_SECONDS * _train_rate(arch, width, s, channels) / n_train >= 12]
    return int(rng.choice(sizes or [16]))


def _epoch_budget(case: GridCase) -> int:
    """Most epochs the training budget allows (10–150)."""
    rate = _train_rate(case.arch, max(case.width, 1), case.size, case.channels)
    return int(np.clip(_TRAIN_SECONDS * rate / max(case.n_train, 1), 10, 150))


def _loguniform(rng, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _preprocessing_kinds(case: GridCase) -> list[str]:
    kinds = ["flip", "rotation", "inversion"]
    if case.value_kind in ("uint8", "float01"):
        kinds.append("scale")
    if case.value_kind == "standardised":
        kinds += ["standardisation-missing", "normalisation-constants"]
    if case.colour == "rgb":
        kinds.append("channel-order")
    return sorted(kinds, key=PREPROCESSING_KINDS.index)


_NORMALISATION_PRESETS = {
    "rgb": {
        "ImageNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        "CIFAR-10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        "0.5/0.5": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    },
    "grey": {"MNIST": ((0.1307,), (0.3081,)), "0.5/0.5": ((0.5,), (0.5,))},
}


def _preprocessing_params(rng, case: GridCase, kind: str, strength: float) -> dict:
    """Parameters of one preprocessing fault (``strength`` is unused: these faults have no magnitude range)."""
    if kind == "scale":
        if case.value_kind == "float01":
            divisor = [127.0, 127.5, 128.0, 1.0, 65535.0][int(rng.integers(5))]
            return {"kind": "scale", "divisor": divisor, "factor": 255.0 / divisor,
                    "stored_as": "uint8" if divisor == 1.0 else "float32"}
        divisor = [255.0, 127.5, 127.0][int(rng.integers(3))]  # uint8 storage: test handed over as floats
        return {"kind": "scale", "divisor": divisor, "factor": 1.0 / divisor, "stored_as": "float32"}
    if kind == "normalisation-constants":
        names = sorted(_NORMALISATION_PRESETS[case.colour])
        return {"kind": kind, "name": names[int(rng.integers(len(names)))]}
    if kind == "channel-order":
        return {"kind": kind, "order": "BGR"}
    if kind == "flip":
        return {"kind": kind, "axis": "horizontal" if rng.random() < 0.5 else "vertical"}
    if kind == "rotation":
        return {"kind": kind, "k": int(rng.integers(1, 4))}
    return {"kind": kind}


def _covariate_params(rng, case: GridCase, kind: str, strength: float) -> dict:
    """Magnitudes of one covariate shift; ``strength`` in [0, 1] raises the low end of each range."""

    def u(lo, hi):
        return float(rng.uniform(lo + strength * (hi - lo) * 0.8, hi))

    if kind == "lighting":
        darker = rng.random() < 0.5
        gamma = u(1.6, 2.8) if darker else 1.0 / u(1.6, 2.8)
        return {"kind": kind, "gamma": gamma, "gain_spread": u(0.1, 0.4), "lift": u(0.05, 0.3)}
    if kind == "blur":
        return {"kind": kind, "sigma_px": u(0.6, 2.0) * case.size / 16}
    if kind == "noise":
        return {"kind": kind, "sd": u(0.06, 0.3)}
    if kind == "contrast":
        return {"kind": kind, "factor": 1.0 - u(0.4, 0.8), "spread": 0.1}
    gains = rng.uniform(1 - 0.5 * (0.4 + 0.6 * strength), 1 + 0.5 * (0.4 + 0.6 * strength), size=3)
    return {"kind": "colour-cast", "gains": [float(g) for g in gains], "spread": 0.08}


def _draw_input_fault(rng, case: GridCase, strength: float = 0.0, kind: str | None = None) -> dict:
    """One preprocessing or covariate-shift fault applicable to ``case`` (of ``kind`` when given)."""
    if case.fault == "preprocessing-mismatch":
        kinds = _preprocessing_kinds(case)
        kind = kind or kinds[int(rng.integers(len(kinds)))]
        return _preprocessing_params(rng, case, kind, strength)
    kinds = [k for k in COVARIATE_KINDS if case.colour == "rgb" or k != "colour-cast"]
    kind = kind or kinds[int(rng.integers(len(kinds)))]
    return _covariate_params(rng, case, kind, strength)


def _draw_input(rng, case: GridCase) -> None:
    p = _draw_input_fault(rng, case)
    case.variant = p["kind"]
    case.params["fault"] = p


def _draw_label_shift(rng, case: GridCase) -> None:
    case.variant = "unlabelled" if rng.random() < 0.25 else "labelled"
    case.params.update(prior_ratio=_loguniform(rng, 5, 30))
    case.n_test = max(case.n_test, 150)


def _draw_imbalance(rng, case: GridCase) -> None:
    case.variant = "subsampled"
    case.params.update(factor=_loguniform(rng, 10, 50),
                       n_minority=int(rng.integers(1, max(2, case.n_classes // 2) + 1)))


def _draw_label_noise(rng, case: GridCase) -> None:
    case.variant = "both" if rng.random() < 0.6 else "test"
    case.params.update(fraction=float(rng.uniform(0.15, 0.4)))


def _draw_overconfidence(rng, case: GridCase) -> None:
    case.variant = "logits-scaled"
    case.params.update(logit_factor=float(rng.uniform(2, 5)))


def _draw_underconfidence(rng, case: GridCase) -> None:
    if rng.random() < 0.5:
        case.variant = "label-smoothing"
        case.params.update(label_smoothing=float(rng.uniform(0.2, 0.5)))
    else:
        case.variant = "logits-divided"
        case.params.update(logit_factor=1.0 / float(rng.uniform(2, 5)))


def _draw_underfitting(rng, case: GridCase) -> None:
    options = ["tiny-lr"]
    if case.n_train <= 1500:
        options.append("one-epoch")
    if case.arch != "logreg":
        options.append("tiny-capacity")
    case.variant = options[int(rng.integers(len(options)))]
    if case.variant == "one-epoch":
        case.params.update(max_epochs=1)
    elif case.variant == "tiny-lr":
        case.params.update(lr=_loguniform(rng, 3e-6, 3e-5), max_epochs=int(rng.integers(5, 11)))
    else:
        case.params.update(healthy_width=case.width)
        case.width = 1 if case.arch in ("cnn", "cnn-bn") else 2
        case.params.update(max_epochs=max(8, _epoch_budget(case) // 2))


def _draw_overfitting(rng, case: GridCase) -> None:
    case.variant = "memorise"
    case.n_train = int(round(_loguniform(rng, 100, 300)))
    case.n_val, case.n_test = max(50, round(0.25 * case.n_train)), max(100, round(0.25 * case.n_train))
    if case.arch == "logreg":
        case.arch = "mlp"
    case.width = 32 if case.arch in ("cnn", "cnn-bn") else 512
    case.size = 16
    epochs = int(rng.integers(60, 121))
    rate = _train_rate(case.arch, case.width, case.size, case.channels) * (0.5 if case.arch == "cnn" else 1.0)
    case.params.update(dense_head=case.arch == "cnn", max_epochs=int(min(epochs, max(40, 8.0 * rate / case.n_train))),
                       lr=float(rng.choice([3e-3, 1e-2])))


def _draw_no_signal(rng, case: GridCase) -> None:
    case.variant = "random-labels"


def _draw_leakage(rng, case: GridCase) -> None:
    case.variant = "copies"
    case.params.update(fraction=float(rng.uniform(0.1, 0.5)), jitter=float(rng.uniform(0.5, 3.0)) / 255)


def _draw_misleading(rng, case: GridCase) -> None:
    case.variant = "rare-unpredictable-positive"
    case.params.update(task="binary", positive_rate=float(rng.uniform(0.04, 0.12)))
    case.n_test = max(case.n_test, 200)


def _draw_threshold(rng, case: GridCase) -> None:
    case.variant = "down-weighted-positive"
    n_pos = max(1, int(round(0.3 * case.n_classes)))
    positives = sorted(int(k) for k in rng.choice(case.n_classes, size=n_pos, replace=False))
    case.params.update(task="binary", positives=positives, positive_weight=float(rng.uniform(0.1, 0.35)),
                       pixel_noise=float(rng.uniform(0.1, 0.3)))
    case.n_test = max(case.n_test, 200)


def _draw_learning_rate(rng, case: GridCase) -> None:
    case.variant = "too-high"
    case.params.update(lr=_loguniform(rng, 0.05, 1.0), max_epochs=int(rng.integers(8, 16)))


def _draw_small_sample(rng, case: GridCase) -> None:
    case.variant = "tiny-test"
    case.n_test = int(rng.integers(15, 51))


def _draw_data_quality(rng, case: GridCase) -> None:
    options = ["blank-test", "conflicting-duplicates"] + (["nan-and-blank"] if case.value_kind != "uint8" else [])
    case.variant = options[int(rng.integers(len(options)))]
    case.params.update(fraction=float(rng.uniform(0.04, 0.15)))


def _draw_healthy(rng, case: GridCase) -> None:
    u = rng.random()
    if u < 0.25 and case.value_kind != "uint8":
        case.variant = "quantised-test"
    elif u < 0.5:
        case.variant = "late-rise"  # small enough to train well past the best epoch within the budget
        case.n_train = min(case.n_train, 1000)
        case.n_val, case.n_test = max(50, round(0.25 * case.n_train)), max(100, round(0.25 * case.n_train))
        case.params.update(max_epochs=int(np.clip(3 * _epoch_budget(case), 30, 150)))
    else:
        case.variant = "early-stopping"


_DRAW: dict[str | None, Callable] = {
    "preprocessing-mismatch": _draw_input,
    "covariate-shift": _draw_input,
    "label-shift": _draw_label_shift,
    "class-imbalance": _draw_imbalance,
    "label-noise": _draw_label_noise,
    "overconfidence": _draw_overconfidence,
    "underconfidence": _draw_underconfidence,
    "underfitting": _draw_underfitting,
    "overfitting": _draw_overfitting,
    "no-signal": _draw_no_signal,
    "train-test-leakage": _draw_leakage,
    "misleading-metric": _draw_misleading,
    "decision-threshold": _draw_threshold,
    "learning-rate": _draw_learning_rate,
    "small-sample": _draw_small_sample,
    "data-quality": _draw_data_quality,
    None: _draw_healthy,
}


# -- image sources ----------------------------------------------------------------------------------
SHAPES = ("disk", "square", "triangle-up", "plus", "L", "arrow-right", "arrow-left", "h-stripes")
_SKIMAGE_RGB = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
_SKIMAGE_GREY = ("camera", "brick", "grass", "gravel", "coins", "moon", "clock", "cell")


@dataclass
class _Source:
    """Images of one source: ``draw(counts, rng)`` gives per-split images and labels.

    ``counts`` maps split name to an int array of images per class.
    """

    name: str
    class_names: list[str]
    draw: Callable[[dict, np.random.Generator], dict]


def load_source(name: str, colour: str, size: int, n_classes: int, rng: np.random.Generator) -> _Source:
    """The image source ``name`` with ``n_classes`` classes (chosen with ``rng`` where the source has more).

    Parameters
    ----------
    name : {"digits", "sklearn-photos", "skimage-photos", "shapes"}
    colour : {"grey", "rgb"}
    size : int
        Image side in pixels.
    n_classes : int
    rng : numpy.random.Generator

    Returns
    -------
    _Source
        ``source.draw({"train": counts, ...}, rng)`` returns
        ``{"train": (x, y), ...}`` with ``x`` float32 N×size×size×C in [0, 1].
    """
    if name == "digits":
        return _digits_source(colour, size, rng)
    if name == "sklearn-photos":
        return _sklearn_photo_source(colour, size)
    if name == "skimage-photos":
        return _skimage_photo_source(colour, size, n_classes, rng)
    if name == "shapes":
        return _shape_source(colour, size, n_classes, rng)
    raise ValueError(f"unknown source {name!r}; the sources are {SOURCES}")


def _resize_float(img: np.ndarray, size: int, box=None) -> np.ndarray:
    """Bilinear resize of an H×W×C float image (or a box of it) to size×size, in floating point."""
    from PIL import Image

    chans = []
    for c in range(img.shape[2]):
        im = Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32), mode="F")
        chans.append(np.asarray(im.resize((size, size), Image.BILINEAR, box=box)))
    return np.stack(chans, axis=-1)


@functools.lru_cache(maxsize=4)
def _digits_float(size: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = (d.images / 16.0).astype(np.float32)[..., None]
    x = np.stack([_resize_float(im, size) for im in raw])
    return np.clip(x, 0.0, 1.0), d.target.astype(np.int64)


def _digits_source(colour: str, size: int, rng) -> _Source:
    """scikit-learn's digits; RGB ones get a stroke and a paper colour for the whole case (jittered per image)."""
    x, y = _digits_float(size)
    stroke = rng.uniform(0.0, 1.0, size=3)
    paper = rng.uniform(0.0, 1.0, size=3)

    def draw(counts: dict, r) -> dict:
        pools = _partition_digits(y, counts, r)
        out = {}
        for split, idx in pools.items():
            xs = x[idx]
            if colour == "rgb":
                s = np.clip(stroke + r.normal(0, 0.08, (len(idx), 1, 1, 3)), 0, 1)
                p = np.clip(paper + r.normal(0, 0.08, (len(idx), 1, 1, 3)), 0, 1)
                xs = xs * s + (1.0 - xs) * p
            out[split] = (xs.astype(np.float32), y[idx])
        return out

    return _Source("digits", [str(k) for k in range(10)], draw)


def _partition_digits(y: np.ndarray, counts: dict, rng) -> dict:
    """Disjoint index sets per split with (at most) the requested count per class."""
    pools = {s: [] for s in counts}
    for k in range(10):
        members = rng.permutation(np.flatnonzero(y == k))
        want = np.array([int(counts[s][k]) for s in counts])
        if want.sum() > len(members):  # scale every split down alike
            want = np.floor(want * len(members) / want.sum()).astype(int)
        start = 0
        for s, n in zip(counts, want):
            pools[s].extend(members[start : start + n].tolist())
            start += n
    return {s: rng.permutation(np.asarray(v, dtype=np.int64)) for s, v in pools.items()}


def _grey(x: np.ndarray) -> np.ndarray:
    return (x[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]


def _tile_source(name: str, regions: list[tuple[str, np.ndarray]], colour: str, size: int, tile: int) -> _Source:
    """Crops of photo regions; class = region. Each region's tiles go to one split each (no shared pixels)."""
    regions = [(n, _grey(r) if colour == "grey" else r) for n, r in regions]

    def draw(counts: dict, rng) -> dict:
        out = {s: ([], []) for s in counts}
        for k, (_, img) in enumerate(regions):
            tiles = _tiles(img.shape, tile, rng)
            assigned = _assign_tiles(len(tiles), [int(counts[s][k]) for s in counts], rng)
            for s, t_idx in zip(counts, assigned):
                for _ in range(int(counts[s][k])):
                    out[s][0].append(_crop(img, tiles[t_idx[int(rng.integers(len(t_idx)))]], tile, size, rng))
                    out[s][1].append(k)
        return {s: _shuffled(np.asarray(xs, np.float32).reshape(-1, size, size, 1 if colour == "grey" else 3),
                             np.asarray(ys, np.int64), rng) for s, (xs, ys) in out.items()}

    return _Source(name, [n for n, _ in regions], draw)


def _shuffled(x, y, rng):
    order = rng.permutation(len(y))
    return x[order], y[order]


def _tiles(shape, tile: int, rng) -> list[tuple[int, int]]:
    h, w = shape[:2]
    oy, ox = int(rng.integers(0, h % tile + 1)), int(rng.integers(0, w % tile + 1))
    return [(oy + i * tile, ox + j * tile) for i in range(h // tile) for j in range(w // tile)]


def _assign_tiles(n_tiles: int, wants: list[int], rng) -> list[np.ndarray]:
    """Split ``range(n_tiles)`` into one non-empty part per split, sized like the wanted counts."""
    order = rng.permutation(n_tiles)
    share = np.asarray(wants, float) / max(sum(wants), 1)
    sizes = np.maximum(1, np.floor(share * n_tiles)).astype(int)
    while sizes.sum() > n_tiles:
        sizes[np.argmax(sizes)] -= 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(wants))]


def _crop(img: np.ndarray, corner, tile: int, size: int, rng, min_std: float = 0.03, tries: int = 8) -> np.ndarray:
    """A random square crop inside one tile (side 60–100 % of the tile), resized to size×size.

    Side and position are continuous (sub-pixel), so two crops are never
    exact copies. Crops with almost no texture (standard deviation below
    ``min_std``) are redrawn up to ``tries`` times.
    """
    y0, x0 = corner
    out = None
    for _ in range(tries):
        side = float(rng.uniform(0.6 * tile, tile))
        dy, dx = float(rng.uniform(0, tile - side)), float(rng.uniform(0, tile - side))
        out = _resize_float(img, size, box=(x0 + dx, y0 + dy, x0 + dx + side, y0 + dy + side))
        if out.std() >= min_std:
            break
    return np.clip(out, 0.0, 1.0)


def _sklearn_photo_source(colour: str, size: int) -> _Source:
    """scikit-learn's sample photos (china, flower), each cut into 4 quadrants: 8 classes."""
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    regions = []
    for fname, img in zip(data.filenames, data.images):
        photo = fname.rsplit("/", 1)[-1].split(".")[0]
        img = img.astype(np.float32) / 255.0
        h, w = img.shape[0] // 2, img.shape[1] // 2
        for qi, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            name = f"{photo}-{['top-left', 'top-right', 'bottom-left', 'bottom-right'][qi]}"
            regions.append((name, img[r * h : (r + 1) * h, c * w : (c + 1) * w]))
    return _tile_source("sklearn-photos", regions, colour, size, tile=24)


def _skimage_photo_source(colour: str, size: int, n_classes: int, rng) -> _Source:
    """scikit-image's bundled photos (no download): class = which photo."""
    try:
        from skimage import data as skdata
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the skimage-photos source needs scikit-image (its bundled photos): pip install 'scikit-image>=0.22' "
            "or pip install -e '.[bench]'"
        ) from exc
    names = _SKIMAGE_RGB if colour == "rgb" else _SKIMAGE_GREY
    chosen = sorted(rng.choice(len(names), size=n_classes, replace=False).tolist())
    regions = []
    for i in chosen:
        img = np.asarray(getattr(skdata, names[i])(), dtype=np.float32) / 255.0
        img = img[..., None] if img.ndim == 2 else img[..., :3]
        scale = 320.0 / min(img.shape[:2])  # every photo to a short side of 320 px: comparable crop scales
        side = (round(img.shape[1] * scale), round(img.shape[0] * scale))
        img = np.stack([_resize_plane(img[..., c], side) for c in range(img.shape[2])], axis=-1)
        regions.append((names[i], np.repeat(img, 3, axis=-1) if img.shape[2] == 1 else img))
    return _tile_source("skimage-photos", regions, colour, size, tile=32)


def _resize_plane(plane: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(plane, np.float32), mode="F").resize(wh, Image.BILINEAR))


def _shape_source(colour: str, size: int, n_classes: int, rng) -> _Source:
    """Procedurally drawn shapes: ``n_classes`` of `SHAPES`, chosen with ``rng``."""
    chosen = sorted(rng.choice(len(SHAPES), size=n_classes, replace=False).tolist())
    noise_sd = float(rng.uniform(0.01, 0.05))

    def draw(counts: dict, r) -> dict:
        out = {}
        for s, cnt in counts.items():
            y = np.repeat(np.arange(n_classes), np.asarray(cnt, int))
            y = r.permutation(y)
            x = render_shapes([SHAPES[chosen[k]] for k in y], size, r, noise_sd)
            out[s] = (_grey(x) if colour == "grey" else x, y.astype(np.int64))
        return out

    return _Source("shapes", [SHAPES[i] for i in chosen], draw)


def render_shapes(kinds: list[str], size: int, rng, noise_sd: float = 0.03) -> np.ndarray:
    """Draw one shape per entry of ``kinds`` on a textured background.

    Parameters
    ----------
    kinds : list of str
        Entries of `SHAPES`.
    size : int
    rng : numpy.random.Generator
    noise_sd : float
        Standard deviation of the per-pixel Gaussian noise.

    Returns
    -------
    ndarray of float32, shape (len(kinds), size, size, 3), values in [0, 1]
    """
    n, ss = len(kinds), 2 * size  # rendered at twice the size, then 2×2-averaged (anti-aliasing)
    grid = (np.arange(ss) + 0.5) / ss * 2 - 1
    v, u = np.meshgrid(grid, grid, indexing="ij")  # v: row (down), u: column (right)
    centre = rng.uniform(-0.2, 0.2, (n, 2))
    scale = rng.uniform(0.5, 0.8, n)
    theta = np.deg2rad(rng.uniform(-15, 15, n))
    du, dv = u[None] - centre[:, 0, None, None], v[None] - centre[:, 1, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    px, py = (c * du + s * dv) / scale[:, None, None], (-s * du + c * dv) / scale[:, None, None]
    mask = np.zeros((n, ss, ss), bool)
    for kind in set(kinds):
        rows = np.array([k == kind for k in kinds])
        mask[rows] = _SHAPE_MASKS[kind](px[rows], py[rows])
    fg, bg = _shape_colours(n, rng)
    background = bg[:, None, None, :] + _background_texture(n, ss, rng)[..., None]
    img = np.where(mask[..., None], fg[:, None, None, :], background)
    img = img.reshape(n, size, 2, size, 2, 3).mean(axis=(2, 4))
    img = img + rng.normal(0.0, noise_sd, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _shape_colours(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Random colours: a light shape on a darker background, luminances at least 0.25 apart."""
    lum = np.array([0.299, 0.587, 0.114])
    bg = rng.uniform(0.0, 0.55, (n, 3))
    fg = rng.uniform(0.45, 1.0, (n, 3))
    gap = (fg - bg) @ lum
    fg = np.clip(fg + np.maximum(0.0, 0.25 - gap)[:, None], 0, 1)
    return fg, bg


def _background_texture(n: int, ss: int, rng) -> np.ndarray:
    """A linear gradient in a random direction plus smooth low-frequency noise, amplitude up to ~0.15."""
    from scipy import ndimage

    grid = np.linspace(-1, 1, ss)
    v, u = np.meshgrid(grid, grid, indexing="ij")
    angle = rng.uniform(0, 2 * np.pi, n)
    amp = rng.uniform(0, 0.1, n)
    grad = amp[:, None, None] * (np.cos(angle)[:, None, None] * u + np.sin(angle)[:, None, None] * v)
    coarse = rng.normal(0, 0.04, (n, 4, 4))
    smooth = ndimage.zoom(coarse, (1, ss / 4, ss / 4), order=1, mode="nearest")[:, :ss, :ss]
    return grad + smooth


def _bar(px, py, x0, x1, y0, y1):
    return (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)


def _arrow_right(px, py):
    shaft = _bar(px, py, -0.85, 0.15, -0.18, 0.18)
    head = (px >= 0.05) & (px <= 0.85) & (np.abs(py) <= (0.85 - px) * 0.9)
    return shaft | head


_SHAPE_MASKS: dict[str, Callable] = {
    "disk": lambda px, py: px**2 + py**2 <= 0.8**2,
    "square": lambda px, py: np.maximum(np.abs(px), np.abs(py)) <= 0.7,
    "triangle-up": lambda px, py: (py <= 0.7) & (np.abs(px) <= (py + 0.8) / 1.5 * 0.85),
    "plus": lambda px, py: _bar(px, py, -0.22, 0.22, -0.85, 0.85) | _bar(px, py, -0.85, 0.85, -0.22, 0.22),
    "L": lambda px, py: _bar(px, py, -0.7, -0.3, -0.85, 0.85) | _bar(px, py, -0.7, 0.7, 0.45, 0.85),
    "arrow-right": _arrow_right,
    "arrow-left": lambda px, py: _arrow_right(-px, py),
    "h-stripes": lambda px, py: _bar(px, py, -0.8, 0.8, -0.8, -0.5) | _bar(px, py, -0.8, 0.8, -0.15, 0.15)
    | _bar(px, py, -0.8, 0.8, 0.5, 0.8),
}


# -- storage ----------------------------------------------------------------------------------------
@dataclass
class _Encoding:
    """How a case stores its images: value kind, layout, and the training statistics."""

    value_kind: str  # "uint8" | "float01" | "standardised"
    layout: str  # "NHWC" | "NCHW"
    mean: np.ndarray  # per channel, of the training images in [0, 1]
    std: np.ndarray

    @classmethod
    def fit(cls, case: GridCase, x_train: np.ndarray) -> "_Encoding":
        finite = x_train[np.isfinite(x_train).all(axis=(1, 2, 3))]
        mean = finite.mean(axis=(0, 1, 2)).astype(np.float64)
        std = np.maximum(finite.std(axis=(0, 1, 2)), 1e-3).astype(np.float64)
        return cls(case.value_kind, case.layout, mean, std)

    def values(self, x: np.ndarray) -> np.ndarray:
        """Images in [0, 1] (N×H×W×C) as this storage's values, still N×H×W×C."""
        if self.value_kind == "uint8":
            return np.round(np.clip(x, 0, 1) * 255.0).astype(np.uint8)
        if self.value_kind == "float01":
            return x.astype(np.float32)
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_layout(self, v: np.ndarray) -> np.ndarray:
        """N×H×W×C values in this storage's layout."""
        return np.ascontiguousarray(v.transpose(0, 3, 1, 2)) if self.layout == "NCHW" else v

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Images in [0, 1] (N×H×W×C) as stored."""
        return self.to_layout(self.values(x))

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values back to images in [0, 1] (N×H×W×C): the inverse of `encode` up to uint8 rounding."""
        v = stored.transpose(0, 2, 3, 1) if self.layout == "NCHW" else stored
        v = v.astype(np.float64)
        if self.value_kind == "uint8":
            return v / 255.0
        if self.value_kind == "standardised":
            return v * self.std + self.mean
        return v


# -- models -----------------------------------------------------------------------------------------
def _torch():
    return require("torch", "torch")


@functools.lru_cache(maxsize=1)
def _input_norm_class():
    torch = _torch()

    class _InputNorm(torch.nn.Module):
        """Maps stored values to standardised ones: ``(x * scale - mean) / std`` per channel."""

        def __init__(self, scale: float, mean, std, channel_axis: int):
            super().__init__()
            shape = [1, 1, 1, 1]
            shape[channel_axis] = len(mean)
            self.register_buffer("scale", torch.tensor(float(scale)))
            self.register_buffer("mean", torch.tensor(np.asarray(mean), dtype=torch.float32).reshape(shape))
            self.register_buffer("std", torch.tensor(np.asarray(std), dtype=torch.float32).reshape(shape))

        def forward(self, x):
            return (x * self.scale - self.mean) / self.std

    return _InputNorm


def InputNorm(scale: float, mean, std, channel_axis: int):  # noqa: N802 - a module factory, named like the class
    """A torch module mapping stored inputs to standardised ones: ``(x * scale - mean) / std`` per channel.

    Parameters
    ----------
    scale : float
        1/255 for uint8 storage, 1 for floats in [0, 1].
    mean, std : sequence of float
        Per-channel statistics of the training images in [0, 1].
    channel_axis : int
        1 for N×C×H×W input, 3 for N×H×W×C.
    """
    return _input_norm_class()(scale, mean, std, channel_axis)


def _is_conv(arch: str) -> bool:
    return arch in ("cnn", "cnn-bn")


def _cnn_bn(in_channels: int, n_classes: int, width: int, seed: int):
    """The small CNN with batch norm after each convolution."""
    nn = _torch().nn
    _torch().manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * width, n_classes),
    )


def _dense_net(n_features: int, n_classes: int, hidden: tuple[int, ...], seed: int):
    nn = _torch().nn
    _torch().manual_seed(seed)
    layers, d = [nn.Flatten()], n_features
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, n_classes))
    return nn.Sequential(*layers)


def _make_model(case: GridCase, enc: _Encoding, n_outputs: int):
    """The case's network, behind an `InputNorm` when the model normalises inside."""
    c, seed = case.channels, case.seed
    if case.arch == "cnn":
        dense = case.size if case.params.get("dense_head") else None
        net = make_cnn(c, n_outputs, width=case.width, seed=seed, dense_head=dense)
    elif case.arch == "cnn-bn":
        net = _cnn_bn(c, n_outputs, case.width, seed)
    elif case.arch == "mlp":
        hidden = (case.width, case.width) if case.width >= 512 else (case.width,)
        net = _dense_net(case.size * case.size * c, n_outputs, hidden, seed)
    else:
        net = _dense_net(case.size * case.size * c, n_outputs, (), seed)
    if case.model_input != "normalises-inside":
        return net
    scale = 1.0 / 255.0 if enc.value_kind == "uint8" else 1.0
    axis = 1 if _is_conv(case.arch) or enc.layout == "NCHW" else 3
    return _torch().nn.Sequential(InputNorm(scale, enc.mean, enc.std, axis), net)


def _model_view(stored: np.ndarray, layout: str, arch: str) -> np.ndarray:
    """What the model is fed for stored inputs: float32, N×C×H×W for a CNN (as whylow feeds it), else as stored."""
    x = stored.astype(np.float32)
    if _is_conv(arch) and layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def _predict(model, stored: np.ndarray, layout: str, arch: str) -> np.ndarray:
    threads = _torch().get_num_threads()
    _torch().set_num_threads(1)
    try:
        return torch_probs(model, _model_view(stored, layout, arch))
    finally:
        _torch().set_num_threads(threads)


def _logits(model, stored: np.ndarray, layout: str, arch: str, batch_size: int = 512) -> np.ndarray:
    """Raw outputs (logits) of the model on stored inputs, float64."""
    torch = _torch()
    x = _model_view(stored, layout, arch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.eval()
    try:
        with torch.no_grad():
            return np.concatenate([model(torch.as_tensor(x[i : i + batch_size])).double().numpy()
                                   for i in range(0, len(x), batch_size)])
    finally:
        torch.set_num_threads(threads)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the log-loss of ``softmax(logits / T)``."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda t: _nll(_softmax(logits / math.exp(t)), y), bounds=(-4, 4), method="bounded")
    return float(math.exp(res.x))


def _scale_logits(model, factor: float) -> None:
    """Multiply the model's logits by ``factor`` by scaling its last linear layer (a temperature left in)."""
    torch = _torch()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)


def _fit(model, x, y, x_val, y_val, *, epochs: int, lr: float, seed: int, patience: int | None = None,
         label_smoothing: float = 0.0, class_weights=None, snapshots: bool = False, batch_size: int = 64,
         stop_on_rise: float | None = None):
    """Train with Adam and cross-entropy on one thread; optional early stopping on the validation loss.

    Returns
    -------
    history : dict of lists
        ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr`` per epoch run.
    info : dict
        ``best_epoch`` (lowest validation loss, 0-based), ``epochs_run``, ``restored`` (early stopping
        restored the best weights), and ``snapshots`` (state dicts per epoch) when asked.

    ``stop_on_rise`` (no early stopping): stop once the validation loss is that
    fraction above its minimum, at least 10 epochs after it.
    """
    torch = _torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_loop(torch, model, x, y, x_val, y_val, epochs, lr, seed, patience, label_smoothing,
                         class_weights, snapshots, batch_size, stop_on_rise)
    finally:
        torch.set_num_threads(threads)


def _fit_loop(torch, model, x, y, x_val, y_val, epochs, lr, seed, patience, label_smoothing, class_weights,
              snapshots, batch_size, stop_on_rise):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    weight = None if class_weights is None else torch.as_tensor(np.asarray(class_weights, np.float32))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "lr": []}
    best, best_epoch, best_state, waited, snaps = np.inf, 0, None, 0, []
    for epoch in range(epochs):
        total, correct = train_epoch(torch, model, xt, yt, loss_fn, opt, batch_size, gen)
        probs = torch_probs(model, x_val)
        hist["loss"].append(total / len(xt))
        hist["accuracy"].append(correct / len(xt))
        hist["val_loss"].append(_nll(probs, y_val))
        hist["val_accuracy"].append(float((probs.argmax(1) == y_val).mean()))
        hist["lr"].append(float(lr))
        if snapshots:
            snaps.append(copy.deepcopy(model.state_dict()))
        if hist["val_loss"][-1] < best:
            best, best_epoch, waited = hist["val_loss"][-1], epoch, 0
            if patience is not None:
                best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
            if stop_on_rise is not None and waited >= 10 and hist["val_loss"][-1] >= (1 + stop_on_rise) * best:
                break
    restored = patience is not None and best_state is not None
    if restored:
        model.load_state_dict(best_state)
    model.eval()
    info = {"best_epoch": best_epoch, "epochs_run": len(hist["loss"]), "restored": restored}
    if snapshots:
        info["snapshots"] = snaps
    return hist, info


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(1) == y).mean())


def _nll(probs: np.ndarray, y: np.ndarray) -> float:
    p = probs[np.arange(len(y)), y]
    return float(-np.log(np.clip(np.nan_to_num(p, nan=0.0), 1e-12, 1.0)).mean())


# -- building a case --------------------------------------------------------------------------------
@dataclass
class _Build:
    """Everything a case is made of while it is being built."""

    case: GridCase
    rng: np.random.Generator
    class_names: list[str]
    x: dict  # split -> float32 N×H×W×C images in [0, 1]
    y: dict  # split -> labels (None: not given)
    notes: dict
    train: dict = field(default_factory=dict)  # keyword arguments of `_fit`
    enc: _Encoding | None = None
    stored: dict = field(default_factory=dict)  # split -> stored inputs given to whylow
    probs: dict = field(default_factory=dict)  # split -> predictions given instead of the model
    model: Any = None
    give_model: bool = True
    history: dict | None = None
    fit_info: dict = field(default_factory=dict)
    clean_x: dict = field(default_factory=dict)  # images before a fault that a retry redoes

    @property
    def n_outputs(self) -> int:
        return 2 if self.case.params.get("task") == "binary" else self.case.n_classes


def build_case(case: GridCase) -> Scenario:
    """Build the scenario of a grid case: draw the images, store them, train the model, inject the fault.

    Parameters
    ----------
    case : GridCase
        From `sample_case`.

    Returns
    -------
    whylow.scenarios.Scenario
        ``expected`` is ``case.fault``; ``notes`` holds the case (``notes["grid"]``), what was injected
        (``notes["fault"]``, ``notes["preprocessing"]`` / ``notes["shift"]`` for input faults), the measured
        effect of an input fault (``notes["effect"]``), the split sizes delivered and the fit reached.
    """
    return _assemble(_build_trained(case))


def _build_trained(case: GridCase) -> _Build:
    b = _start(case)
    _BEFORE.get(case.fault, _noop)(b)
    _store_and_train(b)
    _measure_fit(b)
    _AFTER.get(case.fault, _noop)(b)
    return b


def _measure_fit(b: _Build) -> None:
    """Eval-mode accuracy on the stored training and validation splits, their gap, and the model's own temperature.

    ``val_temperature`` is the temperature that would calibrate the model on
    validation data (above 1: overconfident; below 1: underconfident); a
    healthy case's calibration is whatever early stopping left.
    """
    layout, arch = b.enc.layout, b.case.arch
    acc = {s: _accuracy(_predict(b.model, b.stored[s], layout, arch), b.y[s]) for s in ("train", "val")}
    t = _temperature(_logits(b.model, b.stored["val"], layout, arch), b.y["val"])
    b.notes["fit"].update(train_accuracy=round(acc["train"], 4), val_accuracy=round(acc["val"], 4),
                          gap=round(acc["train"] - acc["val"], 4), val_temperature=round(t, 3))


def _store_and_train(b: _Build) -> None:
    """Fit the storage statistics on the training images, store every split, and train the model."""
    b.enc = _Encoding.fit(b.case, b.x["train"])
    b.stored = {s: b.enc.encode(x) for s, x in b.x.items()}
    _train(b)


def _noop(b: _Build) -> None:
    return None


def _start(case: GridCase) -> _Build:
    rng = np.random.default_rng([case.seed, 1])
    source = load_source(case.source, case.colour, case.size, case.n_classes, rng)
    counts = _split_counts(case, rng)
    drawn = source.draw(counts, rng)
    x = {s: xy[0] for s, xy in drawn.items()}
    y = {s: xy[1] for s, xy in drawn.items()}
    notes = {
        "grid": asdict(case),
        "label": case.label,
        "fault": "none" if case.fault is None else f"{case.fault} ({case.variant})",
        "seed": case.seed,
        "sizes": {s: int(len(v)) for s, v in y.items()},
    }
    return _Build(case, rng, list(source.class_names), x, y, notes)


def _balanced(n: int, k: int, rng) -> np.ndarray:
    counts = np.full(k, n // k)
    counts[rng.choice(k, n - counts.sum(), replace=False)] += 1
    return counts


def _split_counts(case: GridCase, rng) -> dict:
    """Images per class in each split, including the fault's class-prior changes."""
    k = case.n_classes
    counts = {"train": _balanced(case.n_train, k, rng), "val": _balanced(case.n_val, k, rng),
              "test": _balanced(case.n_test, k, rng)}
    if case.fault == "label-shift":
        order = rng.permutation(k)
        q = case.params["prior_ratio"] ** (-np.arange(k) / max(k - 1, 1))
        priors = np.empty(k)
        priors[order] = q / q.sum()
        counts["test"] = np.maximum(2, np.round(priors * case.n_test)).astype(int)
        case.params["test_priors"] = [round(float(p), 4) for p in priors]
    if case.fault == "class-imbalance":
        minority = sorted(rng.choice(k, size=case.params["n_minority"], replace=False).tolist())
        case.params["minority_classes"] = minority
        for s in ("train", "val"):
            c = counts[s].copy()
            c[minority] = np.maximum(2, np.ceil(c[minority] / case.params["factor"])).astype(int)
            counts[s] = c
    return counts


def _train(b: _Build) -> None:
    """Build and train the model on the stored training split, as the model sees it."""
    case = b.case
    model = _make_model(case, b.enc, b.n_outputs)
    view = lambda s: _model_view(b.stored[s], b.enc.layout, case.arch)  # noqa: E731
    kwargs = {"epochs": int(case.params["max_epochs"]), "lr": float(case.params["lr"]), "seed": case.seed,
              "batch_size": int(case.params["batch_size"]), "patience": _patience(case), **b.train}
    b.history, b.fit_info = _fit(model, view("train"), b.y["train"], view("val"), b.y["val"], **kwargs)
    b.model = model
    h = b.history
    b.notes["fit"] = {
        "epochs_run": b.fit_info["epochs_run"], "best_epoch": b.fit_info["best_epoch"],
        "early_stopping": kwargs["patience"] is not None, "lr": kwargs["lr"],
        "final_train_accuracy": round(h["accuracy"][-1], 4), "final_val_accuracy": round(h["val_accuracy"][-1], 4),
    }


def _patience(case: GridCase) -> int:
    """Early-stopping patience in epochs: about 150 optimiser steps, between 5 and 15 epochs.

    Small training sets take few steps per epoch; a fixed patience of a few
    epochs would stop them during the slow start some sources have.
    """
    steps = max(1, math.ceil(case.n_train / int(case.params["batch_size"])))
    return int(np.clip(math.ceil(150 / steps), 5, 15))


def _assemble(b: _Build) -> Scenario:
    case = b.case
    splits = {}
    for s in ("train", "val", "test"):
        kwargs = {"x": b.stored[s], "y": b.y[s]}
        if s in b.probs:
            kwargs["probs"] = b.probs[s]
        splits[s] = Split(**kwargs)
    b.notes["sizes"] = {s: int(len(b.stored[s])) for s in splits}
    if "variant" in b.notes:  # an input fault redrawn by its effect gate
        b.notes["label"] = b.notes["label"].replace(f"/{case.variant} ", f"/{b.notes['variant']} ", 1)
    b.notes["storage"] = {"values": b.enc.value_kind, "layout": b.enc.layout, "model_input": case.model_input,
                          "train_mean": [round(float(v), 4) for v in b.enc.mean],
                          "train_std": [round(float(v), 4) for v in b.enc.std]}
    binary = case.params.get("task") == "binary"
    names = b.notes.get("binary_names", ["negative", "positive"]) if binary else b.class_names
    return Scenario(
        name=f"grid-{case.seed}",
        expected=case.fault,
        train=splits["train"], val=splits["val"], test=splits["test"],
        model=b.model if b.give_model else None,
        history=b.history,
        class_names=list(names),
        notes=b.notes,
    )


# -- input faults (test split, effect-gated) --------------------------------------------------------
def _apply_preprocessing(b: _Build, p: dict) -> np.ndarray:
    """The stored test split as the faulty pipeline produced it."""
    x, enc, kind = b.x["test"], b.enc, p["kind"]
    if kind == "scale":
        if p.get("stored_as") == "uint8":
            return enc.to_layout(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8))
        return enc.to_layout((enc.values(x).astype(np.float64) * p["factor"]).astype(np.float32))
    if kind == "standardisation-missing":
        return enc.to_layout(x.astype(np.float32))
    if kind == "normalisation-constants":
        mean, std = _NORMALISATION_PRESETS[b.case.colour][p["name"]]
        return enc.to_layout(((x - np.asarray(mean)) / np.asarray(std)).astype(np.float32))
    return enc.encode(_pixel_fault(x, p))


def _pixel_fault(x: np.ndarray, p: dict) -> np.ndarray:
    """Channel order, flips, rotations and inversion, on N×H×W×C images in [0, 1]."""
    kind = p["kind"]
    if kind == "channel-order":
        return x[..., ::-1]
    if kind == "flip":
        return x[:, :, ::-1] if p["axis"] == "horizontal" else x[:, ::-1]
    if kind == "rotation":
        return np.rot90(x, p["k"], axes=(1, 2))
    if kind == "inversion":
        return 1.0 - x
    raise ValueError(f"unknown pixel fault {kind!r}")


def _apply_shift(b: _Build, p: dict, rng) -> np.ndarray:
    """The stored test split after a covariate shift of the images themselves (per-image random, not one map)."""
    x = b.x["test"].astype(np.float64)
    n = len(x)
    kind = p["kind"]
    if kind == "lighting":
        gain = rng.uniform(1 - p["gain_spread"], 1 + p["gain_spread"] / 2, (n, 1, 1, 1))
        lift = rng.uniform(0, p["lift"], (n, 1, 1, 1))
        out = gain * x ** p["gamma"] + lift
    elif kind == "blur":
        from scipy import ndimage

        out = ndimage.gaussian_filter(x, sigma=(0, p["sigma_px"], p["sigma_px"], 0), mode="nearest")
    elif kind == "noise":
        out = x + rng.normal(0, p["sd"], x.shape)
    elif kind == "contrast":
        c = np.clip(rng.uniform(p["factor"] - p["spread"], p["factor"] + p["spread"], (n, 1, 1, 1)), 0.05, 1)
        m = x.mean(axis=(1, 2, 3), keepdims=True)
        out = m + c * (x - m)
    else:  # colour cast
        g = np.asarray(p["gains"]) * rng.uniform(1 - p["spread"], 1 + p["spread"], (n, 1, 1, 3))
        out = x * g
    return b.enc.encode(np.clip(out, 0, 1).astype(np.float32))


def _effect(b: _Build, faulted: np.ndarray) -> dict:
    """Accuracy and log-loss of the model on the clean and on the faulted test inputs."""
    y, layout, arch = b.y["test"], b.enc.layout, b.case.arch
    clean = _predict(b.model, b.stored["test"], layout, arch)
    bad = _predict(b.model, faulted, layout, arch)
    return {
        "clean_accuracy": round(float((clean.argmax(1) == y).mean()), 4),
        "faulted_accuracy": round(float((bad.argmax(1) == y).mean()), 4),
        "clean_log_loss": round(_nll(clean, y), 4),
        "faulted_log_loss": round(_nll(bad, y), 4),
    }


def _matters(e: dict) -> bool:
    """Whether an input fault is a cause of low predictions.

    It must cost at least 5 accuracy points, or raise the log-loss by at
    least 10 % and by at least 0.05 nats.
    """
    rise = e["faulted_log_loss"] - e["clean_log_loss"]
    return (e["clean_accuracy"] - e["faulted_accuracy"] >= _GATE_ACCURACY
            or (rise >= _GATE_LOG_LOSS * e["clean_log_loss"] and rise >= _GATE_LOG_LOSS_ABS))


def _after_input_fault(b: _Build) -> None:
    """Inject the case's input fault into the test split; redraw it while it has no effect on the model.

    The first two redraws keep the fault's kind (another flip axis, rotation,
    divisor or preset; a covariate shift from the upper part of its range),
    later ones may change it, so kinds that rarely matter to a model (a flip
    of a texture photo) are not silently replaced at the first miss.
    """
    case = b.case
    redraw = np.random.default_rng([case.seed, 2])
    p, tried = dict(case.params["fault"]), []
    for attempt in range(_MAX_REDRAWS + 1):
        shift_rng = np.random.default_rng([case.seed, 3, attempt])
        faulted = (_apply_preprocessing(b, p) if case.fault == "preprocessing-mismatch"
                   else _apply_shift(b, p, shift_rng))
        effect = _effect(b, faulted)
        tried.append({**p, **effect})
        if _matters(effect):
            break
        same_kind = p["kind"] if attempt < _SAME_KIND_REDRAWS else None
        p = _draw_input_fault(redraw, case, strength=(attempt + 1) / _MAX_REDRAWS, kind=same_kind)
    gate = "passed" if _matters(effect) else "failed: no draw changed the model's predictions enough"
    b.stored["test"] = faulted
    b.notes["effect"] = {**effect, "gate": gate, "redraws": len(tried) - 1, "rejected": tried[:-1]}
    key = "preprocessing" if case.fault == "preprocessing-mismatch" else "shift"
    b.notes[key] = p
    b.notes["fault"] = f"{case.fault}: {_describe_input_fault(p)}"
    b.notes["variant"] = p["kind"]


def _describe_input_fault(p: dict) -> str:
    kind = p["kind"]
    if kind == "scale":
        how = "left as raw uint8 0-255" if p.get("stored_as") == "uint8" else f"divided by {p['divisor']:g}"
        return f"test inputs {how}: {p['factor']:.4g}x the training values"
    if kind == "standardisation-missing":
        return "training inputs standardised with the training mean/std, test inputs left in [0, 1]"
    if kind == "normalisation-constants":
        return f"test inputs standardised with the {p['name']} constants instead of the training statistics"
    if kind == "channel-order":
        return "test channels in BGR order, training in RGB"
    if kind == "flip":
        return f"test images flipped {p['axis']}ly"
    if kind == "rotation":
        return f"test images rotated: np.rot90(image, k={p['k']}) over (height, width)"
    if kind == "inversion":
        return "test intensities inverted (1 - x)"
    rest = ", ".join(f"{k} {_fmt(v)}" for k, v in p.items() if k != "kind")
    return f"test images under a {kind} shift ({rest})"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(u) for u in v) + "]"
    return str(v)


# -- label and training faults (before training) ----------------------------------------------------
def _before_label_noise(b: _Build) -> None:
    from whylow.scenarios.label_faults import flip_labels

    f, k = b.case.params["fraction"], b.case.n_classes
    splits = ("train", "val", "test") if b.case.variant == "both" else ("test",)
    flipped = {}
    for s in splits:
        b.y[s], idx = flip_labels(b.y[s], f, k, b.rng)
        flipped[s] = int(len(idx))
    b.notes["fault"] = f"label-noise: {f:.0%} of the {'/'.join(splits)} labels flipped uniformly to another class"
    b.notes["flipped"] = flipped


def _before_no_signal(b: _Build) -> None:
    for s in b.y:
        b.y[s] = b.rng.integers(0, b.case.n_classes, size=len(b.y[s])).astype(np.int64)
    b.notes["fault"] = "no-signal: every label drawn uniformly at random, independent of its image"


def _before_misleading(b: _Build) -> None:
    rate = b.case.params["positive_rate"]
    for s in b.y:
        b.y[s] = (b.rng.random(len(b.y[s])) < rate).astype(np.int64)
    b.notes["binary_names"] = ["negative", "positive"]
    b.notes["fault"] = (f"misleading-metric: a binary task with {rate:.0%} positives whose labels the images do not "
                        "predict; accuracy equals the majority baseline")
    b.notes["related"] = ["no-signal"]


def _before_threshold(b: _Build) -> None:
    p = b.case.params
    b.clean_x = dict(b.x)
    for s_i, s in enumerate(list(b.x)):  # the same sensor noise in every split, so the classes overlap
        b.x[s] = _noisy(b.x[s], p["pixel_noise"], np.random.default_rng([b.case.seed, 4, s_i]))
        b.y[s] = np.isin(b.y[s], p["positives"]).astype(np.int64)
    b.train["class_weights"] = np.array([1.0, p["positive_weight"]])
    pos = "/".join(b.class_names[k] for k in p["positives"])
    b.notes["binary_names"] = ["other", pos]
    b.notes["fault"] = (f"decision-threshold: binary 'is it {pos}', pixel noise sd {p['pixel_noise']:.2f}, positive "
                        f"class loss weight {p['positive_weight']:.2f}")


def _before_underconfidence(b: _Build) -> None:
    if b.case.variant == "label-smoothing":
        b.train["label_smoothing"] = b.case.params["label_smoothing"]
        b.notes["fault"] = f"underconfidence: trained with label smoothing {b.case.params['label_smoothing']:.2f}"


def _before_underfitting(b: _Build) -> None:
    p, v = b.case.params, b.case.variant
    b.train["patience"] = None
    b.notes["fault"] = {
        "one-epoch": "underfitting: trained for a single epoch",
        "tiny-lr": f"underfitting: Adam lr {p['lr']:.2g} for {p['max_epochs']} epochs",
        "tiny-capacity": f"underfitting: {b.case.arch} of width {b.case.width}",
    }[v]
    if v == "tiny-lr":
        b.notes["equivalent"] = ["learning-rate"]  # the injected cause is a learning rate too low: either name is right


def _before_overfitting(b: _Build) -> None:
    b.train["patience"] = None
    c = b.case
    head = " with a dense head" if c.params.get("dense_head") else ""
    b.notes["fault"] = (f"overfitting: {c.arch} width {c.width}{head}, "
                        f"{c.n_train} training images, {c.params['max_epochs']} epochs at lr {c.params['lr']:g}, "
                        "no early stopping, no regularisation")


def _before_learning_rate(b: _Build) -> None:
    b.train["patience"] = None
    b.notes["fault"] = f"learning-rate: Adam lr {b.case.params['lr']:.3g} (healthy 3e-3), no early stopping"


def _before_data_quality(b: _Build) -> None:
    if b.case.variant != "conflicting-duplicates":
        return
    f = b.case.params["fraction"]
    n = max(1, int(round(f * len(b.y["train"]))))
    rows = b.rng.choice(len(b.y["train"]), n, replace=False)
    k = b.case.n_classes
    b.x["train"] = np.concatenate([b.x["train"], b.x["train"][rows]])
    b.y["train"] = np.concatenate([b.y["train"], (b.y["train"][rows] + b.rng.integers(1, k, n)) % k])
    b.notes["fault"] = f"data-quality: {n} training images duplicated with a different label"
    b.notes["related"] = ["label-noise"]


def _before_healthy(b: _Build) -> None:
    if b.case.variant == "late-rise":
        b.train.update(patience=None, snapshots=True, stop_on_rise=0.25)


_BEFORE: dict[str | None, Callable[[_Build], None]] = {
    "label-noise": _before_label_noise,
    "no-signal": _before_no_signal,
    "misleading-metric": _before_misleading,
    "decision-threshold": _before_threshold,
    "underconfidence": _before_underconfidence,
    "underfitting": _before_underfitting,
    "overfitting": _before_overfitting,
    "learning-rate": _before_learning_rate,
    "data-quality": _before_data_quality,
    None: _before_healthy,
}


# -- faults after training --------------------------------------------------------------------------
def _after_logits(b: _Build) -> None:
    """A temperature left in the deployed model: logits ×2–5 (overconfidence) or ÷2–5 (underconfidence).

    The factor is applied to the model's calibrated logits (its own
    temperature, fitted on validation data, is divided out first), so the
    injected miscalibration has the drawn size whatever the trained model's
    own calibration was. Gated like the input faults: the test log-loss must
    rise at least 10 % and 0.05 nats over the calibrated model's, else the
    strongest factor (5) is tried.
    """
    if b.case.variant == "label-smoothing":
        _record_confidence(b)
        return
    layout, arch = b.enc.layout, b.case.arch
    t_model = _temperature(_logits(b.model, b.stored["val"], layout, arch), b.y["val"])
    test_logits = _logits(b.model, b.stored["test"], layout, arch)
    calibrated = _softmax(test_logits / t_model)
    y = b.y["test"]
    drawn = b.case.params["logit_factor"]
    for factor in (drawn, 5.0 if drawn > 1 else 0.2):
        after = _softmax(test_logits * factor / t_model)
        effect = {"accuracy": round(float((after.argmax(1) == y).mean()), 4),
                  "clean_log_loss": round(_nll(calibrated, y), 4), "faulted_log_loss": round(_nll(after, y), 4),
                  "clean_mean_confidence": round(float(calibrated.max(1).mean()), 4),
                  "faulted_mean_confidence": round(float(after.max(1).mean()), 4)}
        rise = effect["faulted_log_loss"] - effect["clean_log_loss"]
        if rise >= _GATE_LOG_LOSS * effect["clean_log_loss"] and rise >= _GATE_LOG_LOSS_ABS:
            break
    passed = rise >= _GATE_LOG_LOSS * effect["clean_log_loss"] and rise >= _GATE_LOG_LOSS_ABS
    _scale_logits(b.model, factor / t_model)
    b.notes["effect"] = {**effect, "gate": "passed" if passed else "failed: the miscalibration costs no log-loss",
                         "model_temperature": round(t_model, 4), "factor": round(factor, 4),
                         "applied_logit_factor": round(factor / t_model, 4)}
    how = "multiplied" if factor > 1 else "divided"
    amount = factor if factor > 1 else 1 / factor
    b.notes["fault"] = (f"{b.case.fault}: the deployed model's calibrated logits {how} by {amount:.2f} "
                        f"(a temperature left in; the trained model's own temperature {t_model:.2f} divided out first)")


def _record_confidence(b: _Build) -> None:
    probs = _predict(b.model, b.stored["test"], b.enc.layout, b.case.arch)
    y = b.y["test"]
    b.notes["effect"] = {"accuracy": round(float((probs.argmax(1) == y).mean()), 4),
                         "mean_confidence": round(float(probs.max(1).mean()), 4),
                         "log_loss": round(_nll(probs, y), 4)}


def _after_leakage(b: _Build) -> None:
    p = b.case.params
    n_test = len(b.y["test"])
    n_copy = min(int(round(p["fraction"] * n_test)), len(b.y["train"]))
    slots = np.sort(b.rng.choice(n_test, n_copy, replace=False))
    sources = b.rng.choice(len(b.y["train"]), n_copy, replace=False)
    copies = b.x["train"][sources].copy()
    half = n_copy // 2
    copies[half:] = np.clip(copies[half:] + b.rng.normal(0, p["jitter"], copies[half:].shape), 0, 1)
    x_test = b.x["test"].copy()
    x_test[slots] = copies
    b.x["test"] = x_test
    b.y["test"] = b.y["test"].copy()
    b.y["test"][slots] = b.y["train"][sources]
    b.stored["test"] = b.enc.encode(x_test)
    b.notes["fault"] = (f"train-test-leakage: {n_copy} of {n_test} test images are copies of training images "
                        f"({half} exact, {n_copy - half} with pixel noise sd {p['jitter'] * 255:.1f}/255)")


def _after_small_sample(b: _Build) -> None:
    b.notes["fault"] = f"small-sample: the model evaluated on only {len(b.y['test'])} test images"


def _after_label_shift(b: _Build) -> None:
    ratio = b.case.params["prior_ratio"]
    b.notes["fault"] = f"label-shift: training balanced, test priors geometric with max/min ratio {ratio:.1f}"
    b.notes["test_labels"] = b.case.variant == "labelled"
    if b.case.variant == "unlabelled":
        b.y["test"] = None


def _after_imbalance(b: _Build) -> None:
    p = b.case.params
    b.notes["fault"] = (f"class-imbalance: classes {p['minority_classes']} subsampled {p['factor']:.0f}x in train and "
                        "val; test balanced")
    b.notes["train_counts"] = np.bincount(b.y["train"], minlength=b.case.n_classes).tolist()


def _after_data_quality(b: _Build) -> None:
    v, f = b.case.variant, b.case.params["fraction"]
    if v == "conflicting-duplicates":
        return
    n_test = len(b.y["test"])
    blank = b.rng.choice(n_test, max(1, int(round(f * n_test))), replace=False)
    x_test = b.x["test"].copy()
    x_test[blank] = 0.0
    b.stored["test"] = b.enc.encode(x_test)
    if v == "blank-test":
        b.notes["fault"] = f"data-quality: {len(blank)} of {n_test} test images blank (all black)"
        return
    n_train = len(b.y["train"])
    nan_rows = b.rng.choice(n_train, max(1, int(round(f * n_train))), replace=False)
    train = b.stored["train"].astype(np.float32).copy()
    train[nan_rows] = np.nan
    layout, arch = b.enc.layout, b.case.arch
    b.probs = {s: _predict(b.model, b.stored[s], layout, arch) for s in ("val", "test")}
    b.stored["train"] = train
    b.give_model = False
    b.notes["fault"] = (f"data-quality: {len(nan_rows)} NaN training images and {len(blank)} blank test images; "
                        "predictions given instead of the model (a model fed NaN returns NaN)")


def _threshold_effect(b: _Build) -> dict:
    """Validation AUC, and balanced accuracy at 0.5 and at the best threshold."""
    from sklearn.metrics import roc_auc_score

    probs = _predict(b.model, b.stored["val"], b.enc.layout, b.case.arch)[:, 1]
    y = b.y["val"]

    def balanced(t):
        pred = probs >= t
        return float(np.mean([np.mean(pred[y == 1]), np.mean(~pred[y == 0])]))

    best = max(np.linspace(0.02, 0.98, 49), key=balanced)
    return {"val_auc": round(float(roc_auc_score(y, probs)), 4),
            "val_balanced_accuracy_at_0.5": round(balanced(0.5), 4),
            "best_threshold": round(float(best), 2),
            "val_balanced_accuracy_at_best": round(balanced(best), 4)}


def _after_threshold(b: _Build) -> None:
    """Gate: the best threshold must gain ≥ 5 points of validation balanced accuracy over 0.5.

    Otherwise the case is rebuilt (up to twice) with half the pixel noise
    (when the model barely separates the classes: val AUC below 0.65) or
    half the positive class weight.
    """
    p = b.case.params
    effect = _threshold_effect(b)
    for _ in range(2):
        gain = effect["val_balanced_accuracy_at_best"] - effect["val_balanced_accuracy_at_0.5"]
        if gain >= 0.05:
            break
        if effect["val_auc"] < 0.65:
            p["pixel_noise"] /= 2
        else:
            p["positive_weight"] /= 2
        b.train["class_weights"] = np.array([1.0, p["positive_weight"]])
        b.x = {s: _noisy(x, p["pixel_noise"], np.random.default_rng([b.case.seed, 4, s_i]))
               for s_i, (s, x) in enumerate(b.clean_x.items())}
        _store_and_train(b)
        effect = _threshold_effect(b)
    gain = effect["val_balanced_accuracy_at_best"] - effect["val_balanced_accuracy_at_0.5"]
    effect["gate"] = "passed" if gain >= 0.05 else "failed: threshold not misplaced"
    b.notes["effect"] = effect
    pos = b.notes["binary_names"][1]
    b.notes["fault"] = (f"decision-threshold: binary 'is it {pos}', pixel noise sd {p['pixel_noise']:.2f}, positive "
                        f"class loss weight {p['positive_weight']:.2f}")


def _noisy(x: np.ndarray, sd: float, rng) -> np.ndarray:
    return np.clip(x + rng.normal(0, sd, x.shape), 0, 1).astype(np.float32)


def _after_healthy(b: _Build) -> None:
    v = b.case.variant
    if v == "late-rise":
        _stop_late(b)
    elif v == "quantised-test":
        q = np.round(b.x["test"] * 255.0) / 255.0
        b.stored["test"] = b.enc.encode(q.astype(np.float32))
        b.notes["healthy"] = "float test inputs quantised to the 1/255 grid (np.round(x * 255) / 255); nothing else"
    else:
        b.notes["healthy"] = "trained with early stopping on validation loss, best weights restored"
    _calibrate_healthy(b)


#: A healthy model's validation temperature lies within these bounds; outside them it is temperature-scaled.
HEALTHY_TEMPERATURE = (0.8, 1.25)


def _calibrate_healthy(b: _Build) -> None:
    """Temperature-scale a healthy model whose validation temperature is outside `HEALTHY_TEMPERATURE`.

    A model left over- or underconfident by early stopping has a real calibration fault (whylow is right to
    flag it), so a *healthy* case ends as a careful practitioner's pipeline does: with its logits divided by
    the temperature fitted on validation data (Guo et al. 2017). The temperature is recorded in the notes.
    """
    t = _temperature(_logits(b.model, b.stored["val"], b.enc.layout, b.case.arch), b.y["val"])  # of the final weights
    lo, hi = HEALTHY_TEMPERATURE
    if lo <= t <= hi:
        return
    _scale_logits(b.model, 1.0 / t)
    b.notes["healthy"] += f"; temperature-scaled on validation data (T={t:.2f})"
    b.notes["fit"]["calibrated_temperature"] = round(t, 3)


def _stop_late(b: _Build) -> None:
    """Keep the epoch after the best one with the highest validation loss whose validation accuracy is within
    1 point of the best epoch's (the late rise that early stopping would have cut off)."""
    h, info = b.history, b.fit_info
    best = info["best_epoch"]
    ok = [e for e in range(best, len(h["val_loss"])) if h["val_accuracy"][e] >= h["val_accuracy"][best] - 0.01]
    final = max(ok, key=lambda e: (h["val_loss"][e], e))
    b.model.load_state_dict(info["snapshots"][final])
    b.model.eval()
    b.history = {k: v[: final + 1] for k, v in h.items()}
    rise = h["val_loss"][final] / h["val_loss"][best] - 1
    b.notes["healthy"] = (f"trained past its best epoch without early stopping: epoch {final + 1} kept, validation "
                          f"loss {rise:+.0%} above its minimum at epoch {best + 1}, validation accuracy "
                          f"{h['val_accuracy'][final]:.3f} vs {h['val_accuracy'][best]:.3f}")
    b.notes["late_rise"] = {"best_epoch": best + 1, "final_epoch": final + 1, "val_loss_rise": round(rise, 4),
                            "val_accuracy_gap": round(h["val_accuracy"][best] - h["val_accuracy"][final], 4)}
    b.notes["fit"].update(epochs_run=final + 1, final_train_accuracy=round(h["accuracy"][final], 4),
                          final_val_accuracy=round(h["val_accuracy"][final], 4))
    b.fit_info.pop("snapshots", None)
    _measure_fit(b)


def _healthy_val_accuracy(b: _Build) -> float:
    """Validation accuracy of a healthy model (the case's architecture at its healthy width, Adam 3e-3, early stopping)."""
    case = b.case
    healthy = copy.deepcopy(case)
    healthy.width = case.params.get("healthy_width", case.width)
    healthy.params.update(lr=3e-3, max_epochs=_epoch_budget(healthy))
    ref = _make_model(healthy, b.enc, b.n_outputs)
    view = lambda s: _model_view(b.stored[s], b.enc.layout, case.arch)  # noqa: E731
    _fit(ref, view("train"), b.y["train"], view("val"), b.y["val"], epochs=healthy.params["max_epochs"],
         lr=3e-3, seed=case.seed, patience=_patience(case), batch_size=int(case.params["batch_size"]))
    return _accuracy(_predict(ref, b.stored["val"], b.enc.layout, case.arch), b.y["val"])


def _after_overfitting(b: _Build) -> None:
    """Gate: the model must have fitted its training data (accuracy at least 0.9) at least 5 points better than validation.

    A memorising run that diverged instead (a learning rate too high for the architecture) injected no overfitting.
    """
    fit = b.notes["fit"]
    gap = fit["train_accuracy"] - fit["val_accuracy"]
    ok = fit["train_accuracy"] >= 0.9 and gap >= 0.05
    b.notes["effect"] = {"train_accuracy": fit["train_accuracy"], "val_accuracy": fit["val_accuracy"], "gap": round(gap, 4),
                         "gate": "passed" if ok else "failed: the model did not overfit (it did not fit its training data, or generalised as well)"}


def _after_learning_rate(b: _Build) -> None:
    """Gate: training at the drawn learning rate must cost at least 5 validation accuracy points against a healthy model."""
    ref_val = _healthy_val_accuracy(b)
    own_val = _accuracy(_predict(b.model, b.stored["val"], b.enc.layout, b.case.arch), b.y["val"])
    b.notes["effect"] = {"healthy_val_accuracy": round(ref_val, 4), "val_accuracy": round(own_val, 4),
                         "gate": "passed" if own_val <= ref_val - 0.05 else "failed: the learning rate did not hurt"}


def _after_underfitting(b: _Build) -> None:
    """Gate: the underfit model must score at least 10 points below a healthy model trained on the same data.

    Otherwise it is retrained with Adam at lr 3e-6 for 5 epochs (barely moving from its initial weights).
    """
    case = b.case
    ref_val = _healthy_val_accuracy(b)
    own_val = _accuracy(_predict(b.model, b.stored["val"], b.enc.layout, case.arch), b.y["val"])
    effect = {"healthy_val_accuracy": round(ref_val, 4), "val_accuracy": round(own_val, 4), "retrained": False}
    if own_val > ref_val - 0.10:
        case.params.update(lr=3e-6, max_epochs=5)
        b.train.update(patience=None)
        _store_and_train(b)
        own_val = _accuracy(_predict(b.model, b.stored["val"], b.enc.layout, case.arch), b.y["val"])
        b.notes["fault"] += "; not underfit enough, so retrained with Adam lr 3e-6 for 5 epochs"
        b.notes["equivalent"] = ["learning-rate"]  # now a learning rate too low: either name is right
        effect.update(val_accuracy=round(own_val, 4), retrained=True)
    effect["gate"] = "passed" if own_val <= ref_val - 0.10 else "failed: no worse than a healthy model"
    b.notes["effect"] = effect


_AFTER: dict[str | None, Callable[[_Build], None]] = {
    "underfitting": _after_underfitting,
    "overfitting": _after_overfitting,
    "learning-rate": _after_learning_rate,
    "preprocessing-mismatch": _after_input_fault,
    "covariate-shift": _after_input_fault,
    "overconfidence": _after_logits,
    "underconfidence": _after_logits,
    "train-test-leakage": _after_leakage,
    "small-sample": _after_small_sample,
    "label-shift": _after_label_shift,
    "class-imbalance": _after_imbalance,
    "data-quality": _after_data_quality,
    "decision-threshold": _after_threshold,
    None: _after_healthy,
}
