"""The closed list of input-pipeline bugs, each with the transform that undoes it.

A candidate says how test inputs may have been produced from the same images
as training inputs by a different preprocessing step, and carries the
transform (`whylow.fixes.preprocessing`) that maps the test inputs back:

=========================  =========================================================  ==========
kind                       bug                                                        family
=========================  =========================================================  ==========
scale                      divided by another of 1, 255, 127, 127.5, 128, 256, 65535   value
standardisation-missing    training inputs standardised (mean 0, std 1), test not      value
standardisation-extra      test inputs standardised, training inputs not               value
normalisation-constants    other mean/std constants (ImageNet, CIFAR-10, MNIST,        value
                           0.5/0.5, constants in [0, 1] units on 0-255 data)
inversion                  intensities inverted (``max - x``)                          value
channel-order              channels permuted (RGB vs BGR, ...)                         channel
flip                       horizontal or vertical flip                                 geometry
rotation                   rotation by 90, 180 or 270 degrees                          geometry
transpose                  height and width axes swapped                               geometry
wraparound                 8-bit values shifted by 128 modulo 256 (int8 vs uint8)      wrap
=========================  =========================================================  ==========

Value candidates are enumerated as pairs of *conventions*, one per split: a
convention stores an intensity ``p`` in [0, 1] as ``(p * v - m) / s``
(``v = 255 / divisor``; ``m``, ``s`` the normalisation constants). A
convention is *plausible* for a split when its stored values map back into
[0, 1] (1 % and 99 % quantiles within 0.03 of the interval); the training
split must also use the range (its maximum maps to at least 0.5). Only
pairs plausible for both splits become candidates, so a darker test set is
never "explained" by constants it cannot have. Scales by a ratio of
divisors are enumerated for every pair: the seed's own example divides
values already in [0, 1] by 255 and by 127. What resize, grey/colour
conversion and layout differences change is a shape difference, handled by
the check itself. Clipping loses information and cannot be undone, so it
is not enumerated (a clipped test set is judged as covariate shift).

Each candidate has a ``prior``: among candidates the data cannot tell apart
(same accuracy within noise), the lower prior, i.e. the more common bug, is
named (``/255`` rather than ``/256``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from whylow.fixes.preprocessing import ComposedTransform, GeometricTransform, InputTransform, WrapTransform

__all__ = ["Convention", "Candidate", "DIVISORS", "KNOWN_NORMALISATIONS", "conventions", "value_candidates", "other_candidates", "compose"]

#: Divisors of 0-255 intensities seen in image pipelines, most common first.
DIVISORS = (255.0, 1.0, 127.5, 127.0, 128.0, 256.0)

#: Per-channel (mean, std) normalisation constants in [0, 1] units.
KNOWN_NORMALISATIONS = {
    "ImageNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "CIFAR-10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "CIFAR-10 (0.2023)": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "MNIST": ((0.1307,), (0.3081,)),
}

#: Tolerance, in [0, 1] intensity units, for a split's values to fit a convention's range.
RANGE_SLACK = 0.03


def _fmt(v: float, digits: int = 4) -> str:
    return f"{float(v):.{digits}g}"


def _fmt_list(values, digits: int = 4) -> str:
    values = [float(v) for v in np.atleast_1d(values)]
    if len(values) > 1 and np.allclose(values, values[0], rtol=1e-3, atol=1e-12):
        return _fmt(values[0], digits)
    return "[" + ", ".join(_fmt(v, digits) for v in values) + "]"


@dataclass(frozen=True)
class Convention:
    """How a split stores an intensity ``p`` in [0, 1]: ``(p * v - m) / s``, per channel.

    Attributes
    ----------
    label : str
        Plain words: ``"x / 255"``, ``"raw 0-255"``, ``"ImageNet mean/std"``.
    v : float
        Value of full intensity before normalisation (255 / divisor).
    m, s : tuple of float
        Normalisation constants (0 and 1 when none).
    kind : {"raw", "normalised"}
    divisor : float or None
        The divisor, for raw conventions.
    prior : int
        Rank of how common the convention is (lower is more common).
    """

    label: str
    v: float
    m: tuple
    s: tuple
    kind: str
    divisor: float | None
    prior: int

    def arrays(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """``m`` and ``s`` broadcast to ``c`` channels."""
        return np.resize(np.asarray(self.m, float), c), np.resize(np.asarray(self.s, float), c)

    def intensity(self, values: np.ndarray) -> np.ndarray:
        """Map stored values (``values[c, ...]`` per channel) back to intensities ``p``."""
        c = values.shape[0]
        m, s = self.arrays(c)
        shape = (c,) + (1,) * (values.ndim - 1)
        return (values * s.reshape(shape) + m.reshape(shape)) / self.v


def conventions(n_channels: int) -> list[Convention]:
    """Every storage convention whylow considers, most common first."""
    out = []
    for i, d in enumerate(DIVISORS):
        label = "raw 0-255" if d == 1 else f"x / {_fmt(d)}"
        out.append(Convention(label, 255.0 / d, (0.0,), (1.0,), "raw", d, i))
    out.append(Convention("0.5/0.5 ([-1, 1])", 1.0, (0.5,), (0.5,), "normalised", None, 10))
    for j, (name, (m, s)) in enumerate(KNOWN_NORMALISATIONS.items()):
        if len(m) not in (1, n_channels):
            continue
        out.append(Convention(f"{name} mean/std", 1.0, m, s, "normalised", None, 11 + j))
        out.append(Convention(f"{name} mean/std in [0, 1] units on 0-255 values", 255.0, m, s, "normalised", None, 20 + j))
    return out


def plausible(conv: Convention, q_lo: np.ndarray, q_hi: np.ndarray, vmax: float | None = None) -> bool:
    """Whether a split whose per-channel 1 % / 99 % quantiles are ``q_lo`` / ``q_hi`` can be stored as ``conv``.

    With ``vmax`` (the split's largest value) the range must also be used:
    the largest value maps to an intensity of at least 0.5.
    """
    c = len(q_lo)
    p_lo = conv.intensity(np.asarray(q_lo, float).reshape(c, 1)).ravel()
    p_hi = conv.intensity(np.asarray(q_hi, float).reshape(c, 1)).ravel()
    lo, hi = np.minimum(p_lo, p_hi), np.maximum(p_lo, p_hi)
    if lo.min() < -RANGE_SLACK or hi.max() > 1 + RANGE_SLACK:
        return False
    if vmax is not None:
        m, s = conv.arrays(c)
        if float(np.max((vmax * s + m) / conv.v)) < 0.5:
            return False
    return True


@dataclass
class Candidate:
    """One suspected input-pipeline bug and the transform that undoes it.

    Attributes
    ----------
    kind : str
        One of the kinds in the module docstring (joined by ``+`` for a composite).
    params : dict
        Its constants (``factor``, ``axis``, ``k``, ``order``, ``name``, ...).
    transform : object
        Maps training inputs to test inputs (``apply``) and back (``invert``).
    family : {"value", "channel", "geometry", "wrap"}
    prior : int
        Lower is a more common bug.
    words : str
        What is wrong, as a title fragment about the test inputs.
    fix : str
        What the user should do.
    analytic : bool
        Whether sample statistics can be mapped through ``transform`` without re-reading inputs.
    estimated : bool
        Whether the constants were estimated from the data (moment matching) rather than named,
        so the value lattices can only support them approximately.
    """

    kind: str
    params: dict
    transform: object
    family: str
    prior: int
    words: str
    fix: str
    analytic: bool = True
    parts: list = field(default_factory=list)
    estimated: bool = False

    def __post_init__(self):
        if not self.parts:
            self.parts = [self.kind]

    def describe(self) -> dict:
        """The ``preprocessing_candidate`` evidence: kind and constants."""
        return {"kind": self.kind, **self.params}


def _affine_between(a: Convention, b: Convention, c: int) -> InputTransform:
    """The map test = f(train) when training inputs are stored as ``a`` and test inputs as ``b``."""
    ma, sa = a.arrays(c)
    mb, sb = b.arrays(c)
    # train = alpha * test + beta
    alpha = sb * a.v / (b.v * sa)
    beta = (mb * a.v / b.v - ma) / sa
    return InputTransform(1.0 / alpha, -beta / alpha, np.arange(c))


def _pair_candidate(a: Convention, b: Convention, c: int, ref: str, name: str) -> Candidate:
    t = _affine_between(a, b, c)
    prior = a.prior + b.prior
    if a.kind == "raw" and b.kind == "raw":
        factor = b.v / a.v
        if b.divisor == 1:
            words = f"{name} inputs are raw 0-255 values but {ref} inputs were divided by {_fmt(a.divisor)}"
            fix = f"divide {name} inputs by {_fmt(a.divisor)} as the {ref} inputs were"
        elif a.divisor == 1:
            words = f"{name} inputs were divided by {_fmt(b.divisor)} but {ref} inputs are raw 0-255 values"
            fix = f"do not divide {name} inputs by {_fmt(b.divisor)}: the {ref} inputs were not (multiply the current {name} inputs by {_fmt(b.divisor)})"
        else:
            words = f"{name} images were divided by {_fmt(b.divisor)} instead of {_fmt(a.divisor)} ({name} inputs are {_fmt(factor)}x the {ref} inputs)"
            fix = f"divide {name} images by {_fmt(a.divisor)} instead of {_fmt(b.divisor)} (multiply the current {name} inputs by {_fmt(1 / factor)})"
        params = {"factor": float(factor), "train_divisor": a.divisor, "test_divisor": b.divisor}
        return Candidate("scale", params, t, "value", prior, words, fix)
    if a.kind == "raw":
        words = f"the {b.label} normalisation was applied to the {name} inputs only ({ref} inputs are stored as {a.label})"
        fix = f"apply the same preprocessing to both splits: map the current {name} inputs back with x * {_fmt_list(1 / t.scale)} + {_fmt_list(-t.offset / t.scale)}"
        where = "applied to the test inputs only"
    elif b.kind == "raw":
        words = f"the {a.label} normalisation applied to the {ref} inputs is missing from the {name} inputs (stored as {b.label})"
        fix = f"normalise {name} inputs as the {ref} inputs were ({a.label}): x = (x - {_fmt_list(t.offset)}) / {_fmt_list(t.scale)} on the current {name} inputs"
        where = "missing on the test inputs"
    else:
        words = f"{name} inputs were normalised with {b.label} but {ref} inputs with {a.label}"
        fix = f"use one normalisation for both splits: map the current {name} inputs with x = (x - {_fmt_list(t.offset)}) / {_fmt_list(t.scale)}"
        where = "different constants"
    params = {"name": (a.label if b.kind == "raw" else b.label).replace(" mean/std", ""), "train": a.label, "test": b.label, "where": where}
    return Candidate("normalisation-constants", params, t, "value", prior, words, fix)


def _looks_standardised(mean: np.ndarray, sd: np.ndarray) -> bool:
    return bool(np.all(np.abs(mean) < 0.35) and np.all((sd > 0.7) & (sd < 1.4)))


def value_candidates(ref, tst, ref_name: str = "train", name: str = "test") -> list[Candidate]:
    """Scale, normalisation, standardisation and inversion candidates plausible for both splits.

    Parameters
    ----------
    ref, tst : whylow.checks.preprocessing.SampleStats
        Sample statistics of the reference (training) and test inputs.
    """
    c = len(ref.mean)
    convs = conventions(c)
    ref_ok = [cv for cv in convs if plausible(cv, ref.q[:, 0], ref.q[:, -1], ref.vmax)]
    tst_ok = [cv for cv in convs if plausible(cv, tst.q[:, 0], tst.q[:, -1])]
    out: list[Candidate] = []
    for a, b in itertools.product(ref_ok, tst_ok):
        if a != b and "normalised" in (a.kind, b.kind):
            out.append(_pair_candidate(a, b, c, ref_name, name))
    raw = [cv for cv in convs if cv.kind == "raw"] + [Convention("x / 65535", 255.0 / 65535.0, (0.0,), (1.0,), "raw", 65535.0, 6)]
    for a, b in itertools.product(raw, raw):
        if a != b:  # a scale by a ratio of divisors needs no plausible range: the seed's own example divides [0, 1] values by 255
            out.append(_pair_candidate(a, b, c, ref_name, name))
    ref_std, tst_std = _looks_standardised(ref.mean, ref.sd), _looks_standardised(tst.mean, tst.sd)
    sd_r, sd_t = np.maximum(ref.sd, 1e-12), np.maximum(tst.sd, 1e-12)
    moment = InputTransform(sd_t / sd_r, tst.mean - sd_t / sd_r * ref.mean, np.arange(c))
    estimated = {"estimated": True}
    if ref_std and not tst_std and tst_ok:
        known = [cv for cv in tst_ok if cv.kind == "normalised"]
        raw = [cv for cv in tst_ok if cv.kind == "raw"]
        if raw:
            out.append(Candidate(
                "standardisation-missing", {"mean": tst.mean.tolist(), "std": tst.sd.tolist()}, moment, "value", 3,
                f"{ref_name} inputs are mean/std normalised (per-channel mean ≈ 0, std ≈ 1) but {name} inputs are not "
                f"(mean {_fmt_list(tst.mean)}, std {_fmt_list(tst.sd)})",
                f"normalise {name} inputs as the {ref_name} inputs were: x = (x - {_fmt_list(tst.mean)}) / {_fmt_list(tst.sd)}",
                **estimated,
            ))
        elif known:
            out.append(Candidate(
                "normalisation-constants", {"name": known[0].label.replace(" mean/std", ""), "train": "its own statistics", "test": known[0].label,
                                            "where": "different constants"}, moment, "value", 4,
                f"{name} inputs were normalised with other constants ({known[0].label}) than the {ref_name} inputs (their own mean/std)",
                f"normalise {name} inputs with the {ref_name} statistics: map the current {name} inputs with x = (x - {_fmt_list(moment.offset)}) / {_fmt_list(moment.scale)}",
                **estimated,
            ))
    if tst_std and not ref_std and ref_ok:
        out.append(Candidate(
            "standardisation-extra", {"mean": ref.mean.tolist(), "std": ref.sd.tolist()}, moment, "value", 5,
            f"{name} inputs are mean/std normalised (per-channel mean ≈ 0, std ≈ 1) but {ref_name} inputs are not "
            f"(mean {_fmt_list(ref.mean)}, std {_fmt_list(ref.sd)})",
            f"preprocess {name} inputs exactly as the {ref_name} inputs (undo the normalisation: x = x * {_fmt_list(ref.sd)} + {_fmt_list(ref.mean)})",
            **estimated,
        ))
    inv = InputTransform(-np.ones(c), tst.mean + ref.mean, np.arange(c))
    out.append(Candidate("inversion", {}, inv, "value", 8,
                         f"{name} intensities are inverted relative to {ref_name} (x -> max - x)",
                         f"invert {name} inputs back: x = {_fmt_list(inv.offset)} - x", **estimated))
    return _dedupe(out)


def _dedupe(cands: list[Candidate]) -> list[Candidate]:
    """Drop identity maps and keep the most common of candidates with the same affine map."""
    seen: dict = {}
    for cand in sorted(cands, key=lambda k: k.prior):
        t = cand.transform
        if t.is_identity or np.allclose(t.scale, 1, rtol=2e-3) and np.allclose(t.offset, 0, atol=1e-6 * (1 + np.abs(t.scale).max())):
            continue
        key = (tuple(np.round(np.log(np.abs(t.scale)), 3)), tuple(np.sign(t.scale)), tuple(np.round(t.offset / np.abs(t.scale), 3)))
        seen.setdefault(key, cand)
    return list(seen.values())


def other_candidates(n_channels: int, height: int, width: int, integer_values: bool, ref_name: str = "train", name: str = "test") -> list[Candidate]:
    """Channel permutations, flips, rotations, transposes and 8-bit wrap-around."""
    c = n_channels
    out: list[Candidate] = []
    if 1 < c <= 4:
        ident = tuple(range(c))
        rev = ident[::-1]
        perms = [rev] + [p for p in itertools.permutations(range(c)) if p not in (ident, rev)]
        for i, perm in enumerate(perms):
            bgr = perm == rev and c == 3
            words = f"{name} images hold the colour channels in a different order: {name} channels {list(ident)} are {ref_name} channels {list(perm)}" + (
                " (BGR vs RGB)" if bgr else "")
            fix = f"reorder the {name} channels to {np.argsort(perm).tolist()}" + (" (x[..., ::-1] for channels-last arrays)" if bgr else "")
            out.append(Candidate("channel-order", {"order": list(perm)}, InputTransform(np.ones(c), np.zeros(c), np.array(perm)),
                                 "channel", 1 + i, words, fix))
    for op, kind, params, words in (
        ("flip-h", "flip", {"axis": "horizontal"}, f"{name} images are mirrored left-right relative to {ref_name} images"),
        ("flip-v", "flip", {"axis": "vertical"}, f"{name} images are upside down (flipped vertically) relative to {ref_name} images"),
        ("rot180", "rotation", {"k": 2}, f"{name} images are rotated by 180° relative to {ref_name} images"),
        ("rot90", "rotation", {"k": 1}, f"{name} images are rotated by 90° counter-clockwise relative to {ref_name} images"),
        ("rot270", "rotation", {"k": 3}, f"{name} images are rotated by 90° clockwise relative to {ref_name} images"),
        ("transpose", "transpose", {}, f"{name} images have height and width swapped (transposed) relative to {ref_name} images"),
    ):
        if op in ("rot90", "rot270", "transpose") and height != width:
            continue
        undo = {"flip-h": "np.flip(x, axis=W)", "flip-v": "np.flip(x, axis=H)", "rot180": "np.rot90(x, 2, axes=(H, W))",
                "rot90": "np.rot90(x, -1, axes=(H, W))", "rot270": "np.rot90(x, 1, axes=(H, W))", "transpose": "swap the H and W axes"}[op]
        out.append(Candidate(kind, params, GeometricTransform(op), "geometry", 2 + len(out), words,
                             f"load {name} images with the same orientation as {ref_name} images (undo it: {undo})"))
    if integer_values:
        out.append(Candidate("wraparound", {"shift": 128}, WrapTransform(128), "wrap", 9,
                             f"{name} values are shifted by 128 modulo 256 relative to {ref_name} values (signed and unsigned 8-bit confused)",
                             f"read {name} pixels with the same 8-bit type as {ref_name} pixels (undo it: (x - 128) mod 256)", analytic=False))
    return out


def compose(first: Candidate, second: Candidate) -> Candidate:
    """Both bugs: ``first`` undone last (its transform applied first to training inputs)."""
    return Candidate(
        f"{first.kind}+{second.kind}",
        {**first.params, "also": second.describe()},
        ComposedTransform([first.transform, second.transform]),
        first.family,
        first.prior + second.prior + 20,
        f"{first.words}, and {second.words}",
        f"{first.fix}; and {second.fix}",
        analytic=first.analytic and second.analytic,
        parts=first.parts + second.parts,
    )
