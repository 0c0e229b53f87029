"""The HTML report's plots: matplotlib figures rendered in memory to inline SVG.

Every function takes plain data (lists, dicts, arrays as the checks store
them in ``report.artifacts``), validates it, and returns an SVG string ready
to be inlined in HTML, or raises ``ValueError`` when the data is malformed.
The caller decides what to do with a failure (the HTML renderer skips that
plot and notes why).

matplotlib is imported inside the functions, so ``import whylow`` stays
light, and pyplot is never used: figures are plain `matplotlib.figure.Figure`
objects, so rendering never touches the user's backend or global figure list
(safe in Jupyter). Text stays text in the SVG (``svg.fonttype = "none"``):
small files, searchable and crisp when printed. User-supplied strings that
reach a figure pass through `plain` first, so ``$`` never starts mathtext;
matplotlib's SVG writer escapes ``<``, ``>`` and ``&``.
"""

from __future__ import annotations

import functools
import io
import math
import re

import numpy as np

__all__ = [
    "COLORS",
    "plain",
    "scope_ids",
    "reliability_svg",
    "confidence_hist_svg",
    "per_class_svg",
    "confusion_svg",
    "priors_svg",
    "recall_vs_count_svg",
    "properties_svg",
    "quantiles_svg",
    "history_svg",
]

#: Colour-blind-safe palette (Okabe–Ito).
COLORS = {
    "train": "#0072B2",
    "val": "#009E73",
    "test": "#E69F00",
    "before": "#D55E00",
    "after": "#0072B2",
    "correct": "#0072B2",
    "wrong": "#D55E00",
    "recall": "#0072B2",
    "precision": "#E69F00",
    "grid": "#DDDDDD",
}
_SPLIT_ORDER = ("train", "val", "test")

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "whylow",
    "svg.image_inline": True,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial", "Liberation Sans"],
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "text.usetex": False,
}

_SVG_START = re.compile(r"<svg[\s>]")
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_GLOBAL_STYLE = re.compile(r"<style type=\"text/css\">\*\{[^}]*\}</style>\s*")
_EMPTY_DEFS = re.compile(r"<defs>\s*</defs>\s*")
_REFERENCE = re.compile(r"#([A-Za-z_][\w.:-]*)")
_ID = re.compile(r"\sid=\"([^\"]+)\"")


def plain(text, limit: int = 28) -> str:
    """A user-supplied string made safe for a matplotlib label: no mathtext, one line, at most ``limit`` characters."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("\\", "\\\\").replace("$", r"\$")


def scope_ids(svg: str, prefix: str) -> str:
    """Prefix every id defined in ``svg`` (and the references to it), so several figures in one page never share an id.

    The ids matplotlib writes end in a hash of what they define, so the prefix
    only adds uniqueness within a page; it never makes two definitions collide.
    """
    defined = set(re.findall(r'\sid="([^"]+)"', svg))
    if not defined:
        return svg
    svg = re.sub(r'(\sid=")([^"]+)"', lambda m: f'{m.group(1)}{prefix}{m.group(2)}"', svg)
    return re.sub(r"#([A-Za-z_][\w.:-]*)", lambda m: f"#{prefix}{m.group(1)}" if m.group(1) in defined else m.group(0), svg)


def _svg(fn):
    """Decorate a function that builds a Figure so it returns the figure as an inline SVG string (or None)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> str | None:
        import matplotlib

        with matplotlib.rc_context(_RC):
            fig = fn(*args, **kwargs)
            if fig is None:
                return None
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, dpi=110)
        text = buf.getvalue()
        match = _SVG_START.search(text)
        if match is None:  # pragma: no cover - matplotlib always writes an <svg> root
            raise ValueError("matplotlib produced no <svg> element")
        text = _METADATA.sub("", text[match.start() :])
        # matplotlib's global "*{stroke-linejoin...}" rule would leak into a notebook page: the report's CSS
        # carries it scoped to its figures instead
        text = _EMPTY_DEFS.sub("", _GLOBAL_STYLE.sub("", text))
        # element ids ("figure_1", "axes_1"...) repeat in every figure: keep only the referenced ones (clip
        # paths, markers), whose names hash their content, so a repeat is the same definition
        referenced = set(_REFERENCE.findall(text))
        text = _ID.sub(lambda m: m.group(0) if m.group(1) in referenced else "", text)
        return text.strip()

    return wrapper


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _vector(value, name: str, length: int | None = None) -> np.ndarray:
    """A 1-D float array (None -> NaN), checked for length."""
    if value is None:
        raise ValueError(f"{name} is missing")
    arr = np.asarray([np.nan if v is None else v for v in value] if isinstance(value, (list, tuple)) else value, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if length is not None and arr.size != length:
        raise ValueError(f"{name} has {arr.size} values, expected {length}")
    return arr


def _edges(value, name: str) -> np.ndarray:
    edges = _vector(value, name)
    if edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise ValueError(f"{name} must be at least two increasing finite numbers")
    return edges


def _split_sort_key(name: str):
    base = name.split(":")[0]
    return (_SPLIT_ORDER.index(base) if base in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


def _split_color(name: str, i: int) -> str:
    base = name.split(" ")[0].split(":")[0]
    cycle = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
    return COLORS.get(base, cycle[i % len(cycle)])


# -- calibration --------------------------------------------------------------


def _ece_of_curve(count: np.ndarray, conf: np.ndarray, acc: np.ndarray) -> float:
    ok = (count > 0) & np.isfinite(conf) & np.isfinite(acc)
    total = count[ok].sum()
    return float(np.sum(count[ok] * np.abs(acc[ok] - conf[ok])) / total) if total > 0 else float("nan")


def check_curve(curve: dict) -> dict:
    """Validate a reliability curve ``{bin_edges, count, mean_confidence, accuracy}``; return arrays."""
    if not isinstance(curve, dict):
        raise ValueError(f"a reliability curve must be a dict, got {type(curve).__name__}")
    edges = _edges(curve.get("bin_edges"), "bin_edges")
    n_bins = edges.size - 1
    count = np.nan_to_num(_vector(curve.get("count"), "count", n_bins))
    conf = _vector(curve.get("mean_confidence"), "mean_confidence", n_bins)
    acc = _vector(curve.get("accuracy"), "accuracy", n_bins)
    if np.any(count < 0):
        raise ValueError("count holds negative values")
    return {"bin_edges": edges, "count": count, "mean_confidence": conf, "accuracy": acc}


@_svg
def reliability_svg(title: str, curves: list[tuple[str, dict]]):
    """Reliability diagram (accuracy vs confidence per bin) above the confidence histogram.

    Parameters
    ----------
    title : str
        Figure title, e.g. ``"test split"``.
    curves : list of (label, dict)
        Each dict has ``bin_edges`` (n_bins + 1), ``count``, ``mean_confidence``
        and ``accuracy`` (n_bins each; empty bins may be NaN). The first curve
        is drawn as "before", a second one (e.g. after temperature scaling)
        as "after". Bins with fewer than max(5, 0.2% of the samples) are drawn
        as hollow markers outside the curve.

    Returns
    -------
    str or None
        Inline SVG, or None when ``curves`` is empty.
    """
    if not curves:
        return None
    checked = [(label, check_curve(c)) for label, c in curves]
    fig = _figure(4.6, 4.6)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1.1))
    ax = fig.add_subplot(grid[0])
    axh = fig.add_subplot(grid[1], sharex=ax)
    ax.plot([0, 1], [0, 1], color="#888888", linewidth=0.8, linestyle="--", label="perfect calibration")
    palette = (COLORS["before"], COLORS["after"], "#009E73", "#CC79A7")
    for i, (label, c) in enumerate(checked):
        color = palette[i % len(palette)]
        valid = (c["count"] > 0) & np.isfinite(c["mean_confidence"]) & np.isfinite(c["accuracy"])
        # bins with a handful of samples are noise: drawn as hollow markers, not joined into the curve
        ok = valid & (c["count"] >= max(5.0, 0.002 * c["count"].sum()))
        sparse = valid & ~ok
        ece = _ece_of_curve(c["count"], c["mean_confidence"], c["accuracy"])
        text = f"{plain(label, 40)} (ECE {ece:.3f})" if math.isfinite(ece) else plain(label, 40)
        ax.plot(c["mean_confidence"][ok], c["accuracy"][ok], marker="o", markersize=3.5, linewidth=1.4, color=color, label=text)
        if sparse.any():
            ax.plot(c["mean_confidence"][sparse], c["accuracy"][sparse], linestyle="none", marker="o", markersize=3.5,
                    markerfacecolor="none", markeredgecolor=color, markeredgewidth=0.8, alpha=0.7)
        if i == 0:
            conf, acc = c["mean_confidence"][ok], c["accuracy"][ok]
            ax.vlines(conf, np.minimum(conf, acc), np.maximum(conf, acc), color=color, alpha=0.25, linewidth=3)
        widths = np.diff(c["bin_edges"])
        if i == 0:
            axh.bar(c["bin_edges"][:-1], c["count"], width=widths, align="edge", color=color, alpha=0.55, label=plain(label, 40))
        else:
            axh.stairs(c["count"], c["bin_edges"], color=color, linewidth=1.2, label=plain(label, 40))
    lo = min(0.0, float(min(c["bin_edges"][0] for _, c in checked)))
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("accuracy in bin")
    ax.set_title(plain(title, 60))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=1, fontsize=7.5)
    ax.tick_params(labelbottom=False)
    axh.set_xlabel("confidence (max predicted probability)")
    axh.set_ylabel("samples")
    return fig


@_svg
def confidence_hist_svg(hists: dict[str, dict]):
    """Histogram of confidence per split, correct and wrong predictions stacked.

    Parameters
    ----------
    hists : dict of str to dict
        Split name -> ``{bin_edges, count_correct, count_wrong}``.

    Returns
    -------
    str or None
    """
    if not hists:
        return None
    names = sorted(hists, key=_split_sort_key)
    checked = []
    for name in names:
        h = hists[name]
        if not isinstance(h, dict):
            raise ValueError(f"confidence histogram of {name} must be a dict")
        edges = _edges(h.get("bin_edges"), f"{name} bin_edges")
        right = np.nan_to_num(_vector(h.get("count_correct"), f"{name} count_correct", edges.size - 1))
        wrong = np.nan_to_num(_vector(h.get("count_wrong"), f"{name} count_wrong", edges.size - 1))
        checked.append((name, edges, right, wrong))
    fig = _figure(min(3.2 * len(checked), 9.6), 2.6)
    axes = fig.subplots(1, len(checked), squeeze=False)[0]
    for ax, (name, edges, right, wrong) in zip(axes, checked):
        widths = np.diff(edges)
        n = right.sum() + wrong.sum()
        acc = right.sum() / n if n else float("nan")
        ax.bar(edges[:-1], right, width=widths, align="edge", color=COLORS["correct"], alpha=0.8, label="correct")
        ax.bar(edges[:-1], wrong, width=widths, align="edge", bottom=right, color=COLORS["wrong"], alpha=0.8, label="wrong")
        ax.set_title(f"{plain(name)} (n={int(n)}, acc {acc:.1%})" if n else plain(name))
        ax.set_xlabel("confidence")
        ax.set_xlim(min(0.0, edges[0]), max(1.0, edges[-1]))
    axes[0].set_ylabel("samples")
    axes[0].legend(loc="upper left")
    return fig


# -- per class ----------------------------------------------------------------


def _num(row: dict, key: str) -> float:
    v = row.get(key)
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


@_svg
def per_class_svg(per_class: list[dict], max_classes: int = 40):
    """Recall and precision per class as horizontal bars, with the support in each label.

    Parameters
    ----------
    per_class : list of dict
        Rows with ``class``, ``support``, ``precision``, ``recall``.
    max_classes : int
        With more classes than this, only the ``max_classes`` classes with
        the lowest recall are drawn, beside a histogram of recall over all
        classes.

    Returns
    -------
    str or None
    """
    if not per_class:
        return None
    n_classes = len(per_class)
    recall = np.array([_num(r, "recall") for r in per_class])
    precision = np.array([_num(r, "precision") for r in per_class])
    support = np.array([_num(r, "support") for r in per_class])
    names = [str(r.get("class", i)) for i, r in enumerate(per_class)]
    if n_classes > max_classes:
        key = np.where(np.isfinite(recall), recall, np.inf)
        order = np.lexsort((-np.nan_to_num(support), key))[:max_classes]
        title = f"the {max_classes} classes with lowest recall (of {n_classes})"
    else:
        order = np.arange(n_classes)
        title = "recall and precision per class"
    k = len(order)
    height = 1.2 + 0.19 * k
    fig = _figure(8.6 if n_classes > max_classes else 6.4, max(2.4, height))
    if n_classes > max_classes:
        grid = fig.add_gridspec(1, 2, width_ratios=(2.2, 1))
        ax = fig.add_subplot(grid[0])
        axr = fig.add_subplot(grid[1])
        finite = recall[np.isfinite(recall)]
        axr.hist(finite, bins=np.linspace(0, 1, 21), color=COLORS["recall"], alpha=0.8)
        axr.axvline(float(np.mean(finite)) if finite.size else 0, color="#333333", linestyle=":", linewidth=1)
        axr.set_title(f"recall over all {n_classes} classes")
        axr.set_xlabel("recall")
        axr.set_ylabel("classes")
    else:
        ax = fig.add_subplot(1, 1, 1)
    pos = np.arange(k)[::-1]
    bar = 0.4
    ax.barh(pos + bar / 2, np.nan_to_num(recall[order]), height=bar, color=COLORS["recall"], label="recall")
    ax.barh(pos - bar / 2, np.nan_to_num(precision[order]), height=bar, color=COLORS["precision"], label="precision")
    labels = [f"{plain(names[i], 24)} (n={int(support[i])})" if np.isfinite(support[i]) else plain(names[i], 24) for i in order]
    ax.set_yticks(pos, labels, fontsize=7.5 if k > 20 else 8)
    finite_recall = recall[np.isfinite(recall)]
    if finite_recall.size:
        ax.axvline(float(finite_recall.mean()), color="#333333", linestyle=":", linewidth=1, label="mean recall")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(-0.7, k - 0.3)
    ax.set_xlabel("score")
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=3, fontsize=7.5)
    return fig


@_svg
def recall_vs_count_svg(counts, recall, recall_after=None, after_label: str = "after the fix"):
    """Per-class test recall against the class's training count (log scale), optionally before and after a fix.

    Parameters
    ----------
    counts : array-like of shape (n_classes,)
        Training samples per class.
    recall : array-like of shape (n_classes,)
        Test recall per class (NaN for classes absent from test).
    recall_after : array-like of shape (n_classes,), optional
        Recall after a fix such as logit adjustment; joined to ``recall`` by a line.
    after_label : str

    Returns
    -------
    str or None
    """
    n = _vector(counts, "counts")
    r = _vector(recall, "recall", n.size)
    after = _vector(recall_after, "recall_after", n.size) if recall_after is not None else None
    if n.size == 0:
        return None
    x = np.maximum(n, 0.5)
    many = n.size > 100
    fig = _figure(4.8, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    if after is not None:
        ok = np.isfinite(r) & np.isfinite(after)
        ax.vlines(x[ok], r[ok], after[ok], color="#999999", linewidth=0.7, alpha=0.6, rasterized=many)
        ax.scatter(x, after, s=14, color=COLORS["after"], label=plain(after_label, 40), zorder=3, rasterized=many,
                   edgecolors="none")
    ax.scatter(x, r, s=14, color=COLORS["before"], label="as predicted", zorder=3, rasterized=many, edgecolors="none")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("training samples of the class")
    ax.set_ylabel("test recall")
    ax.set_title("recall vs class frequency")
    ax.legend(loc="lower right")
    return fig


# -- confusion ----------------------------------------------------------------


def confusion_array(matrix) -> np.ndarray:
    """Validate a confusion matrix: a square array of non-negative counts (rows: true, columns: predicted)."""
    cm = np.asarray(matrix, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise ValueError(f"the confusion matrix must be square, got shape {cm.shape}")
    if not np.all(np.isfinite(cm)) or np.any(cm < 0):
        raise ValueError("the confusion matrix must hold non-negative finite counts")
    return cm


@_svg
def confusion_svg(matrix, class_names: list[str], max_labelled: int = 40, max_classes: int = 200):
    """Row-normalised confusion matrix as a heatmap (share of each true class predicted as each class).

    Parameters
    ----------
    matrix : array-like of shape (n_classes, n_classes)
        Counts; rows are true classes, columns predicted classes.
    class_names : list of str
    max_labelled : int
        Class names are written on the axes up to this many classes.
    max_classes : int
        Above this many classes no heatmap is drawn (None is returned): the
        report's top-confusions table is the readable view.

    Returns
    -------
    str or None
    """
    cm = confusion_array(matrix)
    n_classes = cm.shape[0]
    if n_classes > max_classes:
        return None
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = min(8.0, 3.8 + 0.12 * n_classes)
    fig = _figure(size + 0.9, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    ax.grid(False)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    if n_classes <= max_labelled:
        labels = [plain(class_names[i] if i < len(class_names) else i, 18) for i in range(n_classes)]
        ax.set_xticks(np.arange(n_classes), labels, rotation=90 if n_classes > 6 else 0, fontsize=7 if n_classes > 20 else 8)
        ax.set_yticks(np.arange(n_classes), labels, fontsize=7 if n_classes > 20 else 8)
    else:
        ax.set_xlabel("")
    if n_classes <= 12:
        for i, j in zip(*np.nonzero(cm)):
            value = norm[i, j]
            ax.text(j, i, f"{value:.0%}" if value >= 0.005 else "<1%", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.6 else "#222222")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix, rows normalised ({n_classes} classes)")
    return fig


def top_confusions(matrix, class_names: list[str], n: int = 15) -> list[dict]:
    """The largest off-diagonal cells of a confusion matrix.

    Returns
    -------
    list of dict
        ``{"true", "predicted", "count", "share"}`` (share of the true class),
        largest count first; at most ``n`` rows, only non-zero cells.
    """
    cm = confusion_array(matrix)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = off.ravel()
    k = min(n, int(np.count_nonzero(flat)))
    if k == 0:
        return []
    idx = np.argpartition(-flat, k - 1)[:k]
    idx = idx[np.lexsort((idx, -flat[idx]))]
    rows = cm.sum(axis=1)
    out = []
    for flat_index in idx:
        i, j = divmod(int(flat_index), cm.shape[0])
        name = lambda c: str(class_names[c]) if c < len(class_names) else str(c)  # noqa: E731
        out.append({"true": name(i), "predicted": name(j), "count": int(cm[i, j]),
                    "share": float(cm[i, j] / rows[i]) if rows[i] else float("nan")})
    return out


# -- priors -------------------------------------------------------------------


@_svg
def priors_svg(counts: dict[str, list], class_names: list[str], max_bars: int = 40):
    """Class shares per split: grouped bars, or for many classes a train-vs-other scatter.

    Parameters
    ----------
    counts : dict of str to list
        Split label (e.g. ``"train"``, ``"test"``, ``"test (estimated)"``) ->
        per-class counts or shares, all of one length n_classes.
    class_names : list of str
    max_bars : int
        Grouped bars up to this many classes; above it a log-log scatter of
        each split's shares against the first split's.

    Returns
    -------
    str or None
    """
    if len(counts) < 1:
        return None
    labels = list(counts)
    arrays = [np.nan_to_num(_vector(counts[s], f"class counts of {s}")) for s in labels]
    n_classes = arrays[0].size
    for s, a in zip(labels, arrays):
        if a.size != n_classes:
            raise ValueError(f"class counts of {s} have {a.size} classes, the first split has {n_classes}")
        if np.any(a < 0) or a.sum() <= 0:
            raise ValueError(f"class counts of {s} must be non-negative and not all zero")
    shares = [a / a.sum() for a in arrays]
    if n_classes <= max_bars:
        names = [str(class_names[i]) if i < len(class_names) else str(i) for i in range(n_classes)]
        fig = _figure(min(9.0, 3.0 + 0.22 * n_classes * len(labels)), 3.0)
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / len(labels)
        x = np.arange(n_classes)
        for i, (s, p) in enumerate(zip(labels, shares)):
            estimated = "estimated" in s
            ax.bar(x - 0.4 + width * (i + 0.5), p, width=width, label=plain(s, 30),
                   facecolor="none" if estimated else _split_color(s, i), edgecolor=_split_color(s, i),
                   hatch="////" if estimated else None, linewidth=0.8)
        ax.set_xticks(x, [plain(n, 16) for n in names], rotation=90 if n_classes > 8 else 0, fontsize=7.5)
        ax.set_ylabel("share of the split")
        ax.set_title("class priors per split")
        ax.grid(axis="x", visible=False)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=len(labels))
        return fig
    if len(labels) < 2:
        raise ValueError("a prior comparison for many classes needs two splits")
    fig = _figure(4.8, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ref = shares[0]
    positive = np.concatenate([p[p > 0] for p in shares])
    floor = float(positive.min()) / 2 if positive.size else 1e-6
    lims = (floor, float(max(p.max() for p in shares)) * 1.5)
    ax.plot(lims, lims, color="#888888", linestyle="--", linewidth=0.8)
    for i, (s, p) in enumerate(zip(labels[1:], shares[1:]), 1):
        estimated = "estimated" in s
        ax.scatter(np.maximum(ref, floor), np.maximum(p, floor), s=9, alpha=0.6, label=plain(s, 30), rasterized=True,
                   color="#CC79A7" if estimated else _split_color(s, i), marker="x" if estimated else "o",
                   linewidths=0.8 if estimated else 0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*lims)
    ax.set_ylim(*lims)
    ax.set_xlabel(f"share in {plain(labels[0])}")
    ax.set_ylabel("share in the other split")
    ax.set_title(f"class priors ({n_classes} classes; off the diagonal = shifted)")
    ax.legend(loc="upper left", markerscale=2)
    return fig


# -- input properties ---------------------------------------------------------


def _property_hists(spec: dict, n_bins: int = 40) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """Histograms of one property per split, on shared bins.

    ``spec`` is either ``{split: per-image values}`` or
    ``{"bin_edges": [...], split: counts, ...}`` (already binned).
    """
    if not isinstance(spec, dict) or not spec:
        raise ValueError("a property must be a dict of split -> values")
    means: dict[str, float] = {}
    if "bin_edges" in spec:
        edges = _edges(spec["bin_edges"], "bin_edges")
        source = spec.get("counts", {k: v for k, v in spec.items() if k != "bin_edges"})
        hists = {s: np.nan_to_num(_vector(v, f"{s} counts", edges.size - 1)) for s, v in source.items()}
        centres = (edges[:-1] + edges[1:]) / 2
        for s, h in hists.items():
            if h.sum() > 0:
                means[s] = float(np.sum(h * centres) / h.sum())
        return edges, hists, means
    values = {}
    for s, v in spec.items():
        arr = np.asarray(v, dtype=np.float64).ravel()
        arr = arr[np.isfinite(arr)]
        if arr.size:
            values[s] = arr
            means[s] = float(arr.mean())
    if not values:
        raise ValueError("no finite values")
    lo = min(float(a.min()) for a in values.values())
    hi = max(float(a.max()) for a in values.values())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, n_bins + 1)
    return edges, {s: np.histogram(a, edges)[0].astype(np.float64) for s, a in values.items()}, means


@_svg
def properties_svg(properties: dict[str, dict], max_panels: int = 12):
    """Distributions of per-image input properties (brightness, contrast, value range...) per split.

    Parameters
    ----------
    properties : dict of str to dict
        Property name -> ``{split: per-image values}`` or
        ``{"bin_edges": [...], split: counts}``. Each split's histogram is
        normalised to a density so splits of different sizes compare.
    max_panels : int

    Returns
    -------
    str or None
    """
    items = list(properties.items())[:max_panels]
    if not items:
        return None
    prepared = [(name, *_property_hists(spec)) for name, spec in items]
    cols = min(3, len(prepared))
    rows = math.ceil(len(prepared) / cols)
    fig = _figure(3.2 * cols, 2.3 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, edges, hists, means) in zip(axes, prepared):
        widths = np.diff(edges)
        for i, s in enumerate(sorted(hists, key=_split_sort_key)):
            h = hists[s]
            total = h.sum()
            if total <= 0:
                continue
            label = f"{plain(s, 14)} (mean {means[s]:.3g})" if s in means else plain(s, 14)
            ax.stairs(h / (total * widths), edges, color=_split_color(s, i), linewidth=1.4, label=label,
                      fill=(i == 0), alpha=0.35 if i == 0 else 1.0)
        ax.set_title(plain(name, 40))
        ax.set_yticks([])
        ax.grid(axis="y", visible=False)
        ax.legend(loc="best", fontsize=7)
    for ax in axes[len(prepared):]:
        ax.set_visible(False)
    return fig


@_svg
def quantiles_svg(panels: dict[str, dict], max_panels: int = 6):
    """Quantile functions of input values per split: curves apart mean a different scale, offset or clipping.

    Parameters
    ----------
    panels : dict of str to dict
        Panel title -> ``{"levels": [...], split: quantiles, ...}``; a split's
        quantiles have shape (n_levels,) or (n_channels, n_levels), one row per
        channel (None for a split without values).
    max_panels : int

    Returns
    -------
    str or None
    """
    prepared = []
    for title, spec in list(panels.items())[:max_panels]:
        if not isinstance(spec, dict):
            raise ValueError(f"quantiles of {title} must be a dict")
        levels = _vector(spec.get("levels"), "levels")
        curves = {}
        for split, values in spec.items():
            if split == "levels" or values is None:
                continue
            arr = np.asarray(values, dtype=np.float64)
            arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
            if arr.ndim != 2 or arr.shape[1] != levels.size:
                raise ValueError(f"{split} quantiles must have shape (n_levels,) or (n_channels, n_levels) with "
                                 f"n_levels={levels.size}, got {arr.shape}")
            curves[str(split)] = arr
        if curves:
            prepared.append((title, levels, curves))
    if not prepared:
        return None
    cols = min(3, len(prepared))
    rows = math.ceil(len(prepared) / cols)
    fig = _figure(3.3 * cols, 2.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, levels, curves) in zip(axes, prepared):
        channel_names = ("R", "G", "B") if max(c.shape[0] for c in curves.values()) == 3 else None
        for i, split in enumerate(sorted(curves, key=_split_sort_key)):
            rows = curves[split]
            for c, row in enumerate(rows):
                name = plain(split, 20)
                if rows.shape[0] > 1:
                    name += f" {channel_names[c] if channel_names else f'ch {c}'}"
                ax.plot(levels, row, color=_split_color(split, i), linewidth=1.5, linestyle=("-", "--", ":", "-.")[c % 4],
                        alpha=1.0 if i == 0 else 0.85, label=name if c < 4 else None)
        ax.set_title(plain(title, 40))
        ax.set_xlabel("quantile")
        ax.set_ylabel("input value")
        ax.legend(loc="upper left")
    for ax in axes[len(prepared):]:
        ax.set_visible(False)
    return fig


# -- training history ---------------------------------------------------------


def _history_groups(history: dict) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for key in history:
        k = str(key)
        if k in ("epoch", "epochs", "step"):
            continue
        base = k
        for prefix in ("val_", "train_", "validation_", "test_"):
            if base.startswith(prefix):
                base = base[len(prefix):]
                break
        if base in ("learning_rate", "lr"):
            base = "learning rate"
        groups.setdefault(base, []).append(k)
    return groups


@_svg
def history_svg(history: dict[str, list], max_panels: int = 6):
    """Learning curves: one panel per quantity (loss, accuracy, learning rate...), training and validation together.

    Non-finite values (NaN, inf) leave gaps, and the first non-finite epoch
    is marked. A positive learning rate is drawn on a log scale.

    Parameters
    ----------
    history : dict of str to list of float
        Per-epoch values, e.g. ``loss``, ``val_loss``, ``accuracy``, ``lr``.
    max_panels : int

    Returns
    -------
    str or None
    """
    if not isinstance(history, dict):
        raise ValueError(f"the history must be a dict of per-epoch lists, got {type(history).__name__}")
    series = {}
    for key, values in history.items():
        if isinstance(values, (list, tuple, np.ndarray)) and len(values):
            series[str(key)] = _vector(list(values), str(key))
    if not series:
        return None
    groups = _history_groups(series)
    order = sorted(groups, key=lambda g: (g != "loss", g == "learning rate", g))[:max_panels]
    cols = min(3, len(order))
    rows = math.ceil(len(order) / cols)
    fig = _figure(3.3 * cols, 2.5 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, group in zip(axes, order):
        for i, key in enumerate(sorted(groups[group], key=lambda k: (k.startswith("val"), k))):
            y = series[key]
            epochs = np.arange(1, y.size + 1)
            finite = np.isfinite(y)
            is_val = key.startswith(("val", "validation", "test"))
            color = COLORS["val"] if is_val else COLORS["train"]
            ax.plot(epochs, np.where(finite, y, np.nan), color=color if i < 2 else None,
                    linestyle="--" if is_val else "-", marker="o" if y.size <= 30 else None, markersize=2.5,
                    linewidth=1.4, label=plain(key, 24))
            if not finite.all():
                first = int(np.argmin(finite)) + 1
                ax.axvline(first, color="#D55E00", linewidth=1, linestyle=":")
                ax.annotate(f"{plain(key, 16)} non-finite from epoch {first}", (first, 0.95), xycoords=("data", "axes fraction"),
                            fontsize=7, color="#D55E00", ha="left", va="top", xytext=(2, 0), textcoords="offset points")
        values = np.concatenate([series[k][np.isfinite(series[k])] for k in groups[group]])
        if group == "learning rate" and values.size and np.all(values > 0):
            ax.set_yscale("log")
        ax.set_title(plain(group, 30))
        ax.set_xlabel("epoch")
        ax.legend(loc="best")
    for ax in axes[len(order):]:
        ax.set_visible(False)
    return fig
