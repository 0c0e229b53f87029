"""The self-contained HTML report: one file, no network needed to view it.

`render_html` turns a `Report` into a page: the verdict and the ranked
findings first (each with its key number, evidence and fix; verified fixes
show before → after), then the plots a person would rather look at than read,
then the numbers (summary metrics with confidence intervals, per-class table,
the status of every check, the inputs).

Plots come from ``report.artifacts`` (data the checks and the core stored for
them) and are inlined as SVG; thumbnails are inlined as base64 PNG; the CSS
is inline; there is no script at all, and a Content-Security-Policy forbids
any fetch, so the page is the same offline. Each plot is drawn only when its
data is present, and a malformed artifact skips that plot with a note instead
of breaking the page. Every user-supplied string (class names, paths,
titles, evidence) is escaped by Jinja's autoescape; only the SVG produced by
`whylow.report.plots` (whose text matplotlib escapes) is inlined as markup.

Artifacts read (``report.artifacts[group][key]``):

- ``core``: ``confusion_matrix`` (K×K counts, rows true; past 200 classes ``confusion_cells``:
  ``{n_classes, true, predicted, count}`` of the non-zero cells), ``confidence_hist:<split>``
  (``{bin_edges, count_correct, count_wrong}``), ``class_counts:<split>`` (K counts),
  ``thumbnails`` (``{list name: [{png_base64, label, caption}]}``), ``thumbnails_error``.
- any group: ``reliability:<split>`` and ``reliability:<split>:<fix>`` (e.g. ``:scaled``;
  ``{bin_edges, count, mean_confidence, accuracy}``), ``temperature`` or
  ``temperature:<split>`` (float, named in the legend), ``class_counts:<split>``,
  ``estimated_priors:<split>`` (K shares estimated from predictions),
  ``property:<name>`` (``{split: per-image values}`` or ``{"bin_edges": [...], split: counts}``),
  ``properties`` (``{name: that same dict}``), ``examples:<name>``
  (``[{split, index, caption}]``: listed when no thumbnails were made for them),
  ``priors`` (``{"train", "test", "test_source"}`` shares; drawn as estimated test
  priors when ``test_source`` does not say they come from labels),
  ``recall_vs_count`` (``{"counts", "recall", "recall_after_adjustment"}`` per class),
  ``<split>_quantiles`` or ``quantiles:<name>`` (``{"levels": [...], split: quantiles}``),
  ``history``, ``learning_curves``, ``loss_curve`` (per-epoch dicts, merged; non-list entries ignored).
- ``history``: per-epoch lists stored directly in the group are read as well.
"""

from __future__ import annotations

import base64
import binascii
import math
import re

from whylow._version import __version__
from whylow.report.text import explains_text

__all__ = ["render_html"]

_SEVERITY_ORDER = ("critical", "warning", "info")
_PERCENT_METRICS = {"accuracy", "balanced_accuracy", "precision", "recall", "f1", "top5_accuracy", "top_k_accuracy"}
_LOWER_IS_BETTER = {"log_loss", "nll", "brier", "ece", "smooth_ece", "error", "error_rate"}
_METRIC_LABELS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "log_loss": "log-loss",
    "brier": "Brier score",
    "ece": "ECE",
    "mean_confidence": "mean confidence",
    "n_test": "test samples",
}
_BASELINE_FOR = {
    "accuracy": "majority_accuracy",
    "balanced_accuracy": "majority_balanced_accuracy",
    "log_loss": "prior_log_loss",
    "brier": "prior_brier",
}
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ENV = None
_EVIDENCE_SHOWN = 6  # evidence rows shown under a serious finding; the rest fold away


# -- formatting ---------------------------------------------------------------


def _fmt(value, metric: str | None = None) -> str:
    """A number for people: 4 significant digits, percentages for accuracy-like metrics, '—' when missing."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "—"
    if metric in _PERCENT_METRICS:
        return f"{v:.1%}"
    if v == int(v) and abs(v) < 1e15 and metric is None:
        return f"{int(v):,}"
    return f"{v:.4g}"


def _brief(value, budget: int = 240) -> str:
    """A one-line summary of an evidence value (nested dicts and long lists shortened)."""
    if isinstance(value, dict):
        parts, used = [], 0
        for i, (k, v) in enumerate(value.items()):
            part = f"{k}: {_brief(v, budget // 2)}"
            if used + len(part) > budget and parts:
                parts.append(f"… ({len(value) - i} more)")
                break
            parts.append(part)
            used += len(part) + 2
        return "{" + "; ".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        shown = [_brief(v, budget // 4) for v in value[:8]]
        text = ", ".join(shown)
        if len(value) > 8:
            text += f", … ({len(value)} items)"
        return "[" + text + "]" if len(text) <= budget else "[" + text[: budget - 1] + "…]"
    if isinstance(value, float):
        return _fmt(value, "x")
    text = str(value) if value is not None else "—"
    return text if len(text) <= budget else text[: budget - 1] + "…"


def _verified_view(verified) -> dict | None:
    """Before → after of a verified fix, formatted, with the gain in words."""
    if not isinstance(verified, dict) or "before" not in verified or "after" not in verified:
        return None
    metric = str(verified.get("metric", ""))
    try:
        before, after = float(verified["before"]), float(verified["after"])
    except (TypeError, ValueError):
        return {"metric": metric, "before": _brief(verified.get("before")), "after": _brief(verified.get("after")),
                "gain": "", "note": ""}
    gain = ""
    if math.isfinite(before) and math.isfinite(after):
        if metric in _PERCENT_METRICS:
            gain = f"{(after - before) * 100:+.1f} points"
        elif metric in _LOWER_IS_BETTER and before > 0:
            gain = f"{(after - before) / before:+.0%}"
        else:
            gain = f"{after - before:+.4g}"
    return {
        "metric": _METRIC_LABELS.get(metric, metric.replace("_", " ")),
        "before": _fmt(before, metric if metric in _PERCENT_METRICS else "x"),
        "after": _fmt(after, metric if metric in _PERCENT_METRICS else "x"),
        "gain": gain,
        "note": _brief(verified["note"], 300) if verified.get("note") else "",
    }


# -- artifacts ----------------------------------------------------------------


def _groups(report) -> dict[str, dict]:
    arts = getattr(report, "artifacts", None)
    if not isinstance(arts, dict):
        return {}
    return {str(k): v for k, v in arts.items() if isinstance(v, dict)}


def _scan(groups: dict[str, dict], prefix: str) -> list[tuple[str, str, object]]:
    """(group, rest of key, value) for every artifact key starting with ``prefix`` in any group, core first."""
    found = []
    for group in sorted(groups, key=lambda g: (g != "core", g)):
        for key, value in groups[group].items():
            if isinstance(key, str) and key.startswith(prefix):
                found.append((group, key[len(prefix):], value))
    return found


def _split_key(name: str):
    order = ("train", "val", "test")
    base = name.split(":")[0]
    return (order.index(base) if base in order else 3, name)


class _Page:
    """Collects figures and notes while the sections are built; a failing plot becomes a note."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.n_figures = 0

    def figure(self, what: str, fn, *args, **kwargs):
        from markupsafe import Markup

        from whylow.report import plots

        try:
            svg = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a broken artifact never breaks the page
            self.notes.append(f"The {what} plot was skipped: its data is malformed ({type(exc).__name__}: {exc}).")
            return None
        if not svg:
            return None
        self.n_figures += 1
        return Markup(plots.scope_ids(svg, f"wl{self.n_figures}-"))


def _calibration_section(page: _Page, groups: dict) -> dict | None:
    from whylow.report import plots

    curves: dict[str, list[tuple[str, dict]]] = {}
    temperatures: dict[str, float] = {}
    for group, rest, value in _scan(groups, "temperature"):
        try:
            temperatures[rest.lstrip(":") or "*"] = float(value)
        except (TypeError, ValueError):
            continue
    scaled: dict[str, list[tuple[str, dict]]] = {}
    for group, rest, value in _scan(groups, "reliability:"):
        split, _, fix = rest.partition(":")
        if not split:
            continue
        if fix:
            t = temperatures.get(split, temperatures.get("*"))
            if fix == "scaled":
                label = f"temperature-scaled, T={t:.3g}" if t is not None and math.isfinite(t) else "temperature-scaled"
            else:
                label = f"after {fix.replace('_', ' ').replace(':', ' ')}"
            scaled.setdefault(split, []).append((label, value))
        elif split not in curves:
            curves[split] = [("as predicted", value)]
    hists = {rest: value for group, rest, value in _scan(groups, "confidence_hist:") if group == "core" and rest}
    for split, h in hists.items():
        if split in curves or not isinstance(h, dict):
            continue
        try:  # a reliability curve from the core's confidence histogram (bin centres stand in for mean confidence)
            right = [float(v) for v in h["count_correct"]]
            wrong = [float(v) for v in h["count_wrong"]]
            edges = [float(v) for v in h["bin_edges"]]
            count = [a + b for a, b in zip(right, wrong)]
            curves[split] = [("as predicted", {
                "bin_edges": edges,
                "count": count,
                "mean_confidence": [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:])],
                "accuracy": [a / c if c else None for a, c in zip(right, count)],
            })]
        except (KeyError, TypeError, ValueError):
            continue  # confidence_hist_svg below reports the malformed histogram
    for split, extra in scaled.items():
        curves.setdefault(split, [])
        curves[split] = curves[split] + extra
    figures = []
    for split in sorted(curves, key=_split_key):
        svg = page.figure(f"reliability diagram ({split})", plots.reliability_svg, f"{split} split", curves[split])
        if svg:
            figures.append({"svg": svg})
    if hists:
        svg = page.figure("confidence histogram", plots.confidence_hist_svg, hists)
        if svg:
            figures.append({"svg": svg, "caption": "Confidence of correct and wrong predictions, per split.", "wide": True})
    if not figures:
        return None
    return {
        "id": "calibration",
        "title": "Calibration and confidence",
        "lead": "Each point is a bin of predictions with similar confidence: below the diagonal the model is more "
        "confident than it is right (overconfident), above it less (underconfident). The bars under each "
        "diagram count the predictions in each bin.",
        "figures": figures,
    }


def _per_class_section(page: _Page, report, groups: dict) -> dict | None:
    from whylow.report import plots

    rows = [r for r in (report.per_class or []) if isinstance(r, dict)]
    if not rows:
        return None
    figures = []
    svg = page.figure("per-class recall and precision", plots.per_class_svg, rows)
    if svg:
        figures.append({"svg": svg, "wide": len(rows) > 40})
    for group, _, value in _scan(groups, "recall_vs_count"):
        if not isinstance(value, dict):
            continue
        svg = page.figure("recall vs class frequency", plots.recall_vs_count_svg, value.get("counts"), value.get("recall"),
                          value.get("recall_after_adjustment"), "after logit adjustment")
        if svg:
            figures.append({"svg": svg, "caption": "Each point is a class: rare training classes with low test recall "
                            "are the signature of class imbalance; lines show the change after logit adjustment."})
        break
    if not figures:
        return None
    return {
        "id": "per-class",
        "title": "Per-class recall and precision",
        "lead": "Recall: the share of a class's test samples predicted as that class; precision: the share of "
        "predictions of a class that are right; n: test samples of the class. The dotted line is the mean "
        "recall (the balanced accuracy).",
        "figures": figures,
    }


def _class_names(report, n: int) -> list[str]:
    names = (report.inputs or {}).get("class_names") if isinstance(report.inputs, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) < n:
        names = [r.get("class") for r in (report.per_class or []) if isinstance(r, dict)]
    if len(names) < n:
        names = list(range(n))
    return [str(c) for c in names]


def _confusion_cells_section(report, cells: dict | None) -> dict | None:
    """The top-confusions table from the sparse cells kept for many classes (no K×K matrix)."""
    import numpy as np

    try:
        k = int(cells["n_classes"])
        true, pred, count = (np.asarray(cells[key], dtype=np.int64) for key in ("true", "predicted", "count"))
    except (TypeError, KeyError, ValueError):
        return None
    names = _class_names(report, k)
    support = np.bincount(true, weights=count, minlength=k)
    off = np.flatnonzero(true != pred)
    top = off[np.lexsort((off, -count[off]))][:15]
    if not len(top):
        return None
    rows = [
        [names[true[i]], names[pred[i]], _fmt(int(count[i])), _fmt(float(count[i] / support[true[i]]), "recall")]
        for i in top
    ]
    table = {
        "caption": "Most frequent confusions (test split)",
        "columns": ["true class", "predicted as", "count", "share of the true class"],
        "num_from": 2,
        "rows": rows,
    }
    lead = f"With {k} classes a heatmap is unreadable; the table lists the largest off-diagonal cells."
    return {"id": "confusion", "title": "Confusions", "lead": lead, "figures": [], "table": table}


def _confusion_section(page: _Page, report, groups: dict) -> dict | None:
    from whylow.report import plots

    matrix = groups.get("core", {}).get("confusion_matrix")
    if matrix is None:
        return _confusion_cells_section(report, groups.get("core", {}).get("confusion_cells"))
    try:
        cm = plots.confusion_array(matrix)
    except (ValueError, TypeError) as exc:
        page.notes.append(f"The confusion matrix was skipped: its data is malformed ({exc}).")
        return None
    names = _class_names(report, cm.shape[0])
    figures = []
    svg = page.figure("confusion matrix", plots.confusion_svg, cm, names)
    if svg:
        figures.append({"svg": svg, "wide": cm.shape[0] > 20})
    top = plots.top_confusions(cm, names, n=15)
    table = None
    if top:
        table = {
            "caption": "Most frequent confusions (test split)",
            "columns": ["true class", "predicted as", "count", "share of the true class"],
            "num_from": 2,
            "rows": [[r["true"], r["predicted"], _fmt(r["count"]), _fmt(r["share"], "recall")] for r in top],
        }
    if not figures and not table:
        return None
    lead = "Rows are true classes, columns predicted classes, each row normalised to 1: the diagonal is recall."
    if cm.shape[0] > 200:
        lead = f"With {cm.shape[0]} classes a heatmap is unreadable; the table lists the largest off-diagonal cells."
    return {"id": "confusion", "title": "Confusions", "lead": lead, "figures": figures, "table": table}


def _priors_section(page: _Page, report, groups: dict) -> dict | None:
    from whylow.report import plots

    counts: dict[str, object] = {}
    for group, split, value in _scan(groups, "class_counts:"):
        if split and split not in counts:
            counts[split] = value
    ordered = {s: counts[s] for s in sorted(counts, key=_split_key)}
    for group, split, value in _scan(groups, "estimated_priors:"):
        if split:
            ordered[f"{split} (estimated)"] = value
    for group, _, value in _scan(groups, "priors"):
        # {"classes", "train": shares, "test": shares, "test_source": how}: shares estimated from predictions
        # when the test labels are absent; with labels they repeat the class counts already shown
        if isinstance(value, dict) and "label" not in str(value.get("test_source", "label")).lower():
            if isinstance(value.get("test"), (list, tuple)):
                ordered.setdefault(f"test (estimated, {value['test_source']})", value["test"])
    if not ordered:
        return None
    lengths = {len(v) for v in ordered.values() if isinstance(v, (list, tuple))}
    n_classes = max(lengths) if lengths else 0
    if n_classes > 40 and len(ordered) < 2:
        return None  # one split of many classes: the per-class table shows the support
    names = _class_names(report, n_classes)
    svg = page.figure("class priors", plots.priors_svg, ordered, names)
    table = None
    try:
        table = _shifted_classes(ordered, names)
    except (TypeError, ValueError):
        pass  # the plot's note already says the counts are malformed
    if not svg and not table:
        return None
    return {
        "id": "priors",
        "title": "Class priors",
        "lead": "The share of each class in each split; a class much rarer or more common in test than in "
        "training is label shift.",
        "figures": [{"svg": svg, "wide": n_classes > 20}] if svg else [],
        "table": table,
    }


def _shifted_classes(counts: dict[str, object], names: list[str], n: int = 10) -> dict | None:
    """The classes whose share changed most between the first split and the last (smoothed ratio)."""
    import numpy as np

    if len(counts) < 2:
        return None
    names_in = list(counts)
    ref_name = names_in[0]
    other_name = "test" if "test" in counts and ref_name != "test" else names_in[-1]
    ref, other = counts[ref_name], counts[other_name]
    a = np.asarray(ref, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2 or a.sum() <= 0 or b.sum() <= 0:
        return None
    pa, pb = a / a.sum(), b / b.sum()
    eps = 0.5 / max(a.sum(), b.sum())  # half a sample: a class absent from one split stays finite
    ratio = (pb + eps) / (pa + eps)
    score = np.abs(np.log(ratio))
    order = np.argsort(-score, kind="stable")[:n]
    order = order[score[order] > np.log(1.25)]
    if order.size == 0:
        return None
    return {
        "caption": f"Classes whose share changed most, {ref_name} → {other_name}",
        "columns": ["class", f"share in {ref_name}", f"share in {other_name}", "ratio"],
        "num_from": 1,
        "rows": [[names[i], _fmt(pa[i], "recall"), _fmt(pb[i], "recall"), f"{ratio[i]:.2f}×"] for i in order],
    }


def _properties_section(page: _Page, groups: dict) -> dict | None:
    from whylow.report import plots

    props: dict[str, object] = {}
    for group, name, value in _scan(groups, "property:"):
        props.setdefault(name, value)
    for group, _, value in _scan(groups, "properties"):
        if isinstance(value, dict):
            for name, spec in value.items():
                props.setdefault(str(name), spec)
    props = {k: v for k, v in props.items() if k}
    quantiles = {}
    for group in sorted(groups, key=lambda g: (g != "core", g)):
        for key, value in groups[group].items():
            name = str(key)
            if isinstance(value, dict) and "levels" in value and (name.endswith("_quantiles") or name.startswith("quantiles:")):
                split = name[: -len("_quantiles")] if name.endswith("_quantiles") else name[len("quantiles:"):]
                others = [s for s in value if s != "levels"]
                quantiles.setdefault(f"input values: {' vs '.join(others) or split}", value)
    figures = []
    if props:
        svg = page.figure("input properties", plots.properties_svg, props)
        if svg:
            figures.append({"svg": svg, "caption": "Distributions of per-image properties, normalised per split.", "wide": True})
    if quantiles:
        svg = page.figure("input value quantiles", plots.quantiles_svg, quantiles)
        if svg:
            figures.append({"svg": svg, "caption": "Quantiles of the input values per split: a scale, offset or "
                            "clipping difference shows as curves apart.", "wide": len(quantiles) > 1})
    if not figures:
        return None
    return {
        "id": "properties",
        "title": "Input properties, train vs test",
        "lead": "Curves that do not overlap mean the test inputs differ from the training inputs: a preprocessing "
        "difference or a covariate shift.",
        "figures": figures,
    }


def _history_section(page: _Page, groups: dict) -> dict | None:
    from whylow.report import plots

    history: dict = {}
    group = groups.get("history", {})
    history.update({str(k): v for k, v in group.items() if isinstance(v, (list, tuple))})
    for key in ("history", "learning_curves", "loss_curve"):  # the per-epoch dicts checks keep, merged
        for _, rest, value in _scan(groups, key):
            if not rest and isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, (list, tuple)) and v:
                        history.setdefault(str(k), v)
    if not history:
        return None
    svg = page.figure("learning curves", plots.history_svg, history)
    if not svg:
        return None
    return {
        "id": "history",
        "title": "Learning curves",
        "lead": "Per-epoch training history: training solid, validation dashed.",
        "figures": [{"svg": svg, "caption": "", "wide": True}],
    }


def _thumbnail(item, page: _Page, list_name: str) -> dict | None:
    if not isinstance(item, dict):
        return None
    data = item.get("png_base64")
    if not isinstance(data, str) or not _BASE64.match(data):
        page.notes.append(f"A thumbnail in {list_name!r} was skipped: it is not base64 PNG data.")
        return None
    try:
        head = base64.b64decode(data[:12])
    except (binascii.Error, ValueError):
        head = b""
    if not head.startswith(_PNG_MAGIC):
        page.notes.append(f"A thumbnail in {list_name!r} was skipped: it is not a PNG image.")
        return None
    return {"src": "data:image/png;base64," + data, "label": str(item.get("label", "")), "caption": str(item.get("caption", ""))}


def _examples_section(page: _Page, groups: dict) -> dict | None:
    core = groups.get("core", {})
    lists = []
    thumbs = core.get("thumbnails")
    shown = set()
    if isinstance(thumbs, dict):
        for name, items in thumbs.items():
            if not isinstance(items, list):
                continue
            cells = [t for t in (_thumbnail(i, page, str(name)) for i in items) if t]
            if cells:
                total = items[0].get("total") if isinstance(items[0], dict) else None
                total = total if isinstance(total, int) and total >= len(cells) else len(cells)
                more = f"{len(cells)} of {total} shown; all of them: --examples-csv or report.flagged_examples()" if total > len(cells) else ""
                lists.append({"name": str(name), "thumbs": cells, "rows": None, "more": more})
                shown.add(str(name))
    if isinstance(core.get("thumbnails_error"), str):
        page.notes.append(f"Thumbnails of flagged examples could not be made: {core['thumbnails_error']}")
    for group, name, value in _scan(groups, "examples:"):
        title = f"{group}: {name}"
        if title in shown or not isinstance(value, list) or not value:
            continue
        rows = []
        for ex in value[:20]:
            if isinstance(ex, dict):
                rows.append([str(ex.get("split", "")), _brief(ex.get("index"), 20), _brief(ex.get("caption", ""), 160)])
        if rows:
            more = f"{len(value) - 20} more not shown" if len(value) > 20 else ""
            lists.append({"name": title, "thumbs": None, "rows": rows, "more": more})
    if not lists:
        return None
    return {
        "id": "examples",
        "title": "Flagged examples",
        "lead": "Examples the checks flagged (likely label errors, leaked duplicates, the most shifted inputs), with "
        "their given labels. Pixel values are scaled with one range per split, so brightness differences show.",
        "figures": [],
        "examples": lists,
    }


# -- numbers ------------------------------------------------------------------


def _summary_rows(report) -> list[list[str]]:
    rows = []
    summary = report.summary if isinstance(report.summary, dict) else {}
    intervals = report.intervals if isinstance(report.intervals, dict) else {}
    baselines = report.baselines if isinstance(report.baselines, dict) else {}
    for key, value in summary.items():
        if key == "n_test":
            continue
        ci = intervals.get(key)
        ci_text = ""
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci:
            ci_text = f"{_fmt(ci[0], key if key in _PERCENT_METRICS else 'x')} – {_fmt(ci[1], key if key in _PERCENT_METRICS else 'x')}"
        base = baselines.get(_BASELINE_FOR.get(key, ""))
        label = _METRIC_LABELS.get(key, str(key).replace("_", " "))
        if key == "brier" and isinstance(report.inputs, dict) and (report.inputs.get("n_classes") or 2) > 2:
            label = "Brier score (multiclass)"
        rows.append([
            label,
            _fmt(value, key if key in _PERCENT_METRICS else "x"),
            ci_text,
            _fmt(base, key if key in _PERCENT_METRICS else "x") if base is not None else "",
        ])
    return rows


def _per_class_rows(report) -> list[list[str]]:
    rows = []
    for r in report.per_class or []:
        if not isinstance(r, dict):
            continue
        rows.append([
            str(r.get("class", "")),
            _fmt(r.get("support")),
            _fmt(r.get("precision"), "recall"),
            _fmt(r.get("recall"), "recall"),
            _fmt(r.get("f1"), "recall"),
            _fmt(r.get("mean_true_prob"), "x"),
        ])
    return rows


def _inputs_view(report) -> dict:
    inputs = report.inputs if isinstance(report.inputs, dict) else {}
    splits = inputs.get("splits") if isinstance(inputs.get("splits"), dict) else {}
    rows, line = [], []
    for name in sorted(splits, key=_split_key):
        s = splits[name] if isinstance(splits[name], dict) else {}
        shape = s.get("shape")
        shape_text = "×".join(str(d) for d in shape) if isinstance(shape, (list, tuple)) else ""
        preds = "yes" if s.get("has_predictions") else "no"
        if s.get("has_predictions") and s.get("prediction_source"):
            preds = f"yes ({s['prediction_source']})"
        rows.append([
            str(name), _fmt(s.get("n")), shape_text, str(s.get("dtype") or ""), str(s.get("layout") or ""),
            "yes" if s.get("has_labels") else "no", preds, str(s.get("source") or ""),
            _fmt(s.get("corrupt_files")) if s.get("corrupt_files") else "",
        ])
        detail = " ".join(t for t in (shape_text, str(s.get("dtype") or "")) if t)
        line.append(f"{name}: {_fmt(s.get('n'))} samples" + (f" ({detail})" if detail else ""))
    names = inputs.get("class_names") if isinstance(inputs.get("class_names"), (list, tuple)) else []
    facts = []
    for label, key in (("model", "model"), ("predictions", "prediction_kind"), ("classes", "n_classes"), ("layout", "layout")):
        if inputs.get(key) is not None:
            facts.append([label, _fmt(inputs.get(key)) if key == "n_classes" else str(inputs.get(key))])
    if names:
        shown = ", ".join(str(c) for c in names[:30]) + (f", … ({len(names)} in all)" if len(names) > 30 else "")
        facts.append(["class names", shown])
    for name in sorted(splits, key=_split_key):
        steps = splits[name].get("preprocessing") if isinstance(splits[name], dict) else None
        if steps:
            facts.append([f"{name} preprocessing (declared)", ", then ".join(str(t) for t in steps)])
    if inputs.get("history"):
        hist = inputs["history"]
        facts.append(["history", ", ".join(str(h) for h in hist) if isinstance(hist, (list, tuple)) else str(hist)])
    return {"rows": rows, "facts": facts, "line": " · ".join(line)}


def _finding_view(f) -> dict:
    evidence = getattr(f, "evidence", None)
    ev_rows = []
    if isinstance(evidence, dict):
        items = list(evidence.items())
        for k, v in items[:40]:
            ev_rows.append([str(k).replace("_", " "), _brief(v)])
        if len(items) > 40:
            ev_rows.append(["…", f"{len(items) - 40} more entries in the JSON report"])
    elif evidence:
        ev_rows.append(["evidence", _brief(evidence)])
    severity = getattr(f, "severity", "info")
    cause = evidence.get("explained_by") if isinstance(evidence, dict) else None
    shown = _EVIDENCE_SHOWN if severity in ("critical", "warning") else 0  # an info finding's evidence folds away
    return {
        "code": str(getattr(f, "code", "")),
        "severity": severity if severity in _SEVERITY_ORDER else "info",
        "confidence": _fmt(getattr(f, "confidence", None), "x"),
        "title": str(getattr(f, "title", "")),
        "fix": str(getattr(f, "fix", "") or ""),
        "verified": _verified_view(getattr(f, "verified", None)),
        "explains": explains_text(getattr(f, "explains", None)),
        "consequences": [
            {"code": str(c.get("code", "")), "title": str(c.get("title", ""))}
            for c in (getattr(f, "consequences", None) or []) if isinstance(c, dict)
        ],
        "explained_by": str(cause.get("code", "")) if isinstance(cause, dict) else "",
        "evidence": ev_rows[:shown],
        "more_evidence": ev_rows[shown:],
        "check": str(getattr(f, "check", "") or ""),
    }


def _environment():
    global _ENV
    if _ENV is None:
        from jinja2 import Environment, PackageLoader, StrictUndefined

        _ENV = Environment(
            loader=PackageLoader("whylow", "report/templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _ENV


def render_html(report) -> str:
    """Render a report as one self-contained HTML page.

    Parameters
    ----------
    report : whylow.report.Report

    Returns
    -------
    str
        The page: inline CSS and SVG, base64 PNG thumbnails, no script and no
        external resource (a Content-Security-Policy forbids fetching any).

    Examples
    --------
    >>> import numpy as np, whylow
    >>> y = np.arange(300) % 3
    >>> probs = np.full((300, 3), 0.1); probs[np.arange(300), y] = 0.8
    >>> page = whylow.diagnose(test=whylow.Split(y=y, probs=probs)).to_html()
    >>> page.startswith("<!DOCTYPE html>")
    True
    """
    page = _Page()
    groups = _groups(report)
    findings = [_finding_view(f) for f in (report.findings or [])]
    worst = next((s for s in _SEVERITY_ORDER if any(f["severity"] == s for f in findings)), None)
    level = worst if worst in ("critical", "warning") else "ok"
    plots = []
    builders = (
        ("calibration", lambda: _calibration_section(page, groups)),
        ("per-class", lambda: _per_class_section(page, report, groups)),
        ("confusion", lambda: _confusion_section(page, report, groups)),
        ("priors", lambda: _priors_section(page, report, groups)),
        ("properties", lambda: _properties_section(page, groups)),
        ("history", lambda: _history_section(page, groups)),
        ("examples", lambda: _examples_section(page, groups)),
    )
    for name, build in builders:
        try:
            section = build()
        except Exception as exc:  # noqa: BLE001 - one broken section never breaks the page
            page.notes.append(f"The {name} section was skipped ({type(exc).__name__}: {exc}).")
            continue
        if section:
            section.setdefault("table", None)
            section.setdefault("examples", None)
            for fig in section["figures"]:
                fig.setdefault("caption", "")
                fig.setdefault("wide", False)
            for ex in section["examples"] or []:
                ex.setdefault("more", "")
            plots.append(section)
    checks = [
        {"name": str(c.name), "status": str(c.status), "reason": str(c.reason or "")}
        for c in (report.checks or [])
    ]
    counts = {s: sum(1 for c in checks if c["status"] == s) for s in ("ran", "skipped", "failed")}
    per_class = _per_class_rows(report)
    summary = report.summary if isinstance(report.summary, dict) else {}
    nav = [("findings", "Findings")] + [(s["id"], s["title"]) for s in plots]
    nav += [("metrics", "Metrics"), ("per-class-table", "Per-class table")] if per_class else [("metrics", "Metrics")]
    nav += [("checks", "Checks"), ("inputs", "Inputs")]
    context = {
        "version": __version__,
        "verdict": str(report.verdict),
        "level": level,
        "counts_by_severity": {s: sum(1 for f in findings if f["severity"] == s) for s in _SEVERITY_ORDER},
        "findings": findings,
        "plots": plots,
        "summary_rows": _summary_rows(report),
        "n_test": _fmt(summary.get("n_test")),
        "other_baselines": [
            [str(k).replace("_", " "), _fmt(v, "x")]
            for k, v in (report.baselines or {}).items()
            if k not in _BASELINE_FOR.values()
        ],
        "per_class": per_class,
        "per_class_open": len(per_class) <= 50,
        "checks": checks,
        "check_counts": counts,
        "inputs": _inputs_view(report),
        "notes": page.notes,
        "nav": nav,
    }
    return _environment().get_template("report.html.j2").render(**context)
