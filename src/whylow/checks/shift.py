"""``covariate-shift``: test inputs come from a different distribution than training inputs.

The reference is the training split (else validation). When
``preprocessing-mismatch`` estimated a preprocessing map for the test
inputs, shift is judged on the test inputs *with that map undone* (and on
the model's outputs for them), so a preprocessing bug is not reported twice;
the finding says so.

When both splits are labelled and their class mix differs (chi-square test
of homogeneity, ``p < alpha``), every measurement below compares
*class-matched* samples: class by class, as many reference as test examples
(``min`` of the two counts, drawn without replacement). A new class mix
alone (label shift, a training imbalance meeting a balanced test set)
changes the inputs' distribution without changing ``p(x | y)``, and a
domain classifier would separate the splits by their classes; that is
``label-shift`` or ``class-imbalance``, not input shift.

Measurements
------------
1. **Image-property drift.** For each per-image property of
   `whylow.summaries` (brightness, contrast, sharpness, noise,
   colourfulness, clipped fraction) a two-sample Kolmogorov-Smirnov test
   compares the reference and test distributions; p-values are
   Holm-corrected over the properties. A property drifts when its corrected
   ``p < alpha`` (0.01) **and** its KS statistic is at least ``min_ks``
   (0.15). The standardised median change ``(median_test - median_ref) /
   sd_ref`` and the relative change are reported. Tabular inputs use their
   columns instead of properties.
2. **Domain classifier.** A logistic regression (centred features, each
   property scaled by its spread and all thumbnail pixels by one pooled
   spread; L2, C = 0.1) separates reference from test examples on per-image
   property vectors plus 8×8 area-averaged thumbnails (a balanced sample of
   at most ``max_domain_samples`` per split from the summaries' bottom-k
   thumbnail sample), scored by 5-fold cross-validated ROC AUC. Its
   significance is the one-sided Mann-Whitney U test of the out-of-fold
   scores. It counts when ``AUC >= min_auc`` (0.65) and ``p < alpha``.
3. **Output drift (BBSD, Rabanser et al. 2019).** KS tests of each class's
   predicted probability, held-out in-distribution split (validation, else
   training, flagged as in-sample) vs test, Bonferroni-corrected over the
   classes. Output drift alone can be label shift, so it is supporting
   evidence only, never a trigger.
4. **Accuracy explained.** On the test examples with a domain score, the
   accuracy of the most in-distribution third is compared with the most
   shifted third. When the shift is pervasive (``AUC >= pervasive_auc``,
   0.85: nearly every test example is recognisably different), the whole
   held-out-to-test accuracy drop (validation accuracy minus test accuracy,
   two-proportion z-test ``p < alpha``) is attributed to it, and so it is
   when a shift too uniform for a high AUC (every image a little blurred)
   still moves the model's outputs (BBSD significant) while the class mix
   matches validation's (chi-square); otherwise the
   gain of bringing the test set to the in-distribution third's accuracy
   is (z-test of the thirds), but never more than the validation-to-test
   drop there is to explain (both tests must be significant): inputs whose
   look goes with their class make the thirds differ without any shift.

Judgement: a finding needs property drift or a significant domain
classifier; its severity comes from its cost: critical when the accuracy it
explains is at least ``critical_drop`` (5 points) and significant (or the
relative log-loss rise it explains ``critical_loss_rise``, 20 %), a warning
from ``min_cost`` (2 points; or ``min_loss_cost``, 10 % log-loss), info below — a difference the model
does not mind (8-bit quantisation of float inputs, say) is not a reason for
low predictions. Without test labels the cost cannot be measured, and only
a pervasive shift (domain AUC at least ``pervasive_auc``) is a warning.
"""

from __future__ import annotations

import math

import numpy as np

from whylow.checks import Check, register
from whylow.checks.preprocessing import aligned_probs, aligned_summary, preprocessing_estimate
from whylow.report.finding import Finding, make_explains
from whylow.summaries import PROPERTIES, split_summary

__all__ = ["CovariateShiftCheck", "holm", "domain_classifier"]

_WORDS = {
    "brightness": ("darker", "brighter"),
    "contrast": ("lower in contrast", "higher in contrast"),
    "sharpness": ("blurrier", "sharper"),
    "noise": ("less noisy", "noisier"),
    "colourfulness": ("less colourful", "more colourful"),
    "clipped": ("less saturated", "more saturated (clipped)"),
}

_REMEDY = {
    "brightness": "brightness/gamma augmentation or per-image intensity normalisation",
    "contrast": "contrast augmentation or per-image standardisation",
    "sharpness": "blur / resolution augmentation (or sharper test images)",
    "noise": "noise augmentation or denoising of test images",
    "colourfulness": "colour jitter / greyscale augmentation",
    "clipped": "exposure augmentation, or fix the exposure of test images",
}


def _r(v, digits: int = 4):
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def _two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided p-value that proportion 1 exceeds proportion 2 (pooled z-test)."""
    from scipy.stats import norm

    if n1 == 0 or n2 == 0:
        return 1.0
    p1, p2 = k1 / n1, k2 / n2
    pool = (k1 + k2) / (n1 + n2)
    se = math.sqrt(max(pool * (1 - pool) * (1 / n1 + 1 / n2), 1e-300))
    return float(norm.sf((p1 - p2) / se))


def _welch_greater(a: np.ndarray, b: np.ndarray) -> float:
    """One-sided Welch t-test p-value that ``a`` has the larger mean (1 when either side is tiny or constant)."""
    import warnings

    from scipy.stats import ttest_ind

    if min(len(a), len(b)) < 3 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nearly identical losses: the p-value is then near 1 anyway
        p = float(ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    return p if math.isfinite(p) else 1.0


def _standardise(x: np.ndarray, groups) -> np.ndarray:
    """Centre every column; scale each group of columns by the group's pooled standard deviation.

    Pixels of a thumbnail share one scale: a corner pixel that is constant
    within each split must not be blown up by its own (near-zero) spread,
    or a rounding-sized difference between the splits would look like a
    perfect separation.
    """
    x = x - x.mean(axis=0)
    for g in groups:
        block = x[:, g]
        sd = float(np.sqrt(np.mean(block * block)))
        x[:, g] = block / sd if sd > 0 else 0.0
    return x


def domain_classifier(x_ref: np.ndarray, x_tst: np.ndarray, *, seed: int = 0, n_folds: int = 5, groups=None) -> dict:
    """Cross-validated logistic-regression domain classifier.

    Parameters
    ----------
    x_ref, x_tst : ndarray of shape (n_ref, n_features), (n_tst, n_features)
    groups : list of slices or index arrays, optional
        Columns that share one scale (e.g. the pixels of a thumbnail); every
        other column is scaled on its own.

    Returns
    -------
    dict
        ``auc``, ``p_value`` (one-sided Mann-Whitney U of out-of-fold scores),
        ``scores_ref``, ``scores_tst`` (out-of-fold decision values).
    """
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.concatenate([x_ref, x_tst]).astype(np.float64)
    d = np.concatenate([np.zeros(len(x_ref), dtype=int), np.ones(len(x_tst), dtype=int)])
    n_features = x.shape[1]
    grouped = np.zeros(n_features, dtype=bool)
    all_groups = []
    for g in groups or []:
        idx = np.arange(n_features)[g]
        grouped[idx] = True
        all_groups.append(idx)
    all_groups += [np.array([j]) for j in np.flatnonzero(~grouped)]
    x = _standardise(x, all_groups)
    keep = x.std(axis=0) > 0
    if not keep.any() or min(len(x_ref), len(x_tst)) < n_folds:
        return {"auc": 0.5, "p_value": 1.0, "scores_ref": np.zeros(len(x_ref)), "scores_tst": np.zeros(len(x_tst))}
    x = x[:, keep]
    clf = LogisticRegression(C=0.1, max_iter=300)
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(clf, x, d, cv=cv, method="decision_function")
    auc = float(roc_auc_score(d, scores))
    p = float(mannwhitneyu(scores[d == 1], scores[d == 0], alternative="greater").pvalue)
    return {"auc": auc, "p_value": p, "scores_ref": scores[d == 0], "scores_tst": scores[d == 1]}


def _ks(a: np.ndarray, b: np.ndarray):
    from scipy.stats import ks_2samp

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0 and a[0] == b[0]):
        return 0.0, 1.0
    res = ks_2samp(a, b)
    return float(res.statistic), float(res.pvalue)


def class_matched_rows(y_ref: np.ndarray, y_tst: np.ndarray, rng, rows_ref=None, rows_tst=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of two labelled splits with the same number of examples of every class on both sides.

    Class by class, ``min(n_ref_k, n_tst_k)`` rows are drawn without
    replacement from each side (classes missing on either side are left
    out), so the two samples differ only in ``p(x | y)``, not in the class mix.

    Parameters
    ----------
    y_ref, y_tst : ndarray of int
        Labels of the two splits.
    rng : numpy.random.Generator
    rows_ref, rows_tst : ndarray of int, optional
        Rows to draw from (default: all).

    Returns
    -------
    tuple of ndarray
        Sorted reference rows and sorted test rows, of equal length.
    """
    rows_ref = np.arange(len(y_ref)) if rows_ref is None else np.asarray(rows_ref)
    rows_tst = np.arange(len(y_tst)) if rows_tst is None else np.asarray(rows_tst)
    lab_ref, lab_tst = y_ref[rows_ref], y_tst[rows_tst]
    keep_ref, keep_tst = [], []
    for k in np.union1d(np.unique(lab_ref), np.unique(lab_tst)):
        a, b = rows_ref[lab_ref == k], rows_tst[lab_tst == k]
        n = min(len(a), len(b))
        if n:
            keep_ref.append(rng.choice(a, n, replace=False))
            keep_tst.append(rng.choice(b, n, replace=False))
    if not keep_ref:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(keep_ref)), np.sort(np.concatenate(keep_tst))


def _class_mix_differs(y_ref: np.ndarray, y_tst: np.ndarray, n_classes: int, alpha: float) -> bool:
    """Whether the two label histograms differ (chi-square test of homogeneity, ``p < alpha``)."""
    from scipy.stats import chi2_contingency

    counts = np.vstack([np.bincount(y_ref, minlength=n_classes), np.bincount(y_tst, minlength=n_classes)])
    counts = counts[:, counts.sum(axis=0) > 0]
    if counts.shape[1] < 2:
        return False
    return float(chi2_contingency(counts)[1]) < alpha


@register
class CovariateShiftCheck(Check):
    """Test inputs drawn from a different distribution than training inputs."""

    name = "covariate-shift"
    codes = ("covariate-shift",)
    requires = ("test.x", "train.x|val.x")

    alpha = 0.01
    min_ks = 0.15
    min_auc = 0.65
    pervasive_auc = 0.85
    critical_drop = 0.05
    #: Accuracy a shift must cost (significantly) to be a warning: about what a user would act on.
    min_cost = 0.02
    #: Or the relative log-loss rise it must explain (10 %; critical from 20 %, as for a preprocessing fix).
    min_loss_cost = 0.1
    critical_loss_rise = 0.2
    max_domain_samples = 4000
    #: Cross-validation folds of the domain classifier (3 halves its cost against 5; the AUC barely moves).
    domain_folds = 3
    max_columns = 256

    def run(self, ctx) -> list[Finding]:
        ref_name = "train" if ctx.split("train") is not None and ctx.split("train").x is not None else "val"
        test = ctx.test
        if test.is_image != ctx.split(ref_name).is_image:
            return []
        alpha = self.threshold(ctx, "alpha")
        rng = np.random.default_rng(ctx.seed)
        labels = self._labels_to_match(ctx, ref_name)
        if test.is_image:
            ref_sum = split_summary(ctx, ref_name)
            tst_sum, est = aligned_summary(ctx, "test")
            aligned = est is not None and est.is_mismatch and est.pre is not None and tst_sum is not split_summary(ctx, "test")
            drift, feats = self._image_drift(ctx, ref_sum, tst_sum, rng, labels)
        else:
            est = preprocessing_estimate(ctx, "test")
            aligned = est is not None and est.is_mismatch and est.pre is not None
            undo = est.pre.invert if aligned else None
            drift, feats = self._tabular_drift(ctx, ctx.split(ref_name), test, rng, undo, labels)
        holm_p = holm([d["p"] for d in drift])
        for d, hp in zip(drift, holm_p):
            d["p_holm"] = _r(hp, 3)
        min_ks = self.threshold(ctx, "min_ks")
        drifted = [d for d, hp in zip(drift, holm_p) if hp < alpha and d["ks"] >= min_ks]
        drifted.sort(key=lambda d: -d["ks"])
        dom = None
        if feats is not None:
            x_ref, x_tst, _, groups = feats
            dom = domain_classifier(x_ref, x_tst, seed=ctx.seed, groups=groups, n_folds=int(self.threshold(ctx, "domain_folds")))
        domain_sig = dom is not None and dom["auc"] >= self.threshold(ctx, "min_auc") and dom["p_value"] < alpha
        if not drifted and not domain_sig:
            return []
        evidence: dict = {
            "reference": ref_name,
            "drifted": [{k: v for k, v in d.items() if k != "p"} for d in drifted[:8]],
            "tests": len(drift),
        }
        if labels is not None:
            evidence["class_matched"] = (
                f"the class mix of {ref_name} and test differs, so both were compared on samples with the same number of "
                "examples of every class: a new class mix alone (label shift, a training imbalance) is not input shift"
            )
        if aligned:
            evidence["judged_on"] = (
                f"test inputs with the estimated preprocessing undone ({', '.join(est.parts)}; "
                f"map {est.pre.to_dict()}), so the preprocessing mismatch is not counted as shift"
            )
        if dom is not None:
            evidence["domain_classifier"] = {
                "auc": _r(dom["auc"], 3),
                "p_value": _r(dom["p_value"], 3),
                "n_per_split": [int(len(dom["scores_ref"])), int(len(dom["scores_tst"]))],
                "features": "per-image properties, channel means/stds and 8x8 thumbnails" if test.is_image else "feature columns",
            }
        probs_test = aligned_probs(ctx, "test") if aligned else None
        if probs_test is None:
            probs_test = test.probs
        bbsd = self._bbsd(ctx, probs_test)
        if bbsd:
            evidence["output_drift_bbsd"] = bbsd
        explained, acc_info = self._explained(ctx, dom, feats, probs_test, bbsd)
        evidence.update(acc_info)
        severity = self._severity(ctx, explained, acc_info, dom)
        auc_part = 0.0 if dom is None else max(0.0, 2 * (dom["auc"] - 0.5))
        ks_part = drifted[0]["ks"] if drifted else 0.0
        confidence = min(0.97, 0.5 + 0.47 * max(auc_part, ks_part))
        title, fix = self._words(ctx, drifted, dom, aligned, est, ref_name, test.is_image, acc_info)
        self._artifacts(ctx, drift, ref_name, test.is_image, aligned)
        finding = Finding("covariate-shift", severity, confidence, title, evidence=evidence, fix=fix)
        if explained is not None:
            finding.explains = make_explains("accuracy", explained, acc_info.get("drop_vs_val"), "validation")
        return [finding]

    def _severity(self, ctx, explained: float | None, acc_info: dict, dom: dict | None) -> str:
        """Severity from the accuracy the shift costs, not from how detectable it is.

        Critical when it explains at least ``critical_drop`` accuracy, a warning from
        ``min_cost``, both significant; info below (a detectable difference the model
        does not mind, such as 8-bit quantisation). Without labels the cost is unknown:
        a warning only for a pervasive shift (domain AUC at least ``pervasive_auc``).
        """
        alpha = self.threshold(ctx, "alpha")
        if explained is None:
            pervasive = dom is not None and dom["auc"] >= self.threshold(ctx, "pervasive_auc")
            return "warning" if pervasive else "info"
        significant = acc_info.get("drop_p_value", 1.0) < alpha
        loss = acc_info.get("log_loss_rise_explained") or 0.0
        loss_significant = (acc_info.get("log_loss_p_value") or 1.0) < alpha
        if significant and explained >= self.threshold(ctx, "critical_drop") or loss_significant and loss >= self.threshold(ctx, "critical_loss_rise"):
            return "critical"
        if significant and explained >= self.threshold(ctx, "min_cost") or loss_significant and loss >= self.threshold(ctx, "min_loss_cost"):
            return "warning"
        return "info"

    # -- measurements -----------------------------------------------------------
    def _labels_to_match(self, ctx, ref_name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Reference and test labels when their class mix differs (chi-square ``p < alpha``), else None.

        A different class mix changes the distribution of inputs without any
        change of ``p(x | y)``; the measurements then compare class-matched
        samples (`class_matched_rows`). Without test labels nothing is matched.
        """
        ref, test = ctx.split(ref_name), ctx.test
        if ref is None or ref.y is None or test.y is None:
            return None
        if not _class_mix_differs(ref.y, test.y, ctx.n_classes, self.threshold(ctx, "alpha")):
            return None
        return ref.y, test.y

    def _image_drift(self, ctx, ref_sum, tst_sum, rng, labels=None):
        drift = []
        rows_ref = rows_tst = slice(None)
        if labels is not None:
            rows_ref, rows_tst = class_matched_rows(labels[0], labels[1], rng)
        for p in PROPERTIES:
            if p == "colourfulness" and min(ref_sum.n_channels, tst_sum.n_channels) < 3:
                continue
            a, b = ref_sum.prop(p)[rows_ref], tst_sum.prop(p)[rows_tst]
            ks, pv = _ks(a, b)
            a_f, b_f = a[np.isfinite(a)], b[np.isfinite(b)]
            if not len(a_f) or not len(b_f):
                continue
            med_a, med_b = float(np.median(a_f)), float(np.median(b_f))
            sd_a = float(np.std(a_f))
            drift.append({
                "property": p,
                "ks": _r(ks, 3),
                "p": pv,
                "median_reference": _r(med_a),
                "median_test": _r(med_b),
                "change_sd": _r((med_b - med_a) / sd_a, 3) if sd_a > 0 else None,
                "change_relative": _r((med_b - med_a) / abs(med_a), 3) if med_a != 0 else None,
            })
        feats = self._image_features(ctx, ref_sum, tst_sum, rng, labels)
        return drift, feats

    def _image_features(self, ctx, ref_sum, tst_sum, rng, labels=None):
        """Balanced samples of property vectors (+ thumbnails when shapes agree) for the domain classifier.

        With ``labels`` (reference and test labels), both samples are drawn
        class-matched from the thumbnail sample.
        """
        m = int(self.threshold(ctx, "max_domain_samples"))
        ri, rt = ref_sum.thumbnails()
        ti, tt = tst_sum.thumbnails()
        pool_r, pool_t = np.arange(len(ri)), np.arange(len(ti))
        if labels is not None:
            # positions within the thumbnail samples, matched on the labels of the rows they show
            pool_r, pool_t = class_matched_rows(labels[0][ri], labels[1][ti], rng)
        n = min(len(pool_r), len(pool_t), m)
        if n < 10:
            return None
        rsel = np.sort(rng.choice(pool_r, n, replace=False))
        tsel = np.sort(rng.choice(pool_t, n, replace=False))
        same = ref_sum.n_channels == tst_sum.n_channels
        parts_r = [ref_sum.feature_matrix(ri[rsel]) if same else np.column_stack([ref_sum.prop(p)[ri[rsel]] for p in PROPERTIES])]
        parts_t = [tst_sum.feature_matrix(ti[tsel]) if same else np.column_stack([tst_sum.prop(p)[ti[tsel]] for p in PROPERTIES])]
        groups = []
        if rt.shape[1:] == tt.shape[1:]:
            start = parts_r[0].shape[1]
            parts_r.append(rt[rsel].reshape(n, -1))
            parts_t.append(tt[tsel].reshape(n, -1))
            groups.append(slice(start, start + parts_r[-1].shape[1]))
        xr, xt = np.concatenate(parts_r, axis=1), np.concatenate(parts_t, axis=1)
        ok_r, ok_t = np.isfinite(xr).all(axis=1), np.isfinite(xt).all(axis=1)
        if ok_r.sum() < 10 or ok_t.sum() < 10:
            return None
        return xr[ok_r], xt[ok_t], ti[tsel][ok_t], groups

    def _tabular_drift(self, ctx, ref, test, rng, undo=None, labels=None):
        m = int(self.threshold(ctx, "max_domain_samples"))
        cap = int(self.threshold(ctx, "max_columns"))
        pool_r, pool_t = (np.arange(ref.n), np.arange(test.n)) if labels is None else class_matched_rows(labels[0], labels[1], rng)
        rr = np.sort(rng.choice(pool_r, min(len(pool_r), 5 * m), replace=False))
        tr = np.sort(rng.choice(pool_t, min(len(pool_t), 5 * m), replace=False))
        xr = np.asarray(ref.x[rr], dtype=np.float64)
        xt = np.asarray(test.x[tr], dtype=np.float64)
        if xr.shape[1] != xt.shape[1]:
            return [], None
        if undo is not None:
            xt = undo(xt, "tabular").astype(np.float64)
        drift = []
        for j in range(min(xr.shape[1], cap)):
            ks, pv = _ks(xr[:, j], xt[:, j])
            a, b = xr[:, j][np.isfinite(xr[:, j])], xt[:, j][np.isfinite(xt[:, j])]
            if not len(a) or not len(b):
                continue
            sd = float(np.std(a))
            drift.append({
                "property": f"column {j}",
                "ks": _r(ks, 3),
                "p": pv,
                "median_reference": _r(np.median(a)),
                "median_test": _r(np.median(b)),
                "change_sd": _r((np.median(b) - np.median(a)) / sd, 3) if sd > 0 else None,
                "change_relative": None,
            })
        n = min(len(rr), len(tr), m)
        rs = rng.choice(len(rr), n, replace=False)
        ts = rng.choice(len(tr), n, replace=False)
        fr, ft = xr[rs][:, :cap], xt[ts][:, :cap]
        ok_r, ok_t = np.isfinite(fr).all(axis=1), np.isfinite(ft).all(axis=1)
        if n < 10 or ok_r.sum() < 10 or ok_t.sum() < 10:
            return drift, None
        return drift, (fr[ok_r], ft[ok_t], tr[ts][ok_t], [])

    def _bbsd(self, ctx, probs_test) -> dict | None:
        val = ctx.split("val")
        ref, in_sample = (val, False) if val is not None and val.probs is not None else (ctx.split("train"), True)
        if ref is None or ref.probs is None or probs_test is None or ref.probs.shape[1] != probs_test.shape[1]:
            return None
        k = probs_test.shape[1]
        cols = range(1, 2) if k == 2 else range(k)
        results = [_ks(ref.probs[:, j], probs_test[:, j]) for j in cols]
        ks_max = max(r[0] for r in results)
        p_min = min(r[1] for r in results)
        conf_ks, conf_p = _ks(ref.probs.max(axis=1), probs_test.max(axis=1))
        return {
            "reference": ref.name + (" (in-sample: the model was trained on it)" if in_sample else ""),
            "max_class_ks": _r(ks_max, 3),
            "p_value_bonferroni": _r(min(1.0, p_min * len(results)), 3),
            "confidence_ks": _r(conf_ks, 3),
            "confidence_p_value": _r(conf_p, 3),
            "mean_confidence_reference": _r(ref.probs.max(axis=1).mean()),
            "mean_confidence_test": _r(probs_test.max(axis=1).mean()),
        }

    def _explained(self, ctx, dom, feats, probs_test, bbsd: dict | None = None) -> tuple[float | None, dict]:
        test = ctx.test
        info: dict = {}
        if test.y is None or probs_test is None:
            return None, info
        correct = probs_test.argmax(axis=1) == test.y
        acc_test = float(correct.mean())
        info["accuracy_test"] = _r(acc_test)
        val = ctx.split("val")
        acc_ref = None
        if val is not None and val.y is not None and val.probs is not None:
            vc = val.probs.argmax(axis=1) == val.y
            acc_ref = float(vc.mean())
            info["accuracy_val"] = _r(acc_ref)
            info["drop_vs_val"] = _r(acc_ref - acc_test)
            drop_p = _two_proportion_p(int(vc.sum()), len(vc), int(correct.sum()), len(correct))
        explained = None
        tercile_p = 1.0
        if dom is not None and feats is not None and len(feats[2]) >= 30:
            rows = feats[2]
            order = np.argsort(dom["scores_tst"], kind="stable")
            third = len(order) // 3
            inn, out = rows[order[:third]], rows[order[-third:]]
            acc_in, acc_out = float(correct[inn].mean()), float(correct[out].mean())
            info["accuracy_most_in_distribution_third"] = _r(acc_in)
            info["accuracy_most_shifted_third"] = _r(acc_out)
            tercile_p = _two_proportion_p(int(correct[inn].sum()), len(inn), int(correct[out].sum()), len(out))
            pervasive = dom["auc"] >= self.threshold(ctx, "pervasive_auc")
            if not pervasive and acc_ref is not None and self._uniform_shift(ctx, dom, bbsd, val):
                pervasive = True
                info["uniform_shift"] = (
                    "the domain classifier is significant, the model's outputs drift with the inputs (BBSD) and the class mix "
                    "is unchanged: every test image is shifted a little (a blur, a lighting change), so the thirds cannot differ"
                )
            if pervasive and acc_ref is not None:
                explained = max(0.0, acc_ref - acc_test)
                info["drop_p_value"] = _r(drop_p, 3)
                info["explained_by"] = "the whole validation-to-test accuracy drop (nearly every test example is shifted)"
            else:
                explained = max(0.0, acc_in - acc_test)
                info["drop_p_value"] = _r(tercile_p, 3)
                info["explained_by"] = "accuracy the test set would have at its most in-distribution third's level"
        elif acc_ref is not None:
            explained = max(0.0, acc_ref - acc_test)
            info["drop_p_value"] = _r(drop_p, 3)
            info["explained_by"] = "the validation-to-test accuracy drop"
        if explained is not None and acc_ref is not None and "drop_vs_val" in info:
            # a shift explains at most the shortfall there is: the tercile contrast alone also picks up
            # inputs whose look goes with their class (bright classes easier than dark ones)
            if explained > max(0.0, acc_ref - acc_test):
                info["capped_at_validation_drop"] = _r(explained)
            explained = min(explained, max(0.0, acc_ref - acc_test))
            info["drop_p_value"] = _r(max(float(info.get("drop_p_value") or 1.0), drop_p), 3)
        if explained is not None:
            info["accuracy_drop_explained"] = _r(explained)
        self._loss_explained(ctx, dom, feats, probs_test, info)
        return explained, info

    def _uniform_shift(self, ctx, dom: dict, bbsd: dict | None, val) -> bool:
        """Whether a shift too uniform for the domain classifier to call pervasive still changes what the model sees.

        Needs a significant domain classifier, significant output drift of the
        model (BBSD: class probabilities or confidence), and test labels whose
        class mix does not differ from validation's (chi-square), so label
        shift is not mistaken for it.
        """
        from scipy.stats import chi2_contingency

        alpha = self.threshold(ctx, "alpha")
        if dom["p_value"] >= alpha or not bbsd:
            return False
        drift_p = min(bbsd.get("p_value_bonferroni") or 1.0, bbsd.get("confidence_p_value") or 1.0)
        if drift_p >= alpha:
            return False
        test = ctx.test
        counts = np.vstack([np.bincount(val.y, minlength=ctx.n_classes), np.bincount(test.y, minlength=ctx.n_classes)])
        counts = counts[:, counts.sum(axis=0) > 0]
        if counts.shape[1] < 2:
            return True
        return float(chi2_contingency(counts)[1]) >= alpha

    def _loss_explained(self, ctx, dom, feats, probs_test, info: dict) -> None:
        """The relative log-loss increase the shift explains, measured like the accuracy drop (Welch t-tests).

        Pervasive shift: the validation-to-test increase; otherwise the test log-loss over its most
        in-distribution third's, capped at the validation-to-test increase.
        """
        test, val = ctx.test, ctx.split("val")
        if val is None or val.y is None or val.probs is None or probs_test.shape[1] != val.probs.shape[1]:
            return
        ll_t = -np.log(np.clip(probs_test[np.arange(test.n), test.y], 1e-15, 1.0))
        ll_v = -np.log(np.clip(val.probs[np.arange(val.n), val.y], 1e-15, 1.0))
        base = max(float(ll_v.mean()), 1e-12)
        rise = float(ll_t.mean() - ll_v.mean())
        p_rise = _welch_greater(ll_t, ll_v)
        explained, p = rise, p_rise
        pervasive = dom is not None and dom["auc"] >= self.threshold(ctx, "pervasive_auc") or "uniform_shift" in info
        if dom is not None and feats is not None and len(feats[2]) >= 30 and not pervasive:
            rows = feats[2]
            order = np.argsort(dom["scores_tst"], kind="stable")
            inn = rows[order[: len(order) // 3]]
            explained = min(rise, float(ll_t.mean() - ll_t[inn].mean()))
            p_in = _welch_greater(ll_t, ll_t[inn])
            p = max(p_rise, p_in)
        info["log_loss_val"] = _r(base, 4)
        info["log_loss_test"] = _r(float(ll_t.mean()), 4)
        info["log_loss_rise_explained"] = _r(max(0.0, explained) / base, 4)
        info["log_loss_p_value"] = _r(p if math.isfinite(p) else 1.0, 3)

    # -- words ----------------------------------------------------------------
    def _words(self, ctx, drifted, dom, aligned, est, ref_name, is_image, acc_info):
        what = "images" if is_image else "features"
        phrases = []
        for d in drifted[:3]:
            if is_image:
                lo, hi = _WORDS[d["property"]]
                direction = hi if (d["median_test"] or 0) > (d["median_reference"] or 0) else lo
                rel = d.get("change_relative")
                phrases.append(f"{direction} ({d['property']} {rel:+.0%})" if rel is not None and abs(rel) < 100 else f"{direction}")
            else:
                phrases.append(f"{d['property']} (KS {d['ks']:.2f})")
        after = ""
        if aligned:
            after = " after undoing the preprocessing mismatch"
        if phrases:
            lead = f"Test {what} are {', '.join(phrases)} compared with {ref_name} {what}{after}" if is_image else (
                f"Test {what} drift from {ref_name} {what} in {', '.join(phrases)}{after}"
            )
        else:
            lead = f"Test {what} come from a different distribution than {ref_name} {what}{after}"
        if dom is not None and dom["auc"] >= 0.6:
            lead += f"; a classifier tells them apart (AUC {dom['auc']:.2f})"
        if acc_info.get("accuracy_drop_explained"):
            lead += f", costing about {100 * acc_info['accuracy_drop_explained']:.0f} accuracy points"
        remedies = [_REMEDY[d["property"]] for d in drifted[:3] if d["property"] in _REMEDY]
        if is_image:
            fix = (
                "Make training data cover the test conditions: collect or label data from the test domain, or train with "
                + ("; ".join(dict.fromkeys(remedies)) if remedies else "augmentations that mimic the test images")
                + ". Until then, flag test inputs the domain classifier scores as out-of-distribution."
            )
        else:
            fix = (
                "Check how the drifted features are produced for test data; retrain on data covering the test distribution "
                "or re-weight training examples by the domain classifier's density ratio."
            )
        if est is not None and est.is_mismatch and est.residual_offset is not None and aligned:
            fix = "After fixing the preprocessing mismatch, close the remaining difference: " + fix[0].lower() + fix[1:]
        return lead, fix

    def _artifacts(self, ctx, drift, ref_name, is_image, aligned) -> None:
        if not is_image:
            return
        ref_sum = split_summary(ctx, ref_name)
        tst_sum, _ = aligned_summary(ctx, "test")
        hists = {}
        for p in PROPERTIES:
            a, b = ref_sum.prop(p), tst_sum.prop(p)
            both = np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)]])
            if not len(both):
                continue
            lo, hi = float(both.min()), float(both.max())
            if hi <= lo:
                hi = lo + 1e-9
            ca, edges = np.histogram(a[np.isfinite(a)], bins=20, range=(lo, hi))
            cb, _ = np.histogram(b[np.isfinite(b)], bins=20, range=(lo, hi))
            hists[p] = {"bin_edges": edges.tolist(), ref_name: ca.tolist(), "test": cb.tolist()}
        ctx.add_artifact(self.name, "properties", hists)  # the HTML report's "input properties" plot
        ctx.add_artifact(self.name, "aligned", bool(aligned))
