"""``preprocessing-mismatch``: test inputs went through different preprocessing than training inputs.

Found by intervention, not by how well one map fits. The reference is the
training split (else validation); validation and test inputs are compared
with it.

1. **Shape.** A different image size or channel count is a mismatch in
   itself (resize / colour conversion); a size difference is verified by
   resizing back and re-running the model.
2. **Candidates.** `whylow.fixes.pipeline_bugs` enumerates the closed list
   of input-pipeline bugs plausible for the two splits' stored values:
   scales by ratios of usual divisors, normalisation missing, extra or with
   other constants, inverted intensities, channel permutations, flips,
   rotations, transposes and 8-bit wrap-around.
3. **Distances.** On seeded samples of rows (``max_sample_rows``), the
   distance between two sets of images is the sum of three scale-free
   terms in reference pixel standard deviations: the per-channel
   Wasserstein-1 distance of pixel values (from 99 quantiles), the RMS
   difference of the mean images, and the Wasserstein-1 distance of the
   per-image channel means and standard deviations. The *natural* distance
   is that of the validation inputs to the reference (else of two halves
   of the reference); every candidate's distance is that of the test
   inputs with the candidate undone.
4. **With a model and labels (verified).** Only candidates whose undoing
   brings the test inputs back (at least half of their distance beyond the
   natural one removed; see below) are run: a healthy split costs no model
   run. Each is undone on the same ``max_select_rows`` test rows and the
   model is re-run (value candidates: the ``max_value_candidates`` closest
   to the reference). A
   candidate recovers when, against the model's outputs on the inputs as
   they are, accuracy rises (one-sided exact McNemar test on the changed
   predictions) by at least ``min_gain`` and log-loss does not rise, or
   log-loss falls (one-sided paired t-test) by at least ``min_log_loss_drop``
   and accuracy does not fall; p-values are Bonferroni-corrected over the
   candidates (``alpha``). With validation predictions, it must also close
   at least ``min_share`` (half) of the gap to the validation accuracy or
   log-loss: undoing the real bug brings the test split back toward where
   the model works, a chance side effect (a rotation that happens to suit a
   contrast change) recovers a few points of a large drop. A value candidate must also be a deterministic
   map of the data, not a lighting change: the value lattices agree with
   it (test step = scale × reference step), or, when the lattices cannot
   tell, undoing it leaves at most ``max_residual_ratio`` times the natural
   distance. Every candidate must also remove at least half of the test
   inputs' distance to the reference beyond the natural one: a model may
   gain a few points from a flip of inputs nobody flipped (test-time
   augmentation), but a real bug shows in the inputs too.
   Of the recovering candidates the best accuracy wins; within
   ``tie_accuracy`` of it the most common bug is named (255 before 256).
   The winner is then combined with a bug of another family when undoing
   both brings the inputs closer still (BGR *and* raw 0-255 values); the
   model is re-run on the two closest such pairs, and a pair is kept when it
   recovers significantly more than the winner alone.
   The finding is verified on the whole split (``max_verify_samples``):
   accuracy and log-loss before and after, with a 95 % interval of the
   accuracy gain. It explains the part of the validation-to-test accuracy
   gap the fix recovers.
5. **Without a model (not verified).** The candidate whose undoing brings
   the test inputs closest to the reference is named when that is within
   ``max_residual_ratio`` times the natural distance, while the inputs as
   they are lie at least ``min_distance_ratio`` times the natural distance
   and ``min_effect`` away: a warning, with its confidence lowered and the
   note that no model confirmed it.

Severity: critical when the verified accuracy gain is at least
``critical_gain`` (5 points) or log-loss falls by ``critical_log_loss_drop``
(20 %); a warning otherwise. What is left after the undo (e.g. the seed's
brightness offset next to its /127) is judged by ``covariate-shift`` on the
test inputs with the fix applied (`aligned_summary`, `aligned_probs`).

What the evidence does not rule out: a bug outside the list (a crop, a
colour-space conversion, an interpolation change without a size change), or
two bugs of which neither alone recovers accuracy; the check then stays
silent and the difference is left to ``covariate-shift``.

Tabular ``N×D`` inputs are compared column-wise by their moments:
standardisation present in one split only, or one common scale factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from whylow.checks import Check, register
from whylow.fixes.pipeline_bugs import Candidate, compose, other_candidates, value_candidates
from whylow.fixes.preprocessing import GeometricTransform, InputTransform, rerun_on_fixed
from whylow.inputs.detect import to_nhwc
from whylow.report.finding import Finding, make_explains
from whylow.summaries import InputSummary, split_summary

__all__ = [
    "PreprocessingCheck",
    "SampleStats",
    "TransformEstimate",
    "estimate_transform",
    "estimate_image_mismatch",
    "preprocessing_estimate",
    "aligned_summary",
    "aligned_probs",
]

Q_LEVELS = np.round(np.linspace(0.01, 0.99, 99), 6)
_IMAGE_LEVELS = np.linspace(0.05, 0.95, 19)


def _fmt(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}g}"


def _r(v, digits: int = 5):
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


# --------------------------------------------------------------------------
# sample statistics and distances
# --------------------------------------------------------------------------
@dataclass
class SampleStats:
    """Statistics of a sample of images that a distance compares (N×H×W×C order).

    Attributes
    ----------
    q : ndarray of shape (C, 99)
        Pixel-value quantiles per channel at levels 0.01..0.99.
    mean_img : ndarray of shape (H, W, C)
    img_mean, img_std : ndarray of shape (n, C)
        Per-image channel means and standard deviations.
    mean, sd : ndarray of shape (C,)
        Pixel mean and standard deviation per channel.
    vmax : float
        Largest value.
    """

    q: np.ndarray
    mean_img: np.ndarray
    img_mean: np.ndarray
    img_std: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    vmax: float

    @classmethod
    def of(cls, x_nhwc: np.ndarray) -> "SampleStats":
        """Statistics of images in N×H×W×C order."""
        xf = np.asarray(x_nhwc, dtype=np.float32)
        n, h, w, c = xf.shape
        flat = xf.reshape(-1, c)
        return cls(
            q=np.quantile(flat, Q_LEVELS, axis=0).T.astype(np.float64),
            mean_img=xf.mean(axis=0, dtype=np.float64),
            img_mean=xf.mean(axis=(1, 2), dtype=np.float64),
            img_std=xf.std(axis=(1, 2), dtype=np.float64),
            mean=flat.mean(axis=0, dtype=np.float64),
            sd=flat.std(axis=0, dtype=np.float64),
            vmax=float(flat.max()) if flat.size else 0.0,
        )

    def undone(self, transform) -> "SampleStats | None":
        """The statistics of the same images with ``transform`` undone, or None when that needs the images."""
        if isinstance(transform, InputTransform):
            inv = np.argsort(transform.perm)
            a, b = transform.scale, transform.offset

            def val(v):  # v[..., c] test channel c -> training channel perm[c]
                return ((v - b) / a)[..., inv]

            q = np.sort((self.q - b[:, None]) / a[:, None], axis=1)[inv]
            return SampleStats(q, val(self.mean_img), val(self.img_mean), (self.img_std / np.abs(a))[:, inv],
                               val(self.mean), (self.sd / np.abs(a))[inv], float(np.max(q[:, -1])))
        if isinstance(transform, GeometricTransform):
            mean_img = transform.invert(self.mean_img[None], "NHWC")[0]
            return SampleStats(self.q, mean_img, self.img_mean, self.img_std, self.mean, self.sd, self.vmax)
        steps = getattr(transform, "steps", None)
        if steps is not None:
            out = self
            for t in reversed(steps):
                out = out.undone(t) if out is not None else None
            return out
        return None


def _w1(a: np.ndarray, b: np.ndarray, levels=_IMAGE_LEVELS) -> float:
    return float(np.mean(np.abs(np.quantile(a, levels) - np.quantile(b, levels))))


def distance(a: SampleStats, ref: SampleStats) -> float:
    """How far images ``a`` are from reference images, in reference pixel standard deviations (0 = same)."""
    if a.mean_img.shape != ref.mean_img.shape:
        return math.inf
    sd = np.maximum(ref.sd, 1e-12 * (1 + np.abs(ref.mean)))
    values = float(np.mean(np.abs(a.q - ref.q) / sd[:, None]))
    spatial = float(np.sqrt(np.mean(((a.mean_img - ref.mean_img) / sd) ** 2)))
    per_image = float(np.mean([
        (_w1(a.img_mean[:, c], ref.img_mean[:, c]) + _w1(a.img_std[:, c], ref.img_std[:, c])) / sd[c] for c in range(len(sd))
    ]))
    return values + spatial + per_image


def _sample_rows(n: int, m: int, rng) -> np.ndarray:
    return np.arange(n) if n <= m else np.sort(rng.choice(n, m, replace=False))


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
    candidate : Candidate or None
        The named input-pipeline bug (images).
    pre : transform or None
        What the fix undoes (``invert(x, layout)`` maps the split's inputs back).
    parts : list of str
        The bug's kinds (``["scale"]``, ``["channel-order", "scale"]``, ...).
    is_mismatch : bool
    verified_by_model : bool
        Whether re-running the model confirmed it.
    shape_issue : dict or None
        Size / channel-count / layout differences.
    residual_offset : ndarray or None
        Per-channel mean difference left after undoing ``pre``, in reference units.
    distances : dict
        Natural, as-is and after-the-fix distances to the reference.
    """

    name: str
    reference: str
    kind: str
    candidate: Candidate | None = None
    pre: object | None = None
    fitted: object | None = None
    parts: list[str] = field(default_factory=list)
    is_mismatch: bool = False
    verified_by_model: bool = False
    shape_issue: dict | None = None
    residual_offset: np.ndarray | None = None
    residual_offset_sd: float = 0.0
    effect: float = 0.0
    fit_error: float = math.inf
    p_value: float = 1.0
    distances: dict = field(default_factory=dict)
    selection: dict | None = None
    title: str = ""
    fix: str = ""
    confidence: float = 0.0
    evidence: dict = field(default_factory=dict)
    ref_q: np.ndarray | None = None
    tst_q: np.ndarray | None = None


@dataclass
class ModelScorer:
    """Re-runs the model on a fixed set of rows of a split with a candidate undone.

    Parameters
    ----------
    predict : callable
        ``predict(x) -> probs`` (N×K).
    x : ndarray
        The rows, in the split's layout.
    y : ndarray of int
    layout : str
    target : dict, optional
        ``{"accuracy": ..., "log_loss": ...}`` of the model on validation
        data: a fix must close a good part of the gap to it.
    """

    predict: object
    x: np.ndarray
    y: np.ndarray
    layout: str
    base: np.ndarray | None = None
    #: The model's accuracy and log-loss where its inputs are right (validation), when known.
    target: dict | None = None
    #: (correct, n, majority rate) of the model on validation (else training) data, when known.
    skill: tuple | None = None

    def __post_init__(self):
        if self.base is None:
            self.base = self.predict(self.x)

    def run(self, transform) -> np.ndarray | None:
        """Probabilities on the rows with ``transform`` undone (None when the model cannot take them)."""
        try:
            probs = self.predict(transform.invert(self.x, self.layout))
        except Exception:  # noqa: BLE001 - a candidate the model cannot run on is no candidate
            return None
        return probs if probs.shape == self.base.shape else None


def paired_comparison(y: np.ndarray, before: np.ndarray, after: np.ndarray) -> dict:
    """Accuracy and log-loss before and after on the same rows, with one-sided paired tests of the gain.

    Returns
    -------
    dict
        ``accuracy_before``, ``accuracy_after``, ``log_loss_before``,
        ``log_loss_after``, ``p_accuracy`` (exact McNemar: of the rows whose
        correctness changed, more became right), ``p_log_loss`` (paired
        t-test of the per-row log-loss drop), ``gain_interval`` (95 % normal
        interval of the accuracy gain) and ``n``.
    """
    from scipy.stats import binomtest, ttest_1samp

    idx = np.arange(len(y))
    c0 = before.argmax(axis=1) == y
    c1 = after.argmax(axis=1) == y
    up, down = int(np.sum(~c0 & c1)), int(np.sum(c0 & ~c1))
    p_acc = binomtest(up, up + down, 0.5, alternative="greater").pvalue if up + down else 1.0
    l0 = -np.log(np.clip(before[idx, y], 1e-15, 1.0))
    l1 = -np.log(np.clip(after[idx, y], 1e-15, 1.0))
    drop = l0 - l1
    p_ll = float(ttest_1samp(drop, 0.0, alternative="greater").pvalue) if len(y) > 2 and np.std(drop) > 0 else 1.0
    d = c1.astype(float) - c0.astype(float)
    half = 1.96 * float(np.std(d, ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else math.inf
    return {
        "accuracy_before": float(c0.mean()),
        "accuracy_after": float(c1.mean()),
        "log_loss_before": float(l0.mean()),
        "log_loss_after": float(l1.mean()),
        "p_accuracy": float(p_acc),
        "p_log_loss": p_ll if math.isfinite(p_ll) else 1.0,
        "gain_interval": [float(d.mean() - half), float(d.mean() + half)],
        "n": int(len(y)),
    }


def _lattice_verdict(t, ref_lattices, tst_lattices, tol: float = 0.002) -> str:
    """Whether the value lattices ``supports`` the affine map ``t``, ``contradicts`` it, or cannot tell (``unknown``).

    ``tol`` is the relative misfit of steps allowed (exact named constants: 0.2 %; estimated ones more).
    """
    if not isinstance(t, InputTransform) or not ref_lattices or not tst_lattices:
        return "unknown"
    if np.all(np.abs(np.log(np.abs(t.scale))) < 0.02):
        return "unknown"  # an unchanged step says nothing about a map that keeps the scale (inversion, centring)
    verdicts = []
    for c in range(t.n_channels):
        r = ref_lattices[t.perm[c]] if t.perm[c] < len(ref_lattices) else None
        s = tst_lattices[c] if c < len(tst_lattices) else None
        if r is None or s is None or not r.step or not s.step:
            verdicts.append("unknown")
            continue
        ratio = s.step / (abs(t.scale[c]) * r.step)
        verdicts.append("supports" if abs(ratio - 1) < tol else "contradicts")
    if "contradicts" in verdicts:
        return "contradicts"
    return "supports" if verdicts and all(v == "supports" for v in verdicts) else "unknown"


def _spread_misfit(factor: float, ref: SampleStats, tst: SampleStats) -> float:
    """Worst relative misfit (log ratio) of ``factor`` to how much every channel's spread (SD, 5-95 % range) grew."""
    sd_ratio = tst.sd / np.maximum(ref.sd, 1e-30)
    range_ratio = (tst.q[:, 94] - tst.q[:, 4]) / np.maximum(ref.q[:, 94] - ref.q[:, 4], 1e-30)
    both = np.concatenate([sd_ratio, range_ratio])
    return float(np.max(np.abs(np.log(np.maximum(both, 1e-30) / factor))))


def _options(options: dict | None) -> dict:
    base = {k: getattr(PreprocessingCheck, k) for k in _ENGINE_OPTIONS}
    return {**base, **(options or {})}


_ENGINE_OPTIONS = (
    "alpha", "min_gain", "min_log_loss_drop", "max_residual_ratio", "min_distance_ratio", "min_effect",
    "max_value_candidates", "tie_accuracy", "min_share",
)


def estimate_image_mismatch(
    ref_x: np.ndarray,
    tst_x: np.ndarray,
    layout: str,
    *,
    ref_layout: str | None = None,
    natural_x: np.ndarray | None = None,
    natural_layout: str | None = None,
    lattices: tuple | None = None,
    scorer: ModelScorer | None = None,
    ref_name: str = "train",
    name: str = "test",
    options: dict | None = None,
    integer_values: bool = False,
) -> TransformEstimate:
    """Find the input-pipeline bug that turns reference images into test images, by undoing each candidate.

    Parameters
    ----------
    ref_x, tst_x : ndarray
        Samples of reference (training) and test images, in ``ref_layout`` and ``layout``.
    layout, ref_layout : str
        ``"NHWC"``, ``"NCHW"`` or ``"NHW"`` (``ref_layout`` defaults to ``layout``).
    natural_x : ndarray, optional
        A sample from the reference distribution other than ``ref_x`` (validation images) that sets
        the natural distance; without it, two halves of ``ref_x`` do.
    lattices : (list, list), optional
        Per-channel `whylow.summaries.Lattice` of the reference and test values.
    scorer : ModelScorer, optional
        The model on labelled test rows (``tst_x``'s own rows or others); without it the
        candidate is chosen by distance alone and is not verified.
    options : dict, optional
        Thresholds (the `PreprocessingCheck` attributes of the same names).
    integer_values : bool
        Whether the test values are 8-bit integers (enables the wrap-around candidate).

    Returns
    -------
    TransformEstimate
    """
    opt = _options(options)
    est = TransformEstimate(name=name, reference=ref_name, kind="image")
    ref = SampleStats.of(to_nhwc(np.asarray(ref_x), ref_layout or layout))
    tst = SampleStats.of(to_nhwc(np.asarray(tst_x), layout))
    if natural_x is not None and len(natural_x) >= 10:
        d_nat = distance(SampleStats.of(to_nhwc(np.asarray(natural_x), natural_layout or ref_layout or layout)), ref)
    else:
        nhwc = to_nhwc(np.asarray(ref_x), ref_layout or layout)
        half = len(nhwc) // 2
        d_nat = distance(SampleStats.of(nhwc[:half]), SampleStats.of(nhwc[half:])) if half >= 5 else 0.0
    d_nat = max(d_nat, 0.02)
    d_id = distance(tst, ref)
    est.effect = d_id
    est.ref_q, est.tst_q = ref.q, tst.q
    h, w, c = tst.mean_img.shape
    cands = value_candidates(ref, tst, ref_name, name) + other_candidates(c, h, w, integer_values, ref_name, name)
    ref_lat, tst_lat = lattices if lattices else (None, None)
    scored = []
    for cand in cands:
        st = tst.undone(cand.transform)
        if st is None:
            st = SampleStats.of(to_nhwc(cand.transform.invert(np.asarray(tst_x), layout), layout))
        lattice = "unknown"
        if cand.family == "value":
            lattice = _lattice_verdict(cand.transform, ref_lat, tst_lat, 0.05 if cand.estimated else 0.002)
            if lattice == "unknown" and cand.kind == "scale":
                misfit = _spread_misfit(cand.params["factor"], ref, tst)
                lattice = "supports" if misfit < 0.01 else "unknown"
        if lattice != "contradicts":
            misfit = _spread_misfit(cand.params["factor"], ref, tst) if cand.kind == "scale" and lattice == "supports" else 0.0
            scored.append({"candidate": cand, "distance": distance(st, ref), "lattice": lattice, "stats": st, "misfit": misfit})
    est.distances = {"natural": _r(d_nat, 4), "as_is": _r(d_id, 4)}
    est.evidence = {
        "reference": ref_name,
        "split": name,
        f"{ref_name}_channel_mean": [_r(v) for v in ref.mean],
        f"{name}_channel_mean": [_r(v) for v in tst.mean],
        f"{ref_name}_channel_std": [_r(v) for v in ref.sd],
        f"{name}_channel_std": [_r(v) for v in tst.sd],
        "candidates_considered": len(cands),
    }
    if ref_lat and tst_lat:
        est.evidence[f"{ref_name}_lattice"] = [lat.describe() for lat in ref_lat]
        est.evidence[f"{name}_lattice"] = [lat.describe() for lat in tst_lat]
    chosen = None
    if scorer is not None:
        chosen = _choose_by_model(scored, scorer, d_id, d_nat, opt, est, ref, tst)
        if chosen is None and not _informative(scorer, opt["alpha"]):
            est.evidence["model_uninformative"] = "the model predicts no better than the most frequent class, so re-running it cannot arbitrate"
            scorer = None
    if scorer is None:
        chosen = _choose_by_distance(scored, d_id, d_nat, opt)
    est.evidence["distances"] = est.distances
    if chosen is None:
        return est
    cand = chosen["candidate"]
    est.candidate = cand
    est.pre = cand.transform
    est.parts = list(cand.parts)
    est.is_mismatch = True
    est.verified_by_model = scorer is not None
    est.distances["after_fix"] = _r(chosen["distance"], 4)
    st = chosen["stats"]
    est.residual_offset = st.mean - ref.mean
    est.residual_offset_sd = float(np.max(np.abs(est.residual_offset) / np.maximum(ref.sd, 1e-12)))
    est.title = cand.words[0].upper() + cand.words[1:]
    est.fix = cand.fix[0].upper() + cand.fix[1:] + "."
    est.confidence = 0.9 if scorer is not None else (0.75 if chosen["lattice"] == "supports" else 0.6)
    est.evidence["preprocessing_candidate"] = cand.describe()
    est.evidence["preprocessing"] = est.parts
    est.evidence["undo_map"] = cand.transform.to_dict()
    est.evidence["lattice"] = chosen["lattice"]
    if est.residual_offset_sd > 0.1:
        direction = "darker" if float(np.mean(est.residual_offset)) < 0 else "brighter"
        raw = ""
        divisor = cand.params.get("train_divisor")
        if cand.kind == "scale" and divisor and divisor != 1:
            raw = f" (= {_fmt(float(np.mean(np.abs(est.residual_offset))) * divisor, 3)}/{_fmt(divisor)})"
        est.evidence["residual_offset"] = [_r(v) for v in est.residual_offset]
        est.evidence["residual_offset_sd"] = _r(est.residual_offset_sd, 3)
        est.evidence["explanation"] = (
            f"{cand.words}; after undoing that, {name} inputs are still {direction} than {ref_name} inputs by "
            f"{_fmt(float(np.mean(np.abs(est.residual_offset))), 3)}{raw} in {ref_name} units ({_fmt(est.residual_offset_sd, 2)} "
            f"{ref_name} pixel SD): a remaining difference judged by covariate-shift"
        )
    return est


def _deterministic(entry: dict, d_nat: float, opt: dict) -> bool:
    """A value map must be a map of the stored values, not a lighting change: lattices agree, or little is left."""
    if entry["candidate"].family != "value":
        return True
    return entry["lattice"] == "supports" or entry["distance"] <= opt["max_residual_ratio"] * d_nat


def _closer(entry: dict, d_id: float, d_nat: float) -> bool:
    """Undoing the bug removes at least half of the test inputs' distance to the reference beyond the natural one.

    A model can gain a few points from a flip or a contrast stretch of inputs that were never changed (test-time
    augmentation); a real bug also shows in the inputs, and undoing it brings them back.
    """
    return d_id > d_nat and entry["distance"] <= d_nat + 0.5 * (d_id - d_nat)


def _recovers(res: dict, n_tests: int, opt: dict, target: dict | None = None) -> bool:
    """Significant, practically large, and (with a validation target) closing ``min_share`` of the gap to it."""
    gain = res["accuracy_after"] - res["accuracy_before"]
    drop = (res["log_loss_before"] - res["log_loss_after"]) / max(res["log_loss_before"], 1e-12)
    by_accuracy = res["p_accuracy"] * n_tests < opt["alpha"] and gain >= opt["min_gain"] and drop >= -0.02
    by_loss = res["p_log_loss"] * n_tests < opt["alpha"] and drop >= opt["min_log_loss_drop"] and gain >= -0.005
    if target is not None:
        acc_gap = target["accuracy"] - res["accuracy_before"]
        ll_gap = res["log_loss_before"] - target["log_loss"]
        by_accuracy = by_accuracy and (acc_gap <= 0 or gain >= opt["min_share"] * acc_gap)
        by_loss = by_loss and (ll_gap <= 0 or res["log_loss_before"] - res["log_loss_after"] >= opt["min_share"] * ll_gap)
    return by_accuracy or by_loss


def _best(entries: list[dict], opt: dict) -> dict:
    """The best recovery; among those within ``tie_accuracy`` of it (and not clearly worse in log-loss), the most common bug."""
    top = max(entries, key=lambda e: (e["result"]["accuracy_after"], -e["result"]["log_loss_after"]))
    acc, ll = top["result"]["accuracy_after"], top["result"]["log_loss_after"]
    near = [e for e in entries if e["result"]["accuracy_after"] >= acc - opt["tie_accuracy"] and e["result"]["log_loss_after"] <= 1.05 * ll + 0.01]
    return min(near, key=lambda e: e["candidate"].prior)


def _choose_by_model(scored: list[dict], scorer: ModelScorer, d_id: float, d_nat: float, opt: dict, est: TransformEstimate,
                     ref: SampleStats, tst: SampleStats) -> dict | None:
    """Re-run the model on the candidates the inputs allow; the best significant recovery (with a second bug, if any).

    Only candidates whose undoing brings the test inputs back (`_closer`, `_deterministic`) are run: that
    needs no labels, keeps a healthy split from costing any model run, and leaves fewer tests to correct for.
    """
    eligible = [e for e in scored if _closer(e, d_id, d_nat) and _deterministic(e, d_nat, opt)]
    values = sorted((e for e in eligible if e["candidate"].family == "value"), key=lambda e: e["distance"])
    trial = values[: int(opt["max_value_candidates"])] + [e for e in eligible if e["candidate"].family != "value"]
    for e in trial:
        e["probs"] = scorer.run(e["candidate"].transform)
    trial = [e for e in trial if e["probs"] is not None]
    for e in trial:
        e["result"] = paired_comparison(scorer.y, scorer.base, e["probs"])
    m = max(1, len(trial))
    est.evidence["candidates_tried"] = [
        {**e["candidate"].describe(), "accuracy_after": _r(e["result"]["accuracy_after"], 4), "log_loss_after": _r(e["result"]["log_loss_after"], 4),
         "p_accuracy": _r(min(1.0, e["result"]["p_accuracy"] * m), 3), "distance": _r(e["distance"], 4)}
        for e in sorted(trial, key=lambda e: -e["result"]["accuracy_after"])[:8]
    ]
    recovering = [e for e in trial if _recovers(e["result"], m, opt, scorer.target)]
    if not recovering:
        return None
    best = _with_second_bug(_best(recovering, opt), scored, scorer, ref, tst, opt)
    est.selection = best["result"]
    est.evidence["selection"] = {
        "rows": best["result"]["n"],
        "candidates_tested": m,
        "accuracy_before": _r(best["result"]["accuracy_before"], 4),
        "accuracy_after": _r(best["result"]["accuracy_after"], 4),
        "log_loss_before": _r(best["result"]["log_loss_before"], 4),
        "log_loss_after": _r(best["result"]["log_loss_after"], 4),
        "p_accuracy_bonferroni": _r(min(1.0, best["result"]["p_accuracy"] * m), 3),
        "p_log_loss_bonferroni": _r(min(1.0, best["result"]["p_log_loss"] * m), 3),
    }
    return best


def _with_second_bug(best: dict, scored: list[dict], scorer: ModelScorer, ref: SampleStats, tst: SampleStats, opt: dict,
                     max_runs: int = 2) -> dict:
    """``best``, or ``best`` with a bug of another family undone too when that brings the inputs closer and the model recovers more."""
    combos = []
    for e in scored:
        if e["candidate"].family == best["candidate"].family or not e["candidate"].analytic or not best["candidate"].analytic:
            continue
        cand = compose(best["candidate"], e["candidate"])
        st = tst.undone(cand.transform)
        if st is not None and distance(st, ref) < 0.8 * best["distance"]:
            combos.append({"candidate": cand, "distance": distance(st, ref), "lattice": best["lattice"], "stats": st})
    tried = []
    for c in sorted(combos, key=lambda c: c["distance"])[:max_runs]:
        c["probs"] = scorer.run(c["candidate"].transform)
        if c["probs"] is not None and _recovers(paired_comparison(scorer.y, best["probs"], c["probs"]), max_runs, opt):
            c["result"] = paired_comparison(scorer.y, scorer.base, c["probs"])
            tried.append(c)
    return max(tried, key=lambda c: c["result"]["accuracy_after"]) if tried else best


def _choose_by_distance(scored: list[dict], d_id: float, d_nat: float, opt: dict) -> dict | None:
    """The candidate that brings the inputs back to the reference, when they are far from it as they are.

    A candidate whose value lattice matches is preferred (it halves the
    distance at least); otherwise the closest, the most common bug among
    near-ties, and it must leave no more than the natural distance allows.
    """
    if not scored or d_id < max(opt["min_effect"], opt["min_distance_ratio"] * d_nat):
        return None
    matching = [e for e in scored if e["lattice"] == "supports" and e["distance"] <= 0.5 * d_id]
    if matching:
        tightest = min(e["misfit"] for e in matching)
        return min((e for e in matching if e["misfit"] <= tightest + 1e-3), key=lambda e: e["candidate"].prior)
    closest = min(e["distance"] for e in scored)
    near = [e for e in scored if e["distance"] <= 1.1 * closest + 1e-9]
    best = min(near, key=lambda e: e["candidate"].prior)
    return best if best["distance"] <= opt["max_residual_ratio"] * d_nat else None


def _informative(scorer: ModelScorer, alpha: float) -> bool:
    """Whether the model beats predicting the most frequent class (one-sided binomial test) where its inputs are right.

    That is on validation (else training) data when known (``scorer.skill``): a model at chance on a broken
    test split can still arbitrate, since undoing the right bug restores it. Else on the scorer's own rows.
    """
    from scipy.stats import binomtest

    if scorer.skill is not None:
        hits, n, chance = scorer.skill
    else:
        n = len(scorer.y)
        hits = int(np.sum(scorer.base.argmax(axis=1) == scorer.y))
        chance = float(np.bincount(scorer.y).max() / n) if n else 1.0
    if n < 10 or chance >= 1:
        return False
    return binomtest(int(hits), int(n), chance, alternative="greater").pvalue < alpha


def estimate_transform(ref: InputSummary, tst: InputSummary, *, ref_name: str = "train", name: str = "test", options: dict | None = None) -> TransformEstimate:
    """Compare tabular feature columns (moments): standardisation in one split only, or one common scale.

    Images go through `estimate_image_mismatch`, which needs the images themselves.
    """
    opt = {"min_effect": 0.2, "alpha": 0.01, **(options or {})}
    est = TransformEstimate(name=name, reference=ref_name, kind=ref.kind)
    if ref.n == 0 or tst.n == 0:
        return est
    if ref.kind != tst.kind:
        est.shape_issue = {"reference": ref.kind, name: tst.kind}
        return est
    return _estimate_tabular(ref, tst, est, opt)


def _is_standardised(mean: np.ndarray, std: np.ndarray, tol: float = 0.1) -> bool:
    return bool(np.all(np.abs(mean) < tol) and np.all(np.abs(std - 1.0) < tol))


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


def _image_shape(s) -> tuple[int, int, int]:
    """(height, width, channels) of a split's images."""
    shape = tuple(s.x.shape[1:])
    if s.layout == "NHW":
        return shape[0], shape[1], 1
    if s.layout == "NCHW":
        return shape[1], shape[2], shape[0]
    return shape[0], shape[1], shape[2]


def _shape_issue(ref, s) -> dict | None:
    rh, rw, rc = _image_shape(ref)
    th, tw, tc = _image_shape(s)
    if (rh, rw, rc) != (th, tw, tc):
        return {"reference_size": [rh, rw], "size": [th, tw], "reference_channels": rc, "channels": tc}
    if ref.layout != s.layout:
        return {"reference_layout": ref.layout, "layout": s.layout, "reference_shape": list(ref.x.shape[1:]), "shape": list(s.x.shape[1:])}
    return None


def _rows(ctx, split, m: int) -> np.ndarray:
    return _sample_rows(split.n, m, np.random.default_rng([ctx.seed, len(split.name)]))


def _finite_mask(x: np.ndarray) -> np.ndarray:
    """Rows without NaN or infinite values (those are data-quality's)."""
    if x.dtype.kind != "f":
        return np.ones(len(x), dtype=bool)
    return np.isfinite(x.reshape(len(x), -1)).all(axis=1)


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return x[_finite_mask(x)]


def _skill(ctx, name: str) -> tuple | None:
    """(correct, n, majority rate) of the model on validation, else training, predictions."""
    for other in ("val", "train"):
        sp = ctx.split(other)
        if other != name and sp is not None and sp.y is not None and sp.probs is not None and sp.n:
            est = ctx.cache.get(f"preprocessing:{other}")
            if est is not None and getattr(est, "is_mismatch", False):
                continue
            return int((sp.probs.argmax(axis=1) == sp.y).sum()), int(sp.n), float(np.bincount(sp.y).max() / sp.n)
    return None


def _validation_target(ctx, name: str) -> dict | None:
    """The model's accuracy and log-loss on validation data, the level a fixed test split should approach."""
    val = ctx.split("val")
    if name != "test" or val is None or val.y is None or val.probs is None:
        return None
    est = ctx.cache.get("preprocessing:val")
    if est is not None and est.is_mismatch:
        return None
    p_true = np.clip(val.probs[np.arange(val.n), val.y], 1e-15, 1.0)
    return {"accuracy": float((val.probs.argmax(axis=1) == val.y).mean()), "log_loss": float(-np.log(p_true).mean())}


def _image_estimate(ctx, name: str, ref_name: str, opt: dict) -> TransformEstimate:
    s, ref = ctx.split(name), ctx.split(ref_name)
    issue = _shape_issue(ref, s)
    est = TransformEstimate(name=name, reference=ref_name, kind="image", shape_issue=issue)
    if issue is not None and "size" in issue:
        return est
    m = int(opt["max_sample_rows"])
    ref_x = _finite_rows(np.asarray(ref.x[_rows(ctx, ref, m)]))
    rows = _rows(ctx, s, m)
    rows = rows[_finite_mask(np.asarray(s.x[rows]))]
    tst_x = np.asarray(s.x[rows])
    if len(ref_x) < 10 or len(tst_x) < 10:
        return est
    natural, natural_layout = None, None
    val = ctx.split("val")
    if name == "test" and ref_name != "val" and val is not None and val.x is not None and _image_shape(val) == _image_shape(ref):
        val_est = preprocessing_estimate(ctx, "val")
        if val_est is None or not val_est.is_mismatch:
            natural, natural_layout = _finite_rows(np.asarray(val.x[_rows(ctx, val, m)])), val.layout
    scorer = None
    if ctx.model is not None and s.y is not None:
        sel = rows[: int(opt["max_select_rows"])]
        try:
            scorer = ModelScorer(ctx.predict_probs, np.asarray(s.x[sel]), s.y[sel], s.layout, target=_validation_target(ctx, name), skill=_skill(ctx, name))
        except Exception:  # noqa: BLE001 - a model that cannot run on the inputs leaves the label-free path
            scorer = None
    ref_sum, tst_sum = split_summary(ctx, ref_name), split_summary(ctx, name)
    lattices = (ref_sum.lattices(), tst_sum.lattices()) if ref_sum is not None and tst_sum is not None else None
    integer = s.x.dtype.kind in "ui" and float(tst_x.min(initial=0)) >= 0 and float(tst_x.max(initial=0)) <= 255
    found = estimate_image_mismatch(
        ref_x, tst_x, s.layout, ref_layout=ref.layout, natural_x=natural, natural_layout=natural_layout, lattices=lattices,
        scorer=scorer, ref_name=ref_name, name=name, options=opt, integer_values=integer,
    )
    found.shape_issue = issue
    return found


def preprocessing_estimate(ctx, name: str = "test") -> TransformEstimate | None:
    """The preprocessing difference of split ``name`` from the reference split (cached as ``"preprocessing:<name>"``)."""

    def compute():
        ref_name = _reference_name(ctx, name)
        s = ctx.split(name)
        if ref_name is None or s is None or s.x is None:
            return None
        ref = ctx.split(ref_name)
        opt = {k: ctx.option(PreprocessingCheck.name, k, getattr(PreprocessingCheck, k)) for k in _ENGINE_OPTIONS + ("max_sample_rows", "max_select_rows")}
        if s.is_image and ref.is_image:
            return _image_estimate(ctx, name, ref_name, opt)
        return estimate_transform(split_summary(ctx, ref_name), split_summary(ctx, name), ref_name=ref_name, name=name, options=opt)

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
        try:
            return ctx.predict_probs(est.pre.invert(np.asarray(s.x), s.layout))
        except Exception:  # noqa: BLE001 - a model that cannot take the corrected inputs gives no aligned outputs
            return None

    return ctx.cached(f"preprocessing:{name}:probs_undone", compute)


# --------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------
class _NotVerifiable(Exception):
    """The model cannot arbitrate (none given, no labels, or it predicts at chance)."""


@register
class PreprocessingCheck(Check):
    """Test (and validation) inputs preprocessed differently from training inputs."""

    name = "preprocessing-mismatch"
    codes = ("preprocessing-mismatch",)
    requires = ("test.x|val.x", "train.x|val.x")

    alpha = 0.01
    min_gain = 0.02
    min_log_loss_drop = 0.1
    max_residual_ratio = 2.0
    min_distance_ratio = 4.0
    min_effect = 0.2
    max_value_candidates = 6
    tie_accuracy = 0.01
    min_share = 0.5
    max_sample_rows = 1000
    max_select_rows = 500
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
                if est.shape_issue.get("channels") != est.shape_issue.get("reference_channels") or "size" in est.shape_issue or "columns" in est.shape_issue:
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
                verified = {"metric": "accuracy", "before": res["accuracy_before"], "after": res["accuracy_after"], "method": "re-measured"}
                if res["accuracy_after"] - res["accuracy_before"] >= self.threshold(ctx, "critical_gain"):
                    severity = "critical"
        return Finding("preprocessing-mismatch", severity, 0.95, title, evidence=dict(issue), fix=fix, verified=verified)

    def _mismatch_finding(self, ctx, s, est: TransformEstimate) -> Finding:
        evidence = dict(est.evidence)
        if est.kind == "tabular":
            evidence["estimated_from"] = "column moments of the unlabelled inputs"
        severity, confidence, verified, explains = "warning", est.confidence, None, None
        if est.kind == "image" and not est.verified_by_model:
            evidence["not_verified"] = (
                "no model with labels was given, so undoing the candidate could not be tested; it is the one whose undoing brings the "
                f"{s.name} inputs closest to the {est.reference} inputs ({est.distances.get('after_fix')} vs {est.distances.get('as_is')} as they are; "
                f"natural distance {est.distances.get('natural')})"
            )
        pre = est.pre
        try:
            if est.kind == "image" and not est.verified_by_model:
                raise _NotVerifiable
            res = rerun_on_fixed(ctx, s, lambda x: pre.invert(x, s.layout), max_samples=self.threshold(ctx, "max_verify_samples"))
        except _NotVerifiable:
            res = None
        except Exception as exc:  # noqa: BLE001 - verification is best effort; the evidence stands without it
            res = None
            evidence["verification_failed"] = f"{type(exc).__name__}: {exc}"[:300]
        if res is not None:
            ctx.cache.setdefault(f"preprocessing:{s.name}:probs_undone_rows", (res["rows"], res["probs_after"]))
            if res["n"] == s.n:
                ctx.cache.setdefault(f"preprocessing:{s.name}:probs_undone", res["probs_after"])
            paired = paired_comparison(s.y[res["rows"]], s.probs[res["rows"]], res["probs_after"])
            gain = paired["accuracy_after"] - paired["accuracy_before"]
            ll_drop = (paired["log_loss_before"] - paired["log_loss_after"]) / max(paired["log_loss_before"], 1e-12)
            evidence["verification"] = {k: (_r(v, 4) if isinstance(v, float) else v) for k, v in paired.items() if k != "gain_interval"}
            by_loss = gain < self.threshold(ctx, "min_gain") and ll_drop > 0
            verified = (
                {"metric": "log_loss", "before": paired["log_loss_before"], "after": paired["log_loss_after"], "method": "re-measured"}
                if by_loss
                else {"metric": "accuracy", "before": paired["accuracy_before"], "after": paired["accuracy_after"],
                      "interval": [_r(v, 4) for v in paired["gain_interval"]], "method": "re-measured"}
            )
            if gain >= self.threshold(ctx, "critical_gain") or ll_drop >= self.threshold(ctx, "critical_log_loss_drop"):
                severity = "critical"
                confidence = max(confidence, 0.97)
            explains = self._explains(ctx, s, paired)
        if est.ref_q is not None and est.tst_q is not None:
            ctx.add_artifact(self.name, f"{s.name}_quantiles", {
                "levels": Q_LEVELS.tolist(),
                est.reference: np.round(est.ref_q, 6).tolist(),
                s.name: np.round(est.tst_q, 6).tolist(),
            })
        finding = Finding("preprocessing-mismatch", severity, confidence, est.title, evidence=evidence, fix=est.fix, verified=verified)
        if explains is not None:
            finding.explains = explains
        return finding

    @staticmethod
    def _explains(ctx, s, paired: dict) -> dict | None:
        """The accuracy the fix recovers, as part of the gap to the validation accuracy (``explains``)."""
        gain = paired["accuracy_after"] - paired["accuracy_before"]
        val = ctx.split("val")
        shortfall = None
        if s.name == "test" and val is not None and val.y is not None and val.probs is not None:
            shortfall = float((val.probs.argmax(axis=1) == val.y).mean()) - paired["accuracy_before"]
        return make_explains("accuracy", gain, shortfall, "validation")
