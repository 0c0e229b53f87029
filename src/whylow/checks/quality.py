"""``data-quality``: corrupt, blank, constant or duplicate inputs, NaN/inf values, unusable labels.

Everything is counted per split from the streaming input summaries
(`whylow.summaries`), so no extra pass over the images is made:

* **Non-finite values**: images (rows) with NaN or ±inf values, with the
  count of values and the first indices. A model turns them into NaN outputs.
* **Constant images**: images whose grey level has range 0 (blank black,
  white or any single value); rows of tabular data that are all equal.
* **Corrupt files**: files of an image folder that could not be decoded
  (``SplitData.corrupt_files``), as a fraction of the folder.
* **Exact duplicates**: identical inputs within a split, found by a 128-bit
  hash of the raw bytes and confirmed byte by byte. Duplicates carrying
  *different labels* are contradictory; duplicates with the same label only
  reweight the data.
* **Unusable labels**: a split whose labels are all one class; test classes
  that never occur in the training labels (the model cannot have learnt
  them).

Severity, per kind, by the affected fraction of the split: critical at
``critical_fraction`` (5 %) or more; warning at ``warn_fraction`` (0.5 %) or
more, and for any non-finite value or corrupt file; otherwise info.
Same-label duplicates warn only at ``duplicate_warn_fraction`` (10 %).
Constant *test* images with labels and predictions are judged by what they
cost instead: a warning when leaving them out raises test accuracy by
``min_cost`` (2 points), critical from ``critical_drop`` (5 points); a few
uniform crops of sky that cost a point are info.
When affected test examples have labels and predictions, the accuracy on
the test split without them is reported as ``verified`` (the fix: drop or
repair them), and the accuracy they cost as ``explains``, of the test
shortfall against the validation split when it is labelled.
"""

from __future__ import annotations

import numpy as np

from whylow import metrics
from whylow.checks import Check, register
from whylow.checks.fit import validation_shortfall
from whylow.report.finding import Finding, flagged_example, make_explains
from whylow.summaries import row_hashes, split_summary

__all__ = ["DataQualityCheck", "duplicate_groups"]

_EXAMPLES = 5


def duplicate_groups(x, hashes: np.ndarray, rows: np.ndarray | None = None) -> list[np.ndarray]:
    """Groups of row indices whose inputs are byte-identical (each group sorted, at least 2 rows).

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...)
        The inputs (a memmap is fine: only candidate rows are read).
    hashes : ndarray of uint64, shape (n_samples, 2)
        Per-row hashes of the raw bytes.
    rows : ndarray of int, optional
        Only these rows are considered (default: all).
    """
    if rows is not None:
        return [rows[g] for g in _groups_among(lambda idx: x[rows[idx]], hashes[rows])]
    return _groups_among(lambda idx: x[idx], hashes)


def _groups_among(read, hashes: np.ndarray) -> list[np.ndarray]:
    if len(hashes) < 2:
        return []
    _, inverse, counts = np.unique(hashes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    multi = np.flatnonzero(counts > 1)
    if not len(multi):
        return []
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    groups = []
    for g in multi:
        rows = order[starts[g] : starts[g + 1]]
        block = np.asarray(read(rows)).reshape(len(rows), -1)
        first = block[0]
        same = np.all((block == first) | (np.isnan(block) & np.isnan(first)) if block.dtype.kind == "f" else block == first, axis=1)
        if same.sum() > 1:
            groups.append(np.sort(rows[same]))
        rest = rows[~same]
        if len(rest) > 1:  # a hash collision: split the rest by exact content
            _, inv2 = np.unique(np.asarray(read(rest)).reshape(len(rest), -1), axis=0, return_inverse=True)
            for k in np.unique(inv2):
                sub = rest[inv2.ravel() == k]
                if len(sub) > 1:
                    groups.append(np.sort(sub))
    return groups


@register
class DataQualityCheck(Check):
    """Broken inputs and labels within a split."""

    name = "data-quality"
    codes = ("data-quality",)
    requires = ("test.x|train.x|val.x|test.y|train.y|val.y",)

    warn_fraction = 0.005
    critical_fraction = 0.05
    duplicate_warn_fraction = 0.10
    #: Constant test images: accuracy they must cost for a warning (2 points), for critical (5 points).
    min_cost = 0.02
    critical_drop = 0.05
    min_single_class = 20

    def run(self, ctx) -> list[Finding]:
        per_kind: dict[str, dict] = {}
        for name in ("train", "val", "test"):
            s = ctx.split(name)
            if s is None:
                continue
            if s.corrupt_files:
                total = s.n + len(s.corrupt_files)
                per_kind.setdefault("corrupt", {})[name] = {
                    "count": len(s.corrupt_files),
                    "fraction": round(len(s.corrupt_files) / total, 4),
                    "examples": [{"file": f, "reason": r} for f, r in s.corrupt_files[:_EXAMPLES]],
                    "all_flagged": [flagged_example(s, None, path=f, note=f"unreadable: {r}") for f, r in s.corrupt_files],
                }
            if s.x is not None:
                self._inputs(ctx, s, per_kind)
        self._labels(ctx, per_kind)
        return [self._finding(ctx, kind, by_split) for kind, by_split in per_kind.items()]

    # -- measurements -----------------------------------------------------------
    def _inputs(self, ctx, s, per_kind) -> None:
        summary = split_summary(ctx, s.name)
        if summary is None or summary.n == 0:
            return
        if summary.kind == "image":
            nonfinite = summary.prop("nonfinite")
            constant = np.flatnonzero((summary.prop("gray_range") == 0) & (nonfinite == 0))
            hashes = summary.prop("hash")
        else:
            x = np.asarray(s.x)
            xf = x.astype(np.float64, copy=False)
            nonfinite = (~np.isfinite(xf)).sum(axis=1) if x.dtype.kind == "f" else np.zeros(len(x), dtype=np.int64)
            with np.errstate(invalid="ignore"):
                constant = np.flatnonzero((np.ptp(xf, axis=1) == 0) & (nonfinite == 0)) if x.shape[1] > 1 else np.zeros(0, dtype=np.int64)
            hashes = row_hashes(x)
        bad = np.flatnonzero(nonfinite > 0)
        if len(bad):
            per_kind.setdefault("nonfinite", {})[s.name] = {
                "count": int(len(bad)),
                "values": int(nonfinite.sum()),
                "fraction": round(len(bad) / s.n, 4),
                "examples": bad[:_EXAMPLES].tolist(),
                "all_flagged": [flagged_example(s, i, note=f"{int(nonfinite[i])} NaN/inf values") for i in bad],
            }
        if len(constant):
            values = self._constant_values(s, constant[:_EXAMPLES])
            per_kind.setdefault("constant", {})[s.name] = {
                "count": int(len(constant)),
                "fraction": round(len(constant) / s.n, 4),
                "examples": constant[:_EXAMPLES].tolist(),
                "values": values,
                "all_flagged": [flagged_example(s, i, note="blank or constant input") for i in constant],
            }
        usable = np.ones(s.n, dtype=bool)
        usable[bad] = False
        usable[constant] = False  # reported above; not counted again as duplicates of each other
        groups = duplicate_groups(s.x, hashes, np.flatnonzero(usable))
        if groups:
            conflicting, same = [], []
            for g in groups:
                (conflicting if s.y is not None and len(np.unique(s.y[g])) > 1 else same).append(g)
            if conflicting:
                n_rows = int(sum(len(g) for g in conflicting))
                per_kind.setdefault("conflicting-duplicates", {})[s.name] = {
                    "groups": len(conflicting),
                    "count": n_rows,
                    "fraction": round(n_rows / s.n, 4),
                    "examples": [{"rows": g[:4].tolist(), "labels": [ctx.class_names[int(v)] for v in s.y[g[:4]]]} for g in conflicting[:_EXAMPLES]],
                    "all_flagged": [flagged_example(s, i, given=ctx.class_names[int(s.y[i])], note=f"identical to rows {g.tolist()} with other labels")
                                    for g in conflicting for i in g],
                }
            if same:
                extra = int(sum(len(g) - 1 for g in same))
                per_kind.setdefault("duplicates", {})[s.name] = {
                    "groups": len(same),
                    "count": extra,
                    "fraction": round(extra / s.n, 4),
                    "examples": [g[:4].tolist() for g in same[:_EXAMPLES]],
                }

    def _constant_values(self, s, rows) -> list:
        vals = []
        for r in rows:
            v = np.asarray(s.x[int(r)]).ravel()
            vals.append(float(v[0]) if v.size else None)
        return vals

    def _labels(self, ctx, per_kind) -> None:
        k = ctx.n_classes
        for name in ("train", "val", "test"):
            s = ctx.split(name)
            if s is None or s.y is None or s.n < self.threshold(ctx, "min_single_class") or k < 2:
                continue
            present = np.unique(s.y)
            if len(present) == 1:
                per_kind.setdefault("single-class", {})[name] = {
                    "count": int(s.n),
                    "fraction": 1.0,
                    "class": ctx.class_names[int(present[0])],
                }
        train, test = ctx.split("train"), ctx.test
        if train is not None and train.y is not None and test.y is not None:
            tr = np.bincount(train.y, minlength=k)
            te = np.bincount(test.y, minlength=k)
            unseen = np.flatnonzero((tr == 0) & (te > 0))
            if len(unseen):
                n = int(te[unseen].sum())
                per_kind.setdefault("unseen-classes", {})["test"] = {
                    "count": n,
                    "fraction": round(n / test.n, 4),
                    "classes": [ctx.class_names[int(c)] for c in unseen[:20]],
                }

    # -- judgement ------------------------------------------------------------
    def _finding(self, ctx, kind: str, by_split: dict) -> Finding:
        worst = max(v["fraction"] for v in by_split.values())
        crit, warn = self.threshold(ctx, "critical_fraction"), self.threshold(ctx, "warn_fraction")
        if kind == "duplicates":
            severity = "warning" if worst >= self.threshold(ctx, "duplicate_warn_fraction") else "info"
        elif kind in ("nonfinite", "corrupt", "unseen-classes", "single-class"):
            severity = "critical" if worst >= crit and kind != "single-class" else "warning"
        else:
            severity = "critical" if worst >= crit else "warning" if worst >= warn else "info"
        where = ", ".join(f"{v['count']} in {name} ({v['fraction']:.1%})" for name, v in by_split.items())
        titles = {
            "nonfinite": f"Inputs contain NaN or infinite values: {where}",
            "constant": f"Blank or constant inputs (a single value everywhere): {where}",
            "corrupt": f"Image files could not be read and were left out: {where}",
            "conflicting-duplicates": f"Identical inputs carry different labels: {where}",
            "duplicates": f"Exact duplicate inputs within a split: {where} extra copies",
            "single-class": f"Every label of the {', '.join(by_split)} split is the same class, so its metrics say nothing about the others",
            "unseen-classes": "Test labels include classes never seen in training "
            f"({', '.join(by_split.get('test', {}).get('classes', [])[:5])}): {where}",
        }
        fixes = {
            "nonfinite": "Find where NaN/inf values enter the pipeline (failed decoding, division by a zero std, bad sensors) and drop or repair those examples before training and evaluation.",
            "constant": "Remove blank images (failed captures or padding) or repair their source; they carry no information yet are labelled and scored.",
            "corrupt": "Re-export or remove the unreadable files; whylow skipped them, but a training pipeline may crash or silently skip them too.",
            "conflicting-duplicates": "Resolve the contradictory labels of identical inputs (relabel or drop them); no model can fit both labels.",
            "duplicates": "De-duplicate the split, or make sure duplicates are intended; they over-weight some examples.",
            "single-class": "Evaluate on data that covers every class, or report per-class metrics for what is there.",
            "unseen-classes": "Add training examples of those classes or drop them from the evaluation; the model cannot predict a class it never saw.",
        }
        verified = None
        examples = [e for v in by_split.values() for e in v.pop("all_flagged", [])]
        evidence = {"kind": kind, "splits": by_split}
        test = ctx.test
        if kind in ("nonfinite", "constant", "conflicting-duplicates") and "test" in by_split and test.y is not None and test.probs is not None:
            affected = self._affected_test_rows(ctx, kind)
            if affected is not None and 0 < len(affected) < test.n:
                keep = np.ones(test.n, dtype=bool)
                keep[affected] = False
                before = metrics.accuracy(test.y, test.probs)
                after = metrics.accuracy(test.y[keep], test.probs[keep])
                evidence["accuracy_without_affected_test_examples"] = round(float(after), 4)
                evidence["accuracy_on_affected_test_examples"] = round(float(metrics.accuracy(test.y[~keep], test.probs[~keep])), 4)
                verified = {"metric": "accuracy", "before": float(before), "after": float(after)}
        if kind == "constant" and verified is not None:
            severity = self._constant_severity(ctx, by_split, verified["after"] - verified["before"])
        confidence = 0.95 if kind in ("nonfinite", "constant", "corrupt", "conflicting-duplicates", "single-class") else 0.8
        explains = None
        if verified is not None:  # the accuracy the affected test examples cost, of the shortfall against validation
            explains = make_explains("accuracy", verified["after"] - verified["before"], validation_shortfall(ctx), "validation")
        return Finding("data-quality", severity, confidence, titles[kind], evidence=evidence, fix=fixes[kind], verified=verified,
                       explains=explains, examples=examples)

    def _constant_severity(self, ctx, by_split: dict, cost: float) -> str:
        """Constant test images judged by what they cost: critical from ``critical_drop``, a warning from ``min_cost``.

        A few uniform crops (a patch of sky or of black space) are images like any other; they are a reason for low
        predictions only when they cost accuracy. Constant images in training or validation data keep the fraction rule.
        """
        order = ("info", "warning", "critical")
        by_cost = "critical" if cost >= self.threshold(ctx, "critical_drop") else "warning" if cost >= self.threshold(ctx, "min_cost") else "info"
        others = [v["fraction"] for name, v in by_split.items() if name != "test"]
        worst = max(others, default=0.0)
        by_fraction = "critical" if worst >= self.threshold(ctx, "critical_fraction") else "warning" if worst >= self.threshold(ctx, "warn_fraction") else "info"
        return max(by_cost, by_fraction, key=order.index)

    def _affected_test_rows(self, ctx, kind: str) -> np.ndarray | None:
        s = ctx.test
        summary = split_summary(ctx, "test") if s.x is not None else None
        if summary is None or summary.kind != "image":
            return None
        if kind == "nonfinite":
            return np.flatnonzero(summary.prop("nonfinite") > 0)
        if kind == "constant":
            return np.flatnonzero((summary.prop("gray_range") == 0) & (summary.prop("nonfinite") == 0))
        nonfinite = summary.prop("nonfinite")
        usable = np.flatnonzero((nonfinite == 0) & (summary.prop("gray_range") > 0))
        groups = [g for g in duplicate_groups(s.x, summary.prop("hash"), usable) if s.y is not None and len(np.unique(s.y[g])) > 1]
        return np.concatenate(groups) if groups else None
