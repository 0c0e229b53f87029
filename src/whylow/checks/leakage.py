"""``train-test-leakage``: evaluation examples that also appear (exactly or nearly) in the training data.

Method
------
Every split is read once, in chunks (``x`` may be a memmap), and each row
yields two things:

* a 64-bit *fingerprint*: the row's bytes as 64-bit words, multiplied by
  fixed random odd constants and summed modulo 2^64, then mixed. Equal rows
  have equal fingerprints; candidate matches are confirmed by comparing the
  rows themselves, so a fingerprint collision can never produce a false
  duplicate. Splits stored in different dtypes are compared as float64.
* a *compact feature vector* (`compact_features`): each channel area-averaged
  to at most 8×8 pixels (a linear map: ``A x Bᵀ`` with block-averaging
  matrices), flattened.

Near duplicates of images are found in an embedding built from the compact
features: each row centred and scaled to unit length (so a global
brightness/contrast change or small pixel noise barely moves it), then
projected on the top principal components of the training rows (32
components when there are more than 64 features). Tabular features are
standardised with the training mean and standard deviation instead.
For every evaluation row the nearest training row within the threshold is
found by blocked matrix products (`nearest_neighbours`:
``argmin_b |a - b|² = argmax_b (a·b - ½|b|²)``, one product of rows augmented
with ``1`` and ``-½|b|²``), restricted to the training rows whose first
principal coordinate lies within the threshold of the query block's
(a pair closer than the threshold must be that close along every axis), so
far fewer than all pairs are compared; memory is bounded by one block.

The distance threshold is calibrated on the training split itself: the
nearest-neighbour distance of (up to 2,000) training rows to the other
training rows is the distribution of "naturally similar" pairs; the
threshold is ``near_factor`` (0.5 for images, 0.1 for tabular data) times
its ``calibration_quantile`` (1%) quantile, with exact repeats left out of
the calibration. A pair closer than that is much closer than the closest
natural pairs. The fraction ``r0`` of calibration rows below the threshold
is the rate at which natural pairs would be flagged.

Judgement
---------
Per evaluation split (val, test): ``n_dup`` exact plus near duplicates out
of ``n``. A one-sided binomial test against ``max(r0, 0.001)`` gives the
significance. Warning: ``p < alpha`` and ``n_dup / n >= min_fraction``.
Critical: the duplicated fraction is at least ``critical_fraction``, or the
accuracy on all evaluation rows exceeds the accuracy on the non-duplicated
rows by ``critical_inflation`` or more (the reported metric is inflated).
Evidence: counts, fractions, example index pairs with their distances,
accuracy on all rows, on the duplicated and the non-duplicated rows, and
how often duplicated pairs carry the same label.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from whylow.checks import Check, register
from whylow.context import Context
from whylow.inputs.prepare import SplitData
from whylow.report.finding import Finding, flagged_example

__all__ = ["LeakageCheck", "compact_features", "row_fingerprints", "find_exact_matches", "nearest_neighbours", "scan_split"]

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_CHUNK = 4096
_MAX_SIDE = 8


def _hash_constants(n_words: int) -> np.ndarray:
    rng = np.random.default_rng(0x5EED)
    return rng.integers(0, 2**63, size=n_words, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _fingerprint_chunk(block: np.ndarray, as_float: bool) -> np.ndarray:
    flat = np.ascontiguousarray(block.reshape(len(block), -1))
    if as_float:
        flat = flat.astype(np.float64) + 0.0  # -0.0 -> 0.0
    raw = flat.view(np.uint8).reshape(len(flat), -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((len(raw), pad), np.uint8)], axis=1)
    words = raw.view(np.uint64)
    with np.errstate(over="ignore"):
        h = (words * _hash_constants(words.shape[1])).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(31)
        h *= _MIX1
        h ^= h >> np.uint64(29)
        h *= _MIX2
        h ^= h >> np.uint64(32)
    return h


def row_fingerprints(x: np.ndarray, as_float: bool = False, chunk: int = _CHUNK) -> np.ndarray:
    """64-bit fingerprints of the rows of ``x`` (equal rows give equal fingerprints).

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...)
    as_float : bool
        Hash the values as float64 (to compare arrays stored in different dtypes).
    chunk : int
        Rows per block (memory is bounded by one block).

    Returns
    -------
    ndarray of uint64, shape (n_samples,)
    """
    return np.concatenate([_fingerprint_chunk(np.asarray(x[i : i + chunk]), as_float) for i in range(0, len(x), chunk)])


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix averaging contiguous blocks of the input axis (identity when n_in <= n_out)."""
    if n_in <= n_out:
        return np.eye(n_in, dtype=np.float32)
    edges = np.floor(np.linspace(0, n_in, n_out + 1)).astype(int)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    for i in range(n_out):
        m[i, edges[i] : edges[i + 1]] = 1.0 / (edges[i + 1] - edges[i])
    return m


def _features_chunk(block: np.ndarray, layout: str | None) -> np.ndarray:
    if layout in (None, "tabular"):
        return np.asarray(block, dtype=np.float32).reshape(len(block), -1)
    from whylow.inputs.detect import to_nhwc

    img = to_nhwc(np.asarray(block), layout)
    n, h, w, c = img.shape
    a = _area_matrix(h, _MAX_SIDE)
    b = np.kron(_area_matrix(w, _MAX_SIDE).T, np.eye(c, dtype=np.float32))  # averages along W, channel by channel
    rows = np.ascontiguousarray(img, dtype=np.float32).reshape(n * h, w * c) @ b  # (n·H, w'·C)
    small = np.matmul(a, rows.reshape(n, h, -1))  # (n, h', w'·C)
    return small.reshape(n, -1)


def compact_features(x: np.ndarray, layout: str | None, chunk: int = _CHUNK) -> np.ndarray:
    """Small feature vectors: images area-averaged to at most 8×8 per channel; tabular rows as float32.

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...)
        Images in ``layout`` or tabular features.
    layout : {"NHWC", "NCHW", "NHW", "tabular"} or None

    Returns
    -------
    ndarray of float32, shape (n_samples, n_features)
        ``n_features`` is ``min(H, 8) · min(W, 8) · C`` for images.
    """
    return np.concatenate([_features_chunk(x[i : i + chunk], layout) for i in range(0, len(x), chunk)])


def scan_split(split: SplitData, as_float: bool = False) -> dict:
    """Read a split's ``x`` once, in chunks: fingerprints and compact features of every row."""
    fps, feats = [], []
    for i in range(0, split.n, _CHUNK):
        block = np.asarray(split.x[i : i + _CHUNK])
        fps.append(_fingerprint_chunk(block, as_float))
        feats.append(_features_chunk(block, split.layout))
    return {"fingerprints": np.concatenate(fps), "features": np.concatenate(feats)}


def find_exact_matches(fp_ref: np.ndarray, fp_query: np.ndarray, x_ref, x_query, as_float: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of identical rows between a reference and a query array.

    Candidates come from equal fingerprints; each is confirmed by comparing the rows.

    Returns
    -------
    query_idx, ref_idx : ndarray of int64
        For each query row with an identical reference row, one such reference row.
    """
    order = np.argsort(fp_ref, kind="stable")
    sorted_fp = fp_ref[order]
    pos = np.searchsorted(sorted_fp, fp_query)
    pos_c = np.minimum(pos, len(sorted_fp) - 1)
    cand = np.flatnonzero((pos < len(sorted_fp)) & (sorted_fp[pos_c] == fp_query))
    q_idx, r_idx = [], []
    for qi in cand:
        j = pos[qi]
        a = np.asarray(x_query[qi])
        while j < len(sorted_fp) and sorted_fp[j] == fp_query[qi]:
            b = np.asarray(x_ref[order[j]])
            if (np.array_equal(a.astype(np.float64), b.astype(np.float64)) if as_float else np.array_equal(a, b)):
                q_idx.append(qi)
                r_idx.append(order[j])
                break
            j += 1
    return np.asarray(q_idx, dtype=np.int64), np.asarray(r_idx, dtype=np.int64)


def _nn_dense(q_aug: np.ndarray, ref_aug: np.ndarray, exclude: np.ndarray | None, block_r: int) -> tuple[np.ndarray, np.ndarray]:
    """Best score ``q·r - ½|r|²`` and its reference index for each augmented query row."""
    bs = np.full(len(q_aug), -np.inf, dtype=np.float32)
    bi = np.full(len(q_aug), -1, dtype=np.int64)
    for rs in range(0, len(ref_aug), block_r):
        score = q_aug @ ref_aug[rs : rs + block_r].T
        if exclude is not None:
            ex = exclude - rs
            rows = np.flatnonzero((ex >= 0) & (ex < score.shape[1]))
            score[rows, ex[rows]] = -np.inf
        j = score.argmax(axis=1)
        v = score[np.arange(len(q_aug)), j]
        better = v > bs
        bs[better] = v[better]
        bi[better] = j[better] + rs
    return bs, bi


def nearest_neighbours(query: np.ndarray, ref: np.ndarray, exclude_self: np.ndarray | None = None,
                       radius: float | None = None, block_q: int = 1024, block_r: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean nearest reference row of every query row, by blocked matrix products.

    ``argmin_r |q - r|² = argmax_r (q·r - ½|r|²)``: one product of the rows
    augmented with ``1`` and ``-½|r|²``, block by block (memory is bounded by one
    block), then the winners' distances are recomputed exactly.

    With ``radius``, only neighbours within ``radius`` are wanted: queries and
    references are sorted by their first coordinate, and each block of 256
    queries is compared only with the references whose first coordinate lies
    within ``radius`` of the block's range (any closer pair must, since
    ``|q_0 - r_0| <= |q - r|``). Put the direction of largest spread first (a
    principal-component rotation) and the work drops far below all pairs.

    Parameters
    ----------
    query : ndarray of shape (n_query, d)
    ref : ndarray of shape (n_ref, d)
    exclude_self : ndarray of shape (n_query,), optional
        Reference index each query must not match (itself), or -1.
    radius : float, optional
        Search radius; queries without a reference that close get distance inf and index -1.

    Returns
    -------
    distance : ndarray of float32, shape (n_query,)
    index : ndarray of int64, shape (n_query,)
    """
    query = np.asarray(query, dtype=np.float32)
    ref = np.asarray(ref, dtype=np.float32)
    ref_aug = np.ascontiguousarray(np.hstack([ref, -0.5 * np.einsum("ij,ij->i", ref, ref)[:, None]]))
    q_aug = np.ascontiguousarray(np.hstack([query, np.ones((len(query), 1), np.float32)]))
    best_s = np.full(len(query), -np.inf, dtype=np.float32)
    best_i = np.full(len(query), -1, dtype=np.int64)
    if radius is None:
        for qs in range(0, len(query), block_q):
            ex = None if exclude_self is None else exclude_self[qs : qs + block_q]
            best_s[qs : qs + block_q], best_i[qs : qs + block_q] = _nn_dense(q_aug[qs : qs + block_q], ref_aug, ex, block_r)
    elif len(ref):
        r_order = np.argsort(ref[:, 0], kind="stable")
        r_key = ref[r_order, 0]
        ref_sorted = ref_aug[r_order]
        q_order = np.argsort(query[:, 0], kind="stable")
        for qs in range(0, len(query), 256):
            qi = q_order[qs : qs + 256]
            lo = np.searchsorted(r_key, query[qi, 0].min() - radius, side="left")
            hi = np.searchsorted(r_key, query[qi, 0].max() + radius, side="right")
            if hi <= lo:
                continue
            ex = None
            if exclude_self is not None:
                pos = np.empty(len(ref), dtype=np.int64)
                pos[r_order] = np.arange(len(ref))
                ex = np.where(exclude_self[qi] >= 0, pos[np.maximum(exclude_self[qi], 0)] - lo, -1)
                ex[(ex < 0) | (ex >= hi - lo)] = -(10**12)
            bs, bi = _nn_dense(q_aug[qi], ref_sorted[lo:hi], ex, block_r)
            found = bi >= 0
            best_s[qi[found]] = bs[found]
            best_i[qi[found]] = r_order[lo + bi[found]]
    dist = np.full(len(query), np.inf, dtype=np.float32)
    ok = best_i >= 0
    diff = query[ok] - ref[best_i[ok]]
    dist[ok] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    if radius is not None:
        far = dist > radius
        dist[far], best_i[far] = np.inf, -1
    return dist, best_i


class _Embedder:
    """Maps compact features to the near-duplicate embedding, fitted on the training rows."""

    def __init__(self, train_features: np.ndarray, is_image: bool, seed: int, n_components: int = 32, max_fit: int = 5000):
        self.is_image = is_image
        f = self._normalise_rows(train_features) if is_image else train_features.astype(np.float32)
        if not is_image:
            self.mean = f.mean(axis=0)
            sd = f.std(axis=0)
            self.std = np.where(sd > 0, sd, 1.0).astype(np.float32)
            f = (f - self.mean) / self.std
        # rotate to principal axes (largest spread first, which the radius search sorts on);
        # keep all axes up to 64 features, the top n_components beyond
        rng = np.random.default_rng(seed)
        sub = f[rng.choice(len(f), size=min(max_fit, len(f)), replace=False)]
        self.center = sub.mean(axis=0)
        centred = (sub - self.center).astype(np.float64)
        _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending variance
        keep = f.shape[1] if f.shape[1] <= 64 else n_components
        self.proj = np.ascontiguousarray(vecs[:, ::-1][:, :keep], dtype=np.float32)

    @staticmethod
    def _normalise_rows(f: np.ndarray) -> np.ndarray:
        f = f.astype(np.float32) - f.mean(axis=1, keepdims=True, dtype=np.float32)
        norm = np.linalg.norm(f, axis=1, keepdims=True)
        return np.where(norm > 1e-6, f / np.maximum(norm, 1e-12), 0.0).astype(np.float32)

    def valid(self, features: np.ndarray) -> np.ndarray:
        """Rows usable for near matching (constant images are not)."""
        if not self.is_image:
            return np.ones(len(features), dtype=bool)
        return np.ptp(features, axis=1) > 1e-6

    def __call__(self, features: np.ndarray) -> np.ndarray:
        f = self._normalise_rows(features) if self.is_image else (features.astype(np.float32) - self.mean) / self.std
        f = (f - self.center) @ self.proj
        return np.ascontiguousarray(f, dtype=np.float32)


@register
class LeakageCheck(Check):
    """Evaluation examples duplicated (exactly or nearly) from the training split."""

    name = "train-test-leakage"
    codes = ("train-test-leakage",)
    requires = ("train.x", "test.x|val.x")

    #: Significance level of the binomial test against the natural near-pair rate.
    alpha = 0.01
    #: Duplicated fraction of an evaluation split from which a warning is raised.
    min_fraction = 0.01
    #: Duplicated fraction that makes the finding critical.
    critical_fraction = 0.10
    #: Accuracy inflation (all rows minus non-duplicated rows) that makes the finding critical.
    critical_inflation = 0.03
    #: Quantile of the within-train nearest-neighbour distances the threshold is based on.
    calibration_quantile = 0.01
    #: Threshold = factor × that quantile, for images.
    near_factor = 0.5
    #: Threshold = factor × that quantile, for tabular features (stricter).
    tabular_near_factor = 0.1
    #: Training rows used to calibrate the threshold.
    calibration_rows = 2000

    def run(self, ctx: Context) -> list[Finding]:
        train = ctx.split("train")
        evals = [s for s in (ctx.split("val"), ctx.split("test")) if s is not None and s.x is not None]
        evals = [s for s in evals if s.x.shape[1:] == train.x.shape[1:] and s.layout == train.layout]
        if not evals:
            return []
        dtype_differs = any(s.x.dtype != train.x.dtype for s in evals)
        tr_scan = ctx.cached(f"scan:train:{dtype_differs}", lambda: scan_split(train, as_float=dtype_differs))
        is_image = train.is_image
        embed = _Embedder(tr_scan["features"], is_image, ctx.seed)
        tr_emb = embed(tr_scan["features"])
        tr_valid = embed.valid(tr_scan["features"])
        threshold, calib = self._calibrate(ctx, tr_emb, tr_valid, tr_scan["fingerprints"], is_image)
        results = []
        for s in evals:
            scan = ctx.cached(f"scan:{s.name}:{dtype_differs}", lambda s=s: scan_split(s, as_float=dtype_differs))
            results.append(self._measure(ctx, s, scan, train, tr_scan, embed, tr_emb, tr_valid, threshold, dtype_differs))
        ctx.add_artifact(self.name, "calibration", {**calib, "threshold": threshold})
        return self._judge(ctx, results, threshold, calib, is_image)

    # -- measurement ---------------------------------------------------------
    def _calibrate(self, ctx, tr_emb, tr_valid, tr_fp, is_image) -> tuple[float, dict]:
        rng = np.random.default_rng(ctx.seed)
        cand = np.flatnonzero(tr_valid)
        m = min(int(self.threshold(ctx, "calibration_rows")), len(cand))
        if m < 10:
            return 0.0, {"calibration_rows": int(m), "note": "too few training rows to calibrate; exact duplicates only"}
        q_idx = np.sort(rng.choice(cand, size=m, replace=False))
        d, j = nearest_neighbours(tr_emb[q_idx], tr_emb[cand], exclude_self=np.searchsorted(cand, q_idx))
        natural = d[tr_fp[q_idx] != tr_fp[cand[j]]]  # exact repeats inside train are not "natural" pairs
        quant = float(self.threshold(ctx, "calibration_quantile"))
        factor = float(self.threshold(ctx, "near_factor" if is_image else "tabular_near_factor"))
        if len(natural) < 10:
            return 0.0, {"calibration_rows": int(m), "note": "training rows are mostly repeats; exact duplicates only"}
        qv = float(np.quantile(natural, quant))
        threshold = factor * qv
        calib = {
            "calibration_rows": int(m),
            "within_train_nn_distance": {
                "q01": round(float(np.quantile(natural, 0.01)), 5),
                "q05": round(float(np.quantile(natural, 0.05)), 5),
                "median": round(float(np.median(natural)), 5),
            },
            "natural_rate_below_threshold": float(np.mean(natural < threshold)),
            "rule": f"{factor:g} × the {quant:g} quantile of within-train nearest-neighbour distances",
        }
        return threshold, calib

    def _measure(self, ctx, s: SplitData, scan, train, tr_scan, embed, tr_emb, tr_valid, threshold, as_float) -> dict:
        q_exact, r_exact = find_exact_matches(tr_scan["fingerprints"], scan["fingerprints"], train.x, s.x, as_float)
        dist = np.full(s.n, np.inf, dtype=np.float32)
        nn = np.full(s.n, -1, dtype=np.int64)
        valid = embed.valid(scan["features"])
        if threshold > 0 and valid.any():
            ref_idx = np.flatnonzero(tr_valid)
            d, j = nearest_neighbours(embed(scan["features"][valid]), tr_emb[ref_idx], radius=threshold)
            dist[valid], nn[valid] = d, np.where(j >= 0, ref_idx[np.maximum(j, 0)], -1)
        exact = np.zeros(s.n, dtype=bool)
        exact[q_exact] = True
        nn[q_exact] = r_exact
        dist[q_exact] = 0.0
        near = (~exact) & (dist <= threshold)
        dup = exact | near
        res = {
            "split": s.name,
            "n": int(s.n),
            "n_exact": int(exact.sum()),
            "n_near": int(near.sum()),
            "n_duplicated": int(dup.sum()),
            "fraction": float(dup.mean()),
            "dup": dup,
        }
        order = np.flatnonzero(dup)
        order = order[np.argsort(dist[order], kind="stable")]
        res["all_flagged"] = [  # every duplicated example, for --examples-csv (not in the evidence)
            flagged_example(s, i, score=dist[i], note=f"{'exact' if exact[i] else 'near'} copy of train #{int(nn[i])}")
            for i in order
        ]
        order = order[:10]
        res["examples"] = [
            {f"{s.name}_index": int(i), "train_index": int(nn[i]), "distance": round(float(dist[i]), 5), "kind": "exact" if exact[i] else "near"}
            for i in order
        ]
        if s.y is not None and train.y is not None and dup.any():
            res["same_label_fraction"] = round(float(np.mean(s.y[dup] == train.y[nn[dup]])), 4)
        if s.y is not None and s.probs is not None:
            correct = s.y_pred == s.y
            res["accuracy_all"] = float(correct.mean())
            if (~dup).any():
                res["accuracy_non_duplicated"] = float(correct[~dup].mean())
            if dup.any():
                res["accuracy_duplicated"] = float(correct[dup].mean())
                if (~dup).any():
                    n1, n0 = dup.sum(), (~dup).sum()
                    p1, p0 = correct[dup].mean(), correct[~dup].mean()
                    pooled = correct.mean()
                    se = np.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n1 + 1 / n0))
                    res["accuracy_gap_p_value"] = float(stats.norm.sf((p1 - p0) / se))
        return res

    # -- judgement -------------------------------------------------------------
    def _judge(self, ctx, results, threshold, calib, is_image) -> list[Finding]:
        alpha = self.threshold(ctx, "alpha")
        r0 = max(calib.get("natural_rate_below_threshold", 0.0), 1e-3)
        worst, worst_rank = None, -1
        for r in results:
            n_dup = r["n_duplicated"]
            r["p_value"] = float(stats.binom.sf(n_dup - 1, r["n"], r0)) if n_dup else 1.0
            infl = r.get("accuracy_all", 0.0) - r.get("accuracy_non_duplicated", r.get("accuracy_all", 0.0))
            r["accuracy_inflation"] = round(float(infl), 4)
            if n_dup == 0:
                r["severity"] = None
            elif r["p_value"] < alpha and r["fraction"] >= self.threshold(ctx, "min_fraction"):
                critical = r["fraction"] >= self.threshold(ctx, "critical_fraction") or infl >= self.threshold(ctx, "critical_inflation")
                r["severity"] = "critical" if critical else "warning"
            else:
                r["severity"] = "info"
            rank = {None: -1, "info": 0, "warning": 1, "critical": 2}[r["severity"]]
            if rank > worst_rank or (rank == worst_rank and worst is not None and r["fraction"] > worst["fraction"]):
                worst, worst_rank = r, rank
        if worst is None or worst["severity"] is None:
            return []
        evidence = {
            "representation": "8×8 area-averaged, per-image normalised, PCA" if is_image else "standardised features",
            "near_threshold": round(float(threshold), 6),
            "calibration": calib,
            "splits": [{k: v for k, v in r.items() if k not in ("dup", "all_flagged")} for r in results],
        }
        r = worst
        ctx.add_artifact(self.name, "examples:duplicated in training", [  # thumbnails in the HTML report
            {"split": r["split"], "index": e[f"{r['split']}_index"], "caption": f"{e['kind']} copy of train #{e['train_index']}"}
            for e in r.get("examples", [])
        ])
        ctx.add_artifact(self.name, "examples_total:duplicated in training", len(r.get("all_flagged", [])))
        kinds = f"{r['n_exact']} exact, {r['n_near']} near"
        title = f"{r['n_duplicated']} of {r['n']} {r['split']} examples ({r['fraction']:.1%}) duplicate training examples ({kinds})"
        if "accuracy_non_duplicated" in r and r["n_duplicated"]:
            title += f"; accuracy {r['accuracy_all']:.3f} on all vs {r['accuracy_non_duplicated']:.3f} without them"
        confidence = float(min(0.99, 1.0 - r["p_value"])) if r["severity"] != "info" else 0.5
        fix = (
            f"Remove the duplicated examples from the {r['split']} split (or from training) and re-measure; "
            "split by source (patient, session, scene, near-duplicate groups) rather than by image, and de-duplicate "
            "before splitting. The indices are in the evidence."
        )
        return [Finding("train-test-leakage", r["severity"], confidence, title, evidence, fix, None, examples=r.get("all_flagged", []))]
