"""``preprocessing-mismatch``: test inputs went through different preprocessing than training inputs.

Measurement
-----------
The reference is the training split (else validation); every other split
with inputs (validation, test) is compared with it, from their streaming
`whylow.summaries.InputSummary`.

1. **Shape.** A different image size or channel count is a mismatch in
   itself (resize / colour conversion).
2. **A per-channel affine map with a channel permutation.** At the
   quantile levels ``q = 0.01, 0.02, ..., 0.99`` the test quantiles of
   channel ``c`` are regressed on the reference quantiles of channel
   ``perm[c]`` by least squares, ``test_q ≈ a_c * ref_q + b_c`` (a
   decreasing fit on reversed quantiles detects inverted intensities). The
   fit error is the residual RMS over the test channel's standard
   deviation; the permutation with the smallest worst-channel error wins,
   ties going to the identity, then to the reversed order (RGB/BGR).
   A preprocessing difference maps *every* quantile by one map, so a
   mismatch needs a near-perfect fit (``max_fit_error``, default 0.03).
3. **Uniformity across images.** Under a map applied to every image the
   per-image channel means become ``a_c * m + b_c`` and per-image channel
   standard deviations ``|a_c| * s``; their predicted and observed
   quantiles (5 %..95 %) must agree within ``max_inconsistency`` (0.5) of
   the observed spread. A real distribution change (gamma, per-image
   lighting, blur) breaks this, and is left to ``covariate-shift``.
4. **Effect size and significance.** The identity map must be far off:
   the RMS difference of same-channel quantiles over the reference standard
   deviation is at least ``min_effect`` (0.2); and two-sample
   Kolmogorov-Smirnov tests on per-image channel means, contrast and
   brightness, Bonferroni-corrected, give ``p < alpha`` (0.01).
5. **Naming.** The map is decomposed into what preprocessing explains:
   a scale equal to a ratio of usual divisors (255/127, 1/255, 2, 257, ...;
   the value lattices ``1/255`` vs ``1/127`` name the divisors when present),
   mean/std normalisation present in one split only (per-channel mean ≈ 0
   and std ≈ 1), known normalisation constants (ImageNet, CIFAR, MNIST,
   0.5/0.5), centring constants, a channel permutation, an inversion.
   An offset that no preprocessing explains (``a ≈ 1``, or left over after
   a named scale) is a brightness difference: it is reported in the
   evidence and judged by ``covariate-shift`` on inputs with only the
   preprocessing part undone (``ctx.cached("preprocessing:test")``).

Verification
------------
With a model and labels, the preprocessing part is undone on the split's
inputs (`whylow.fixes.preprocessing.InputTransform.invert`), the model is
re-run, and accuracy / log-loss before and after are reported as
``verified``. The transform is estimated from unlabelled input
distributions, never from labels or predictions. Severity is critical when
the verified accuracy gain is at least ``critical_gain`` (0.05) or log-loss
falls by 20 %, warning otherwise.

Tabular ``N×D`` inputs are compared column-wise by their moments:
standardisation present in one split only, or one common scale factor.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from whylow.checks import Check, register
from whylow.fixes.preprocessing import InputTransform, rerun_on_fixed
from whylow.report.finding import Finding
from whylow.summaries import InputSummary, split_summary

__all__ = ["PreprocessingCheck", "TransformEstimate", "estimate_transform", "preprocessing_estimate", "aligned_summary", "aligned_probs"]

Q_LEVELS = np.round(np.linspace(0.01, 0.99, 99), 6)
_CONSISTENCY_LEVELS = np.linspace(0.05, 0.95, 19)

#: Divisors seen in image pipelines, most common first; a scale equal to d1/d2 is named after them
#: (near-equal ratios such as 255/127 and 256/127.5 go to the more common pair).
_DIVISORS = (1.0, 255.0, 127.0, 127.5, 128.0, 256.0, 2.0, 100.0, 65535.0, 1023.0, 4095.0)

#: Per-channel (mean, std) normalisation constants, in [0, 1] units.
_KNOWN_NORMALISATIONS = {
    "ImageNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "CIFAR-10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "CIFAR-10 (0.2023)": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "MNIST": ((0.1307,), (0.3081,)),
    "0.5/0.5 ([-1, 1])": ((0.5,), (0.5,)),
}


def _fmt(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}g}"


def _fmt_list(values, digits: int = 4) -> str:
    values = [float(v) for v in np.atleast_1d(values)]
    if len(values) > 1 and np.allclose(values, values[0], rtol=1e-3, atol=1e-12):
        return _fmt(values[0], digits)
    return "[" + ", ".join(_fmt(v, digits) for v in values) + "]"


def _r(v, digits: int = 5):
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


# --------------------------------------------------------------------------
# estimation
# --------------------------------------------------------------------------
@dataclass
class TransformEstimate:
    """How a split's inputs relate to the reference split's inputs.

    Attributes
    ----------
    name, reference : str
        The compared split and the reference split.
    kind : {"image", "tabular"}
    fitted : InputTransform or None
        The full fitted map reference -> split (None when no near-perfect fit).
    fit_error : float
        Worst-channel residual RMS of the quantile fit over the channel's std.
    effect : float
        Worst-channel RMS difference of same-channel quantiles over the
        reference std (how far the identity map is off).
    inconsistency : float
        Disagreement of predicted vs observed per-image statistics (in
        units of their spread).
    p_value : float
        Bonferroni-corrected KS p-value on per-image statistics.
    parts : list of str
        Named pieces: "scale", "standardisation", "normalisation-constants",
        "centring", "channel-order", "inversion", "affine".
    pre : InputTransform or None
        The part attributed to preprocessing (what the fix undoes).
    residual_offset : ndarray or None
        Offset per channel left after undoing ``pre``, in reference units
        (a brightness difference, not preprocessing).
    shape_issue : dict or None
        Size / channel-count / layout differences.
    is_mismatch : bool
    """

    name: str
    reference: str
    kind: str
    fitted: InputTransform | None = None
    fit_error: float = math.inf
    effect: float = 0.0
    inconsistency: float = math.inf
    p_value: float = 1.0
    parts: list[str] = field(default_factory=list)
    pre: InputTransform | None = None
    residual_offset: np.ndarray | None = None
    residual_offset_sd: float = 0.0
    shape_issue: dict | None = None
    is_mismatch: bool = False
    title: str = ""
    fix: str = ""
    confidence: float = 0.0
    evidence: dict = field(default_factory=dict)
    ref_q: np.ndarray | None = None
    tst_q: np.ndarray | None = None


def _lsq(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y ≈ a x + b; returns (a, b, residual RMS)."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    sxx = float(dx @ dx)
    if sxx <= 0:
        return math.nan, math.nan, math.inf
    a = float(dx @ (y - ym)) / sxx
    b = float(ym - a * xm)
    resid = y - (a * x + b)
    return a, b, float(np.sqrt(np.mean(resid * resid)))


def _fit_channel(ref_q: np.ndarray, tst_q: np.ndarray, tst_sd: float) -> tuple[float, float, float]:
    """Best of the increasing fit and the decreasing fit (reversed quantiles); error relative to ``tst_sd``.

    The decreasing fit (inverted intensities) must be clearly better: for a
    symmetric distribution both fit, and the plain map is the likelier one.
    """
    a, b, rms = _lsq(ref_q, tst_q)
    a2, b2, rms2 = _lsq(ref_q[::-1], tst_q)
    if a2 < 0 and rms2 < 0.5 * rms:
        a, b, rms = a2, b2, rms2
    scale = tst_sd if tst_sd > 0 else max(float(np.ptp(tst_q)), 1e-30)
    return a, b, rms / scale


def _permutations(c: int) -> list[tuple[int, ...]]:
    ident = tuple(range(c))
    if c == 1 or c > 4:
        return [ident]
    rev = tuple(reversed(ident))
    others = [p for p in itertools.permutations(range(c)) if p not in (ident, rev)]
    others.sort(key=lambda p: sum(i != j for i, j in enumerate(p)))
    return [ident, rev] + others


def _named_scale(a: float, ref_lat, tst_lat) -> tuple[float, str, tuple[float, float]] | None:
    """Snap a scale to a ratio of usual divisors: (ratio, words, (ref_divisor, test_divisor))."""
    if ref_lat is not None and tst_lat is not None:
        dr, dt = ref_lat, tst_lat
        ratio = dr / dt
        if abs(math.log(abs(a) / ratio)) < math.log(1.03):
            return ratio, f"{_fmt(dr)}/{_fmt(dt)}", (dr, dt)
    best = None
    for (i, d_ref), (j, d_tst) in itertools.product(enumerate(_DIVISORS), enumerate(_DIVISORS)):
        if d_ref == d_tst:
            continue
        ratio = d_ref / d_tst
        err = abs(math.log(abs(a) / ratio))
        cost = err + 0.0002 * (i + j)  # prefer common divisors among ratios that fit equally well
        if err < math.log(1.02) and (best is None or cost < best[0]):
            best = (cost, ratio, d_ref, d_tst)
    if best is None:
        return None
    _, ratio, d_ref, d_tst = best
    return ratio, f"{_fmt(d_ref)}/{_fmt(d_tst)}", (d_ref, d_tst)


def _is_standardised(mean: np.ndarray, std: np.ndarray, tol: float = 0.1) -> bool:
    return bool(np.all(np.abs(mean) < tol) and np.all(np.abs(std - 1.0) < tol))


def _match_known_normalisation(a: np.ndarray, b: np.ndarray) -> tuple[str, str] | None:
    """Match test = (ref - m)/s ("applied") or ref = (test - m)/s ("missing") against known constants."""
    c = len(a)
    for name, (m, s) in _KNOWN_NORMALISATIONS.items():
        if len(m) not in (1, c):
            continue
        for unit in (1.0, 255.0):
            mm = np.resize(np.asarray(m) * unit, c)
            ss = np.resize(np.asarray(s) * unit, c)
            # test = (ref - m) / s  ->  a = 1/s, b = -m/s   (normalisation applied to test only)
            if np.allclose(a, 1 / ss, rtol=0.03) and np.allclose(b, -mm / ss, rtol=0.03, atol=0.02 * np.abs(mm / ss).max()):
                return name, "applied to the test inputs only"
            # ref = (test - m) / s -> test = s ref + m   (normalisation missing on test)
            if np.allclose(a, ss, rtol=0.03) and np.allclose(b, mm, rtol=0.03, atol=0.02 * np.abs(mm).max()):
                return name, "applied to the training inputs only"
    return None


def _per_image_inconsistency(ref: InputSummary, tst: InputSummary, t: InputTransform) -> float:
    """Worst disagreement, over channels and statistics, of predicted vs observed per-image quantiles."""
    worst = 0.0
    ref_m, ref_s = ref.prop("channel_mean"), ref.prop("channel_std")
    tst_m, tst_s = tst.prop("channel_mean"), tst.prop("channel_std")
    for c in range(t.n_channels):
        src = t.perm[c]
        for pred, obs in (
            (t.scale[c] * ref_m[:, src] + t.offset[c], tst_m[:, c]),
            (abs(t.scale[c]) * ref_s[:, src], tst_s[:, c]),
        ):
            pred, obs = pred[np.isfinite(pred)], obs[np.isfinite(obs)]
            if len(pred) < 5 or len(obs) < 5:
                continue
            pq = np.quantile(pred, _CONSISTENCY_LEVELS)
            oq = np.quantile(obs, _CONSISTENCY_LEVELS)
            spread = max(float(np.std(obs)), float(np.std(pred)), 1e-6 * (abs(float(np.mean(obs))) + 1e-30))
            worst = max(worst, float(np.sqrt(np.mean((pq - oq) ** 2)) / spread))
    return worst


def _ks_pvalue(ref: InputSummary, tst: InputSummary) -> tuple[float, dict]:
    """Bonferroni-corrected KS p-value over per-image channel means, brightness and contrast."""
    from scipy.stats import ks_2samp

    tests = {}
    rm, tm = ref.prop("channel_mean"), tst.prop("channel_mean")
    for c in range(min(rm.shape[1], tm.shape[1])):
        tests[f"channel_mean[{c}]"] = (rm[:, c], tm[:, c])
    tests["brightness"] = (ref.prop("brightness"), tst.prop("brightness"))
    tests["contrast"] = (ref.prop("contrast"), tst.prop("contrast"))
    out = {}
    pmin = 1.0
    for name, (a, b) in tests.items():
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 2 or len(b) < 2:
            continue
        res = ks_2samp(a, b)
        out[name] = {"ks": _r(res.statistic, 3), "p": _r(res.pvalue, 3)}
        pmin = min(pmin, float(res.pvalue))
    return min(1.0, pmin * max(1, len(out))), out


def _lattice_divisor(summary: InputSummary) -> float | None:
    """Common divisor of all channels' lattices (1 for integers), or None."""
    divs = set()
    for lat in summary.lattices():
        if lat.step is None or lat.offset is None or abs(lat.offset) > 1e-6 * lat.step + 1e-9:
            return None
        if abs(lat.step - 1.0) < 1e-6:
            divs.add(1.0)
        else:
            d = lat.divisor
            if d is None:
                return None
            divs.add(d)
    return divs.pop() if len(divs) == 1 else None


def estimate_transform(
    ref: InputSummary,
    tst: InputSummary,
    *,
    ref_name: str = "train",
    name: str = "test",
    options: dict | None = None,
    perm_scorer=None,
) -> TransformEstimate:
    """Estimate the preprocessing map from the reference split's inputs to another split's inputs.

    Parameters
    ----------
    ref, tst : InputSummary
        Summaries of the reference (training) and compared inputs.
    ref_name, name : str
        Split names, for titles.
    options : dict, optional
        Thresholds: ``max_fit_error``, ``max_inconsistency``, ``min_effect``, ``alpha``.
    perm_scorer : callable, optional
        ``perm_scorer(InputTransform) -> float`` (higher is better), used to
        choose between channel orders that fit the quantiles equally well
        (e.g. accuracy of the model on inputs with the candidate undone).

    Returns
    -------
    TransformEstimate
    """
    opt = {"max_fit_error": 0.03, "max_inconsistency": 0.5, "min_effect": 0.2, "alpha": 0.01, **(options or {})}
    est = TransformEstimate(name=name, reference=ref_name, kind=ref.kind)
    if ref.n == 0 or tst.n == 0:
        return est
    if ref.kind != tst.kind:
        est.shape_issue = {"reference": ref.kind, name: tst.kind}
        return est
    if ref.kind == "tabular":
        return _estimate_tabular(ref, tst, est, opt)
    rs, ts = ref.sample_shape, tst.sample_shape
    r_hw, t_hw = _hw(ref), _hw(tst)
    if ref.n_channels != tst.n_channels or r_hw != t_hw:
        est.shape_issue = {
            "reference_size": list(r_hw),
            "size": list(t_hw),
            "reference_channels": ref.n_channels,
            "channels": tst.n_channels,
        }
        if ref.n_channels != tst.n_channels:
            return est
    if ref.layout != tst.layout and est.shape_issue is None:
        est.shape_issue = {"reference_layout": ref.layout, "layout": tst.layout, "reference_shape": list(rs), "shape": list(ts)}
    c = ref.n_channels
    ref_q, tst_q = ref.quantiles(Q_LEVELS), tst.quantiles(Q_LEVELS)
    ref_sd, tst_sd = ref.std, tst.std
    if not (np.all(np.isfinite(ref_q)) and np.all(np.isfinite(tst_q))):
        return est
    est.ref_q, est.tst_q = ref_q, tst_q
    with np.errstate(divide="ignore", invalid="ignore"):
        per_chan_effect = np.sqrt(np.mean((tst_q - ref_q) ** 2, axis=1)) / np.where(ref_sd > 0, ref_sd, np.nan)
    est.effect = float(np.nanmax(per_chan_effect)) if np.isfinite(per_chan_effect).any() else 0.0
    # best permutation; near-ties (e.g. two channels with the same distribution) go to the preferred order,
    # or to the candidate the model does best on when a scorer is given
    fits = {}
    for perm in _permutations(c):
        params = [_fit_channel(ref_q[perm[k]], tst_q[k], float(tst_sd[k])) for k in range(c)]
        fits[perm] = (max(p[2] for p in params), params)
    best_err = min(f[0] for f in fits.values())
    tol = min(max(2 * best_err, best_err + 0.005), max(opt["max_fit_error"], best_err))
    tied = [perm for perm in fits if fits[perm][0] <= tol]
    best = tied[0]
    candidate_scores = None
    if len(tied) > 1 and tied[0] != tuple(range(c)) and perm_scorer is not None:
        candidates = []
        for perm in tied[:4]:
            pa = np.array([p[0] for p in fits[perm][1]])
            pb = np.array([p[1] for p in fits[perm][1]])
            if np.all(np.isfinite(pa)) and not np.any(pa == 0):
                candidates.append((perm, InputTransform(pa, pb, np.array(perm))))
        if candidates:
            scores = [perm_scorer(t) for _, t in candidates]
            best = candidates[int(np.argmax(scores))][0]
            candidate_scores = {str(list(p)): _r(sc, 4) for (p, _), sc in zip(candidates, scores)}
    err, params = fits[best]
    a = np.array([p[0] for p in params])
    b = np.array([p[1] for p in params])
    if not np.all(np.isfinite(a)) or np.any(a == 0):
        return est
    est.fit_error = float(err)
    est.fitted = InputTransform(a, b, np.array(best))
    est.inconsistency = _per_image_inconsistency(ref, tst, est.fitted)
    est.p_value, ks = _ks_pvalue(ref, tst)
    est.evidence = {
        "reference": ref_name,
        "split": name,
        f"{ref_name}_range": [_r(v) for v in ref.value_range],
        f"{name}_range": [_r(v) for v in tst.value_range],
        f"{ref_name}_dtype": str(ref.dtype),
        f"{name}_dtype": str(tst.dtype),
        f"{ref_name}_lattice": [lat.describe() for lat in ref.lattices()],
        f"{name}_lattice": [lat.describe() for lat in tst.lattices()],
        f"{ref_name}_channel_mean": [_r(v) for v in ref.mean],
        f"{name}_channel_mean": [_r(v) for v in tst.mean],
        f"{ref_name}_channel_std": [_r(v) for v in ref_sd],
        f"{name}_channel_std": [_r(v) for v in tst_sd],
        "fitted_map": est.fitted.to_dict(),
        "quantile_fit_error": _r(est.fit_error, 3),
        "identity_misfit_sd": _r(est.effect, 3),
        "per_image_inconsistency": _r(est.inconsistency, 3),
        "ks_tests": ks,
        "p_value": _r(est.p_value, 3),
    }
    if est.shape_issue:
        est.evidence["shape"] = est.shape_issue
    if candidate_scores:
        est.evidence["channel_order_candidates_accuracy"] = candidate_scores
    uniform = est.fit_error <= opt["max_fit_error"] and est.inconsistency <= opt["max_inconsistency"]
    different = est.effect >= opt["min_effect"] and est.p_value < opt["alpha"]
    if not (uniform and different):
        return est
    _name_parts(est, ref, tst, a, b, np.array(best))
    return est


def _hw(s: InputSummary) -> tuple[int, int]:
    shape = s.sample_shape
    if s.layout == "NCHW":
        return shape[1], shape[2]
    return shape[0], shape[1]


def _scale_words(ref: InputSummary, tst: InputSummary, ref_name: str, name: str, snapped, ref_div, tst_div) -> tuple[str, str]:
    """Title words and fix for a scale equal to the ratio of two named divisors."""
    ratio, ratio_words, (d_ref, d_tst) = snapped
    if ref_div is not None and tst_div is not None and ref_div / tst_div == ratio:
        lat = {d: ("integers" if d == 1 else f"multiples of 1/{_fmt(d)}") for d in (ref_div, tst_div)}
        how = f"{ref_name} values are {lat[ref_div]} but {name} values are {lat[tst_div]}"
    else:
        how = f"the ratio {ratio_words}, as when {ref_name} images are divided by {_fmt(d_ref)} and {name} images by {_fmt(d_tst)}"
        if d_ref == 1:
            how = f"the ratio 1/{_fmt(d_tst)}, as when {name} images are divided by {_fmt(d_tst)} and {ref_name} images are not"
        elif d_tst == 1:
            how = f"the ratio {_fmt(d_ref)}, as when {ref_name} images are divided by {_fmt(d_ref)} and {name} images are not"
    note = ""
    if ref.dtype.kind in "ui" and tst.dtype.kind == "f" and d_ref == 1:
        note = f" ({ref_name} inputs are {ref.dtype} 0-{_fmt(ref.value_range[1])}, {name} inputs floats up to {_fmt(tst.value_range[1])})"
    elif tst.dtype.kind in "ui" and ref.dtype.kind == "f" and d_tst == 1:
        note = f" ({name} inputs are {tst.dtype} 0-{_fmt(tst.value_range[1])}, {ref_name} inputs floats up to {_fmt(ref.value_range[1])})"
    words = f"{name} inputs are {_fmt(ratio)}x the {ref_name} inputs: {how}{note}"
    if d_ref != 1 and d_tst != 1:
        fix = f"divide {name} images by {_fmt(d_ref)} instead of {_fmt(d_tst)} (multiply the current {name} inputs by {_fmt(1 / ratio)})"
    elif d_tst == 1:
        fix = f"divide {name} inputs by {_fmt(d_ref)} as the {ref_name} inputs were"
    else:
        fix = f"do not divide {name} inputs by {_fmt(d_tst)}: the {ref_name} inputs were not (multiply the current {name} inputs by {_fmt(d_tst)})"
    return words, fix


def _name_parts(est: TransformEstimate, ref: InputSummary, tst: InputSummary, a, b, perm) -> None:
    """Decide which part of the fitted map is preprocessing; fill title, fix and the transform to undo."""
    c = len(a)
    ref_name, name = est.reference, est.name
    ref_mean, ref_sd = ref.mean, ref.std
    tst_mean, tst_sd = tst.mean, tst.std
    permuted = not np.array_equal(perm, np.arange(c))
    inverted = bool(np.all(a < 0))
    sign = -1.0 if inverted else 1.0
    abs_a = np.abs(a)
    uniform_scale = bool(np.allclose(abs_a, abs_a.mean(), rtol=0.02))
    offset_sd = np.abs(b) / np.maximum(tst_sd, 1e-30)
    near_one = bool(np.all(np.abs(np.log(abs_a)) < math.log(1.05)))
    ref_std_flag = _is_standardised(ref_mean, ref_sd)
    tst_std_flag = _is_standardised(tst_mean, tst_sd)
    known = _match_known_normalisation(a, b)
    ref_div, tst_div = _lattice_divisor(ref), _lattice_divisor(tst)
    parts: list[str] = []
    words: list[str] = []
    fixes: list[str] = []
    pre_a, pre_b = a.copy(), b.copy()
    residual = None
    confidence = 0.9
    undo = f"x = (x - {_fmt_list(b)}) / {_fmt_list(a)}"
    if permuted:
        parts.append("channel-order")
        order = perm.tolist()
        bgr = order == list(range(c))[::-1] and c >= 3
        words.append(
            f"{name} images hold the colour channels in a different order: {name} channels {list(range(c))} are {ref_name} channels {order}"
            + (" (BGR vs RGB)" if bgr else "")
        )
        fixes.append(f"reorder the {name} channels to {np.argsort(perm).tolist()}" + (" (x[..., ::-1] for channels-last arrays)" if bgr else ""))
    if inverted:
        parts.append("inversion")
        words.append(f"{name} intensities are inverted relative to {ref_name} (x -> max - x)")
        fixes.append(f"invert {name} inputs back: {undo}")
    if tst_std_flag != ref_std_flag and (not near_one or np.any(offset_sd > 0.05)):
        parts.append("standardisation")
        if ref_std_flag:
            words.append(
                f"{ref_name} inputs are mean/std normalised (per-channel mean ≈ 0, std ≈ 1) but {name} inputs are not "
                f"(mean {_fmt_list(tst_mean)}, std {_fmt_list(tst_sd)})"
            )
            fixes.append(f"normalise {name} inputs as the {ref_name} inputs were: x = (x - {_fmt_list(b)}) / {_fmt_list(a)}")
        else:
            words.append(
                f"{name} inputs are mean/std normalised (per-channel mean ≈ 0, std ≈ 1) but {ref_name} inputs are not "
                f"(mean {_fmt_list(ref_mean)}, std {_fmt_list(ref_sd)})"
            )
            fixes.append(f"preprocess {name} inputs exactly as the {ref_name} inputs (undo the normalisation with {undo})")
    elif known is not None and not near_one:
        parts.append("normalisation-constants")
        const, where = known
        words.append(f"the {const} mean/std normalisation was {where}")
        fixes.append(f"apply the same {const} normalisation to both splits (map the current {name} inputs with {undo})")
    elif uniform_scale and not near_one:
        snapped = _named_scale(float(abs_a.mean()), ref_div, tst_div)
        scale = snapped[0] if snapped else float(abs_a.mean())
        pre_a = np.full(c, sign * scale)
        ref_q, tst_q = ref.quantiles(Q_LEVELS), tst.quantiles(Q_LEVELS)
        pre_b = np.array([
            float(np.mean(tst_q[k] - sign * scale * (ref_q[perm[k]][::-1] if inverted else ref_q[perm[k]]))) for k in range(c)
        ])
        parts.append("scale")
        if snapped is not None:
            w, f = _scale_words(ref, tst, ref_name, name, snapped, ref_div, tst_div)
        else:
            confidence = 0.75
            w = f"{name} inputs are {_fmt(scale)}x the {ref_name} inputs (one scale factor for every image)"
            f = f"apply the {ref_name} scaling to {name} inputs: multiply them by {_fmt(1 / scale)}"
        words.append(w)
        fixes.append(f)
        left_sd = np.abs(pre_b) / np.maximum(tst_sd, 1e-30)
        if np.any(left_sd > 0.05):
            named = _named_offset(pre_b, ref, tst, ref_name, name)
            if named:
                parts.append("centring")
                words.append(named)
                fixes[-1] += f", and remove the offset {_fmt_list(pre_b)}"
            else:
                residual = pre_b / (sign * scale)
                pre_b = np.zeros(c)
        else:
            pre_b = np.zeros(c)
    elif not near_one:
        parts.append("affine")
        confidence = 0.7
        words.append(f"{name} inputs are one affine map of {ref_name} inputs: x_{name} ≈ {_fmt_list(a)} * x_{ref_name} + {_fmt_list(b)}")
        fixes.append(f"find the preprocessing step that differs between the splits; undo it on {name} inputs with {undo}")
    else:
        named = _named_offset(b, ref, tst, ref_name, name) if np.any(offset_sd > 0.05) else None
        if named:
            parts.append("centring")
            words.append(named)
            fixes.append(f"use the same centring for both splits (undo it on {name} inputs with x = x - {_fmt_list(b)})")
            pre_a = np.ones(c)
        elif permuted or inverted:
            pre_a = sign * np.ones(c)
            if np.any(offset_sd > 0.05) and not inverted:
                residual = b.copy()
            if not inverted:
                pre_b = np.zeros(c)
        else:
            # only an offset that no preprocessing explains: a brightness difference, judged by covariate-shift
            est.residual_offset = b.copy()
            est.residual_offset_sd = float(np.max(np.abs(b) / np.maximum(ref_sd, 1e-30)))
            return
    if not parts:
        return
    est.parts = parts
    est.pre = InputTransform(pre_a, pre_b, perm)
    if residual is not None:
        est.residual_offset = residual
        est.residual_offset_sd = float(np.max(np.abs(residual) / np.maximum(ref_sd, 1e-30)))
        direction = "darker" if np.mean(residual) < 0 else "brighter"
        raw = ""
        if "scale" in parts:
            snapped = _named_scale(float(abs(pre_a[0])), ref_div, tst_div)
            if snapped is not None and snapped[2][0] != 1.0:
                d_ref = snapped[2][0]
                raw = f" (= {_fmt_list(np.abs(residual) * d_ref, 3)}/{_fmt(d_ref)})"
        words.append(
            f"after undoing that, {name} inputs are still {direction} than {ref_name} inputs by {_fmt_list(np.abs(residual), 3)}{raw} "
            f"in {ref_name} units ({_fmt(est.residual_offset_sd, 2)} {ref_name} pixel SD): a brightness difference, "
            "not preprocessing (judged by covariate-shift)"
        )
        est.evidence["residual_offset"] = [_r(v) for v in residual]
        est.evidence["residual_offset_sd"] = _r(est.residual_offset_sd, 3)
    est.is_mismatch = True
    est.confidence = confidence
    est.evidence["preprocessing"] = parts
    est.evidence["undo_map"] = est.pre.to_dict()
    est.evidence["explanation"] = "; ".join(words)
    est.title = words[0][0].upper() + words[0][1:]
    est.fix = "; ".join(fixes)
    est.fix = est.fix[0].upper() + est.fix[1:] + "."


def _named_offset(b: np.ndarray, ref: InputSummary, tst: InputSummary, ref_name: str, name: str) -> str | None:
    """Name an offset: mean centring in one split only, or a centring constant (0.5, 1, 127.5, 128)."""
    ref_c = _is_centred(ref.mean, ref.std)
    tst_c = _is_centred(tst.mean, tst.std)
    if tst_c and not ref_c:
        return f"the {name} inputs have had their mean subtracted (mean centring) but the {ref_name} inputs have not"
    if ref_c and not tst_c:
        return f"the {ref_name} inputs were mean-centred but the {name} inputs were not"
    for const in (0.5, 1.0, 127.5, 128.0):
        if np.allclose(np.abs(b), const, rtol=0.02):
            return f"an offset of {_fmt_list(b)} (centring by {_fmt(const)}) differs between the splits"
    return None


def _is_centred(mean: np.ndarray, std: np.ndarray, tol: float = 0.02) -> bool:
    return bool(np.all(np.abs(mean) < tol * np.maximum(std, 1e-30)))


def _moment_tests(ref: InputSummary, tst: InputSummary, ok: np.ndarray) -> float:
    """Bonferroni p-value over columns of Welch's z-test of the means and the F-test of the variances."""
    from scipy.stats import f as f_dist
    from scipy.stats import norm

    n_r, n_t = ref.count[ok].astype(float), tst.count[ok].astype(float)
    v_r, v_t = ref.var[ok], tst.var[ok]
    z = (tst.mean[ok] - ref.mean[ok]) / np.sqrt(v_r / n_r + v_t / n_t)
    p_mean = 2 * norm.sf(np.abs(z))
    ratio = v_t / v_r
    p_var = 2 * np.minimum(f_dist.sf(ratio, n_t - 1, n_r - 1), f_dist.cdf(ratio, n_t - 1, n_r - 1))
    p = np.minimum(p_mean, p_var)
    return float(min(1.0, np.min(p) * 2 * len(p)))


def _estimate_tabular(ref: InputSummary, tst: InputSummary, est: TransformEstimate, opt: dict) -> TransformEstimate:
    """Column-wise: standardisation in one split only, or one common scale factor for every column."""
    if ref.n_channels != tst.n_channels:
        est.shape_issue = {"reference_columns": ref.n_channels, "columns": tst.n_channels}
        return est
    rm, rs, tm, ts = ref.mean, ref.std, tst.mean, tst.std
    ok = (rs > 0) & (ts > 0) & np.isfinite(rm) & np.isfinite(tm)
    if ok.sum() < 2:
        return est
    ratio = ts[ok] / rs[ok]
    a = np.where(ok, ts / np.where(rs > 0, rs, 1), 1.0)
    b = np.where(ok, tm - a * rm, 0.0)
    pooled = np.sqrt((rs**2 + ts**2) / 2)
    est.effect = float(np.max(np.abs(tm - rm)[ok] / pooled[ok] + np.abs(np.log(ratio))))
    ref_std_flag, tst_std_flag = _is_standardised(rm[ok], rs[ok]), _is_standardised(tm[ok], ts[ok])
    common = float(np.median(ratio))
    uniform = bool(np.all(np.abs(np.log(ratio / common)) < math.log(1.05))) and abs(math.log(common)) > math.log(1.25)
    mean_ok = bool(np.all(np.abs(tm[ok] - common * rm[ok]) < 0.1 * ts[ok]))
    est.evidence = {
        "reference": est.reference,
        "split": est.name,
        "kind": "tabular",
        f"{est.reference}_column_mean": [_r(v) for v in rm[:20]],
        f"{est.name}_column_mean": [_r(v) for v in tm[:20]],
        f"{est.reference}_column_std": [_r(v) for v in rs[:20]],
        f"{est.name}_column_std": [_r(v) for v in ts[:20]],
        "std_ratio_median": _r(common, 4),
    }
    if ref_std_flag != tst_std_flag and est.effect >= 1.0:
        est.parts = ["standardisation"]
        est.pre = InputTransform(a, b, np.arange(len(a)))
        which, other = (est.reference, est.name) if ref_std_flag else (est.name, est.reference)
        est.title = f"{which.capitalize()} features are standardised (mean ≈ 0, std ≈ 1 per column) but {other} features are not"
        more = ", ..." if len(a) > 5 else ""
        est.fix = (
            f"Standardise {est.name} features as the {est.reference} features were, column by column: x = (x - mean) / std "
            f"with mean [{', '.join(_fmt(v) for v in b[:5])}{more}] and std [{', '.join(_fmt(v) for v in a[:5])}{more}]."
            if ref_std_flag
            else f"Preprocess {est.name} features exactly as the {est.reference} features (undo the standardisation: "
            f"x = x * std + mean with std [{', '.join(_fmt(1 / v) for v in a[:5])}{more}])."
        )
    elif uniform and mean_ok:
        est.parts = ["scale"]
        est.pre = InputTransform(np.full(len(a), common), np.zeros(len(a)), np.arange(len(a)))
        est.title = f"{est.name.capitalize()} features are {_fmt(common)}x the {est.reference} features in every column"
        est.fix = f"Scale {est.name} features as the {est.reference} features: multiply them by {_fmt(1 / common)}."
    else:
        return est
    est.fit_error = 0.0
    est.fitted = est.pre
    est.p_value = _moment_tests(ref, tst, ok)
    est.evidence["p_value"] = _r(est.p_value, 3)
    # moments cannot tell a reshaped distribution from a rescaled one, so tabular data need a large effect
    est.is_mismatch = est.effect >= max(opt["min_effect"], 1.0) and est.p_value < opt["alpha"]
    est.confidence = 0.8
    est.evidence["preprocessing"] = est.parts
    est.evidence["undo_map"] = est.pre.to_dict() if len(a) <= 20 else {"n_columns": len(a)}
    return est


# --------------------------------------------------------------------------
# shared evidence for other checks
# --------------------------------------------------------------------------
def _reference_name(ctx, name: str) -> str | None:
    for ref in ("train", "val"):
        s = ctx.split(ref)
        if ref != name and s is not None and s.x is not None:
            return ref
    return None


def _model_scorer(ctx, split, max_rows: int = 2000):
    """Accuracy of the model on (a seeded subset of) ``split`` with a candidate map undone, or None without model/labels."""
    if ctx.model is None or split.y is None:
        return None
    rows = np.arange(split.n)
    if split.n > max_rows:
        rows = np.sort(np.random.default_rng(ctx.seed).choice(split.n, max_rows, replace=False))
    x = np.asarray(split.x[rows])
    y = split.y[rows]

    def score(t: InputTransform) -> float:
        try:
            return float((ctx.predict_probs(t.invert(x, split.layout)).argmax(axis=1) == y).mean())
        except Exception:  # noqa: BLE001 - a candidate the model cannot run on scores lowest
            return -1.0

    return score


def preprocessing_estimate(ctx, name: str = "test") -> TransformEstimate | None:
    """The estimated preprocessing map from the reference split to split ``name`` (cached as ``"preprocessing:<name>"``)."""

    def compute():
        ref_name = _reference_name(ctx, name)
        s = ctx.split(name)
        if ref_name is None or s is None or s.x is None:
            return None
        ref, tst = split_summary(ctx, ref_name), split_summary(ctx, name)
        options = {
            k: ctx.option(PreprocessingCheck.name, k, getattr(PreprocessingCheck, k))
            for k in ("max_fit_error", "max_inconsistency", "min_effect", "alpha")
        }
        return estimate_transform(ref, tst, ref_name=ref_name, name=name, options=options, perm_scorer=_model_scorer(ctx, s))

    return ctx.cached(f"preprocessing:{name}", compute)


def aligned_summary(ctx, name: str = "test") -> tuple[InputSummary | None, TransformEstimate | None]:
    """The summary of split ``name`` with its estimated preprocessing undone (when there is one), and the estimate.

    Other checks judge distribution shift on these inputs, so that a
    preprocessing mismatch is not counted twice.
    """
    est = preprocessing_estimate(ctx, name)
    if est is None or not est.is_mismatch or est.pre is None or est.shape_issue and "size" in est.shape_issue:
        return split_summary(ctx, name), est
    s = ctx.split(name)
    undo = est.pre
    layout = s.layout
    return split_summary(ctx, name, key_suffix=":undone", transform=lambda chunk: undo.invert(chunk, layout)), est


def aligned_probs(ctx, name: str = "test") -> np.ndarray | None:
    """Model probabilities on split ``name`` with its estimated preprocessing undone (None without a mismatch or model)."""
    est = preprocessing_estimate(ctx, name)
    s = ctx.split(name)
    if est is None or not est.is_mismatch or est.pre is None or ctx.model is None or s is None or s.x is None:
        return None

    def compute():
        layout = s.layout
        try:
            return ctx.predict_probs(est.pre.invert(np.asarray(s.x), layout))
        except Exception:  # noqa: BLE001 - a model that cannot take the corrected inputs gives no aligned outputs
            return None

    return ctx.cached(f"preprocessing:{name}:probs_undone", compute)


# --------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------
@register
class PreprocessingCheck(Check):
    """Test (and validation) inputs preprocessed differently from training inputs."""

    name = "preprocessing-mismatch"
    codes = ("preprocessing-mismatch",)
    requires = ("test.x|val.x", "train.x|val.x")

    max_fit_error = 0.03
    max_inconsistency = 0.5
    min_effect = 0.2
    alpha = 0.01
    critical_gain = 0.05
    critical_log_loss_drop = 0.2
    max_verify_samples = 20000

    def run(self, ctx) -> list[Finding]:
        findings = []
        for name in ("val", "test"):
            s = ctx.split(name)
            if s is None or s.x is None or _reference_name(ctx, name) is None:
                continue
            est = preprocessing_estimate(ctx, name)
            if est is None:
                continue
            if est.shape_issue and ("size" in est.shape_issue or "channels" in est.shape_issue or "columns" in est.shape_issue):
                findings.append(self._shape_finding(ctx, est))
            if est.shape_issue and "layout" in est.shape_issue:
                findings.append(
                    Finding(
                        "preprocessing-mismatch",
                        "info",
                        0.6,
                        f"The {est.reference} and {name} images are stored in different layouts ({est.shape_issue['reference_layout']} vs {est.shape_issue['layout']})",
                        evidence=est.shape_issue,
                        fix=f"whylow read both; make sure your own pipeline transposes the {name} images before they reach the model.",
                    )
                )
            if est.is_mismatch:
                findings.append(self._mismatch_finding(ctx, s, est))
        return findings

    def _shape_finding(self, ctx, est: TransformEstimate) -> Finding:
        issue = est.shape_issue
        if "channels" in issue and issue["channels"] != issue["reference_channels"]:
            title = f"{est.name.capitalize()} images have {issue['channels']} channels but {est.reference} images have {issue['reference_channels']}"
            fix = f"Convert {est.name} images to {issue['reference_channels']} channel(s) as the {est.reference} images were (greyscale vs colour)."
        elif "columns" in issue:
            title = f"{est.name.capitalize()} has {issue['columns']} feature columns but {est.reference} has {issue['reference_columns']}"
            fix = f"Build {est.name} features with the same columns, in the same order, as {est.reference} features."
        else:
            rh, rw = issue["reference_size"]
            th, tw = issue["size"]
            title = f"{est.name.capitalize()} images are {th}×{tw} but {est.reference} images are {rh}×{rw}"
            fix = f"Resize (or crop) {est.name} images to {rh}×{rw} exactly as the {est.reference} images were."
        verified = None
        severity = "warning"
        s = ctx.split(est.name)
        if "size" in issue and issue.get("channels") == issue.get("reference_channels"):
            from whylow.fixes.preprocessing import resize_images

            size = tuple(issue["reference_size"])
            try:
                res = rerun_on_fixed(ctx, s, lambda x: resize_images(x, s.layout, size), max_samples=self.threshold(ctx, "max_verify_samples"))
            except Exception:  # noqa: BLE001 - the model may not take the resized images
                res = None
            if res is not None:
                verified = {"metric": "accuracy", "before": res["accuracy_before"], "after": res["accuracy_after"]}
                if res["accuracy_after"] - res["accuracy_before"] >= self.threshold(ctx, "critical_gain"):
                    severity = "critical"
        return Finding("preprocessing-mismatch", severity, 0.95, title, evidence=dict(issue), fix=fix, verified=verified)

    def _mismatch_finding(self, ctx, s, est: TransformEstimate) -> Finding:
        evidence = dict(est.evidence)
        evidence["estimated_from"] = "unlabelled input distributions (quantiles, lattices, per-image statistics); no labels or predictions"
        verified = None
        severity = "warning"
        confidence = est.confidence
        title, fix = est.title, est.fix
        pre = est.pre
        try:
            res = rerun_on_fixed(ctx, s, lambda x: pre.invert(x, s.layout), max_samples=self.threshold(ctx, "max_verify_samples"))
        except Exception as exc:  # noqa: BLE001 - verification is best effort; the evidence stands without it
            res = None
            evidence["verification_failed"] = f"{type(exc).__name__}: {exc}"[:300]
        if res is not None:
            ctx.cache.setdefault(f"preprocessing:{s.name}:probs_undone_rows", (res["rows"], res["probs_after"]))
            if res["n"] == s.n:
                ctx.cache.setdefault(f"preprocessing:{s.name}:probs_undone", res["probs_after"])
            gain = res["accuracy_after"] - res["accuracy_before"]
            ll_drop = (res["log_loss_before"] - res["log_loss_after"]) / max(res["log_loss_before"], 1e-12)
            evidence["verification"] = {
                "n": res["n"],
                "accuracy_before": _r(res["accuracy_before"], 4),
                "accuracy_after": _r(res["accuracy_after"], 4),
                "log_loss_before": _r(res["log_loss_before"], 4),
                "log_loss_after": _r(res["log_loss_after"], 4),
            }
            verified = {"metric": "accuracy", "before": res["accuracy_before"], "after": res["accuracy_after"]}
            if gain >= self.threshold(ctx, "critical_gain") or ll_drop >= self.threshold(ctx, "critical_log_loss_drop"):
                severity = "critical"
                confidence = max(confidence, 0.97)
            elif gain <= -0.05 and ll_drop < 0:
                confidence = min(confidence, 0.6)
                title = f"The {est.reference} inputs given to whylow are preprocessed differently from the {s.name} inputs"
                fix = (
                    f"The model does better on the {s.name} inputs as they are, so the {est.reference} inputs passed to whylow are probably "
                    f"not what the model was trained on; pass {est.reference} inputs exactly as the model saw them. ({est.fix})"
                )
                evidence["note"] = "undoing the estimated map made the model worse"
        ctx.add_artifact(self.name, f"{s.name}_quantiles", {
            "levels": Q_LEVELS.tolist(),
            est.reference: np.round(est.ref_q, 6).tolist() if est.ref_q is not None else None,
            s.name: np.round(est.tst_q, 6).tolist() if est.tst_q is not None else None,
        })
        return Finding("preprocessing-mismatch", severity, confidence, title, evidence=evidence, fix=fix, verified=verified)
