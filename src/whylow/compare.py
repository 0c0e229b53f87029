"""Compare two or more classifiers on the same data, side by side.

`compare` runs each model (or reads each set of predictions) on one test
split and measures, per model, the headline metrics (accuracy, balanced
accuracy, NLL, Brier, ECE), the confidence distribution (histogram,
quantiles) and how close the probabilities sit to 0 and 1. Pairs of models
are tested against each other on the same samples: a two-sample
Kolmogorov–Smirnov test and a paired Wilcoxon test on the confidences, and,
with labels, McNemar's exact test on correctness and a paired t-test on the
per-sample log-loss (a claim about the *mean* NLL needs a test of the mean: a
signed-rank test of the median misses a sharper model's few, very costly
confident errors).

This answers the seed's Example 2 ("the over-parametrised model produces
predictions closer to 0 or 1 than the reduced one") with numbers and a test
instead of five printed values.

Closeness to 0/1 ("sharpness") of one sample is its top-label confidence
rescaled to [0, 1]: ``(max_k p_k - 1/K) / (1 - 1/K)``. For a binary
classifier this is ``|p_1 - 0.5| * 2``: 0 for a coin flip, 1 for a
probability of exactly 0 or 1. The normalised entropy ``H(p) / log K`` is
reported beside it (0 = one-hot, 1 = uniform).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from whylow.errors import InvalidInputError

__all__ = ["Comparison", "ModelStats", "PairTest", "compare", "scenario_models", "PREDICTION_SUFFIXES"]

#: File types read as predictions; any other file is loaded as a model.
PREDICTION_SUFFIXES = (".npz", ".csv", ".parquet")

#: Significance level of the pairwise tests (two-sided).
ALPHA = 0.01

#: A prediction is "extreme" when its top-label confidence is at least this (within 0.01 of 0 or 1 for binary).
EXTREME_CONFIDENCE = 0.99

_METRIC_KEYS = ("accuracy", "balanced_accuracy", "log_loss", "brier", "ece", "mean_confidence")
_HIGHER_BETTER = {"accuracy": True, "balanced_accuracy": True, "log_loss": False, "brier": False, "ece": False}
_LABELS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "log_loss": "NLL (log-loss)",
    "brier": "Brier score",
    "ece": "ECE (15 bins)",
    "mean_confidence": "mean confidence",
    "sharpness": "closeness to 0/1",
    "mean_entropy": "mean norm. entropy",
    "extreme_fraction": f"share conf ≥ {EXTREME_CONFIDENCE:g}",
    "confidence_p10": "confidence p10",
    "confidence_p50": "confidence median",
    "confidence_p90": "confidence p90",
}
_BLOCKS = " ▁▂▃▄▅▆▇█"


@dataclass
class ModelStats:
    """What one model's predictions look like on the test split.

    Attributes
    ----------
    name : str
    source : str
        Where the probabilities came from, e.g. ``"model (torch)"`` or ``"predictions (a.csv)"``.
    prediction_kind : {"softmax", "sigmoid", "logits"}
        How the raw values were read.
    metrics : dict
        ``accuracy``, ``balanced_accuracy``, ``log_loss``, ``brier``, ``ece``
        (None without labels) and ``mean_confidence``.
    sharpness : float
        Mean closeness to 0/1 in [0, 1] (see the module docstring).
    mean_entropy : float
        Mean normalised entropy in [0, 1].
    extreme_fraction : float
        Share of samples whose top-label confidence is at least `EXTREME_CONFIDENCE`.
    confidence_quantiles : dict
        ``p10``, ``p50``, ``p90`` of the top-label confidence.
    confidence_hist : list of int, length n_bins
        Counts of the top-label confidence in equal-width bins over [0, 1].
    positive_hist : list of int or None
        Binary only: counts of the probability of class 1 in the same bins,
        the histogram that shows predictions piling up at 0 and 1.
    """

    name: str
    source: str
    prediction_kind: str
    metrics: dict
    sharpness: float
    mean_entropy: float
    extreme_fraction: float
    confidence_quantiles: dict
    confidence_hist: list[int]
    positive_hist: list[int] | None = None

    def value(self, key: str):
        """A row value by key: a metric, a sharpness statistic or a confidence quantile."""
        if key in self.metrics:
            return self.metrics[key]
        if key.startswith("confidence_p"):
            return self.confidence_quantiles.get(key.removeprefix("confidence_"))
        return getattr(self, key)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "source": self.source,
            "prediction_kind": self.prediction_kind,
            "metrics": dict(self.metrics),
            "sharpness": self.sharpness,
            "mean_entropy": self.mean_entropy,
            "extreme_fraction": self.extreme_fraction,
            "confidence_quantiles": dict(self.confidence_quantiles),
            "confidence_hist": list(self.confidence_hist),
            "positive_hist": None if self.positive_hist is None else list(self.positive_hist),
        }


@dataclass
class PairTest:
    """Two models compared on the same samples.

    Attributes
    ----------
    a, b : str
        Model names; differences are ``a - b``.
    sharpness_diff : float
        Mean closeness to 0/1 of ``a`` minus that of ``b``.
    ks_statistic, ks_pvalue : float
        Two-sample Kolmogorov–Smirnov test between the top-label confidence distributions.
    wilcoxon_pvalue : float
        Paired Wilcoxon signed-rank test on the per-sample confidences (the
        samples are the same, so this is the sharper test).
    closer : str or None
        The model whose predictions are significantly closer to 0/1 (both
        p-values below `ALPHA`), or None when the distributions are not
        distinguishable.
    accuracy_diff, mcnemar_pvalue : float or None
        Accuracy of ``a`` minus ``b`` and McNemar's exact test (labels only).
    log_loss_diff, log_loss_pvalue : float or None
        Mean NLL of ``a`` minus ``b`` and a two-sided paired t-test of that mean on the per-sample NLL (labels only).
    """

    a: str
    b: str
    sharpness_diff: float
    ks_statistic: float
    ks_pvalue: float
    wilcoxon_pvalue: float
    closer: str | None
    accuracy_diff: float | None = None
    mcnemar_pvalue: float | None = None
    log_loss_diff: float | None = None
    log_loss_pvalue: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return dict(self.__dict__)


@dataclass
class Comparison:
    """The result of `compare`: per-model statistics, pairwise tests and a verdict.

    Attributes
    ----------
    models : list of ModelStats
        In the order given.
    pairs : list of PairTest
        Every pair of models, in the order given.
    n_samples, n_classes : int
    class_names : list of str
    has_labels : bool
    bin_edges : list of float, length n_bins + 1
        Edges of the histograms.
    probs : dict of str to ndarray of shape (n_samples, n_classes)
        The probabilities compared (not part of `to_dict`).
    y_true : ndarray of shape (n_samples,) or None
    """

    models: list[ModelStats]
    pairs: list[PairTest]
    n_samples: int
    n_classes: int
    class_names: list[str]
    has_labels: bool
    bin_edges: list[float]
    probs: dict = field(default_factory=dict, repr=False)
    y_true: np.ndarray | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> ModelStats:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        """Model names in order."""
        return [m.name for m in self.models]

    @property
    def sharpest(self) -> str:
        """The model whose predictions are on average closest to 0/1."""
        return max(self.models, key=lambda m: m.sharpness).name

    def verdict(self) -> list[str]:
        """One sentence per pair saying which model is closer to 0/1 and which is better, with the evidence."""
        lines = []
        for p in self.pairs:
            a, b = self[p.a], self[p.b]
            if p.closer is not None:
                near, far = (a, b) if p.closer == a.name else (b, a)
                lines.append(
                    f"{near.name}'s predictions are closer to 0/1 than {far.name}'s (closeness {near.sharpness:.3f} vs "
                    f"{far.sharpness:.3f}; KS D = {p.ks_statistic:.3f}, p = {_p(p.ks_pvalue)}; paired Wilcoxon p = {_p(p.wilcoxon_pvalue)})."
                )
            else:
                lines.append(
                    f"{a.name}'s and {b.name}'s confidence distributions are not distinguishable at the {ALPHA:g} level "
                    f"(closeness {a.sharpness:.3f} vs {b.sharpness:.3f}; KS p = {_p(p.ks_pvalue)}; paired Wilcoxon p = {_p(p.wilcoxon_pvalue)})."
                )
            if p.accuracy_diff is None:
                continue
            if p.mcnemar_pvalue < ALPHA:
                better, worse = (a, b) if p.accuracy_diff > 0 else (b, a)
                lines.append(
                    f"{better.name} is more accurate than {worse.name} ({better.metrics['accuracy']:.3f} vs "
                    f"{worse.metrics['accuracy']:.3f}, McNemar p = {_p(p.mcnemar_pvalue)})."
                )
            else:
                lines.append(
                    f"{a.name}'s and {b.name}'s accuracies do not differ significantly ({a.metrics['accuracy']:.3f} vs {b.metrics['accuracy']:.3f}, "
                    f"McNemar p = {_p(p.mcnemar_pvalue)})."
                )
            if p.closer is not None:
                near, far = (a, b) if p.closer == a.name else (b, a)
                worse_nll = near.metrics["log_loss"] > far.metrics["log_loss"]
                if near.metrics["ece"] > far.metrics["ece"] and worse_nll:
                    evidence = (f"ECE {near.metrics['ece']:.3f} vs {far.metrics['ece']:.3f}, NLL {near.metrics['log_loss']:.3f} vs "
                                f"{far.metrics['log_loss']:.3f}, paired t-test p = {_p(p.log_loss_pvalue)}")
                    if p.log_loss_pvalue is not None and p.log_loss_pvalue < ALPHA:
                        lines.append(
                            f"{near.name} is closer to 0/1 but worse calibrated than {far.name} ({evidence}): its extreme "
                            "probabilities overstate how often it is right (overconfidence)."
                        )
                    else:  # a claim needs the paired test behind it
                        lines.append(
                            f"{near.name} has the higher ECE and NLL ({evidence}), but the NLL difference is not significant "
                            f"at the {ALPHA:g} level: no claim that it is worse calibrated."
                        )
        return lines

    # -- output ------------------------------------------------------------
    def to_dict(self) -> dict:
        """The comparison as a JSON-ready dict (schema ``whylow.compare/1``)."""
        from whylow.report.report import to_jsonable

        return to_jsonable(
            {
                "schema": "whylow.compare/1",
                "n_samples": self.n_samples,
                "n_classes": self.n_classes,
                "class_names": self.class_names,
                "has_labels": self.has_labels,
                "alpha": ALPHA,
                "bin_edges": self.bin_edges,
                "models": [m.to_dict() for m in self.models],
                "pairs": [p.to_dict() for p in self.pairs],
                "verdict": self.verdict(),
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """The comparison as a JSON string."""
        import json

        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def save_json(self, path) -> Path:
        """Write the JSON atomically."""
        from whylow.report.report import write_atomic

        return write_atomic(path, self.to_json() + "\n")

    def _rows(self) -> list[str]:
        keys = [k for k in _METRIC_KEYS if self.has_labels or k == "mean_confidence"]
        return keys + ["sharpness", "mean_entropy", "extreme_fraction", "confidence_p10", "confidence_p50", "confidence_p90"]

    def _best(self, key: str) -> str | None:
        if key not in _HIGHER_BETTER or len(self.models) < 2:
            return None
        values = [(m.value(key), m.name) for m in self.models if m.value(key) is not None]
        if not values:
            return None
        pick = max if _HIGHER_BETTER[key] else min
        best = pick(values)[0]
        winners = [n for v, n in values if v == best]
        return winners[0] if len(winners) == 1 else None

    def _pair_rows(self) -> list[tuple[str, list[str]]]:
        rows = [
            ("Δ closeness to 0/1", [f"{p.sharpness_diff:+.4f}" for p in self.pairs]),
            ("KS D (confidence)", [f"{p.ks_statistic:.4f}" for p in self.pairs]),
            ("KS p", [_p(p.ks_pvalue) for p in self.pairs]),
            ("paired Wilcoxon p", [_p(p.wilcoxon_pvalue) for p in self.pairs]),
            ("closer to 0/1", [p.closer or "neither" for p in self.pairs]),
        ]
        if self.has_labels:
            rows += [
                ("Δ accuracy", [f"{p.accuracy_diff:+.4f}" for p in self.pairs]),
                ("McNemar p", [_p(p.mcnemar_pvalue) for p in self.pairs]),
                ("Δ NLL", [f"{p.log_loss_diff:+.4f}" for p in self.pairs]),
                ("NLL paired t-test p", [_p(p.log_loss_pvalue) for p in self.pairs]),
            ]
        return rows

    def _histograms(self) -> tuple[str, list[tuple[str, list[int]]]]:
        if self.n_classes == 2:
            return "P(class 1)", [(m.name, m.positive_hist) for m in self.models]
        return "top-label confidence", [(m.name, m.confidence_hist) for m in self.models]

    def renderables(self) -> list:
        """Rich renderables: metrics table, histograms, pairwise tests, verdict."""
        from rich.table import Table
        from rich.text import Text

        title = f"Same {self.n_samples} samples, {self.n_classes} classes"
        table = Table(title=title, expand=False)
        table.add_column("")
        for m in self.models:
            table.add_column(Text(m.name), justify="right")  # Text: user names are never read as markup
        for key in self._rows():
            best = self._best(key)
            cells = [
                Text(_fmt(m.value(key)), style="bold green" if m.name == best else "")
                for m in self.models
            ]
            table.add_row(_LABELS[key], *cells)
        what, hists = self._histograms()
        hist = Table(title=f"Histogram of {what} (0 → 1)", expand=False)
        hist.add_column("model")
        hist.add_column("0 " + "·" * max(len(self.bin_edges) - 5, 1) + " 1")
        hist.add_column("counts")
        for name, counts in hists:
            hist.add_row(Text(name), _spark(counts), " ".join(str(c) for c in counts))
        parts: list = [table, hist]
        if self.pairs:
            pairs = Table(title="Pairwise tests on the same samples (Δ = a − b)", expand=False)
            pairs.add_column("")
            for p in self.pairs:
                pairs.add_column(Text(f"a={p.a}, b={p.b}"), justify="right")
            for label, cells in self._pair_rows():
                pairs.add_row(label, *map(Text, cells))
            parts.append(pairs)
        parts.append(Text("\n".join(self.verdict()), style="bold"))
        return parts

    def to_text(self, width: int = 100, color: bool = False) -> str:
        """The comparison as plain (or ANSI-coloured) terminal text."""
        from rich.console import Console

        buf = io.StringIO()
        console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None)
        for part in self.renderables():
            console.print(part)
        return buf.getvalue()

    def __str__(self) -> str:
        return self.to_text()

    def to_markdown(self) -> str:
        """The comparison as Markdown."""
        names = [_md(n) for n in self.names]
        out = [f"# Model comparison: {self.n_samples} samples, {self.n_classes} classes", ""]
        out += ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for key in self._rows():
            best = self._best(key)
            cells = [f"**{_fmt(m.value(key))}**" if m.name == best else _fmt(m.value(key)) for m in self.models]
            out.append(f"| {_LABELS[key]} | " + " | ".join(cells) + " |")
        what, hists = self._histograms()
        edges = self.bin_edges
        out += ["", f"## Histogram of {what}", ""]
        out += ["| bin | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for i in range(len(edges) - 1):
            out.append(f"| {edges[i]:.3g}–{edges[i + 1]:.3g} | " + " | ".join(str(c[i]) for _, c in hists) + " |")
        if self.pairs:
            out += ["", "## Pairwise tests on the same samples (Δ = a − b)", ""]
            out += ["| | " + " | ".join(f"a={_md(p.a)}, b={_md(p.b)}" for p in self.pairs) + " |"]
            out += ["|---|" + "---:|" * len(self.pairs)]
            for label, cells in self._pair_rows():
                out.append(f"| {label} | " + " | ".join(cells) + " |")
        out += ["", *[f"- {_md(line)}" for line in self.verdict()], ""]
        return "\n".join(out)


# ----------------------------------------------------------------------------
# formatting helpers
def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"
    return str(value)


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p >= 1e-300 else "<1e-300"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def _spark(counts: list[int]) -> str:
    top = max(counts) if counts else 0
    if top == 0:
        return " " * len(counts)
    return "".join(_BLOCKS[0 if c == 0 else max(1, round(c / top * (len(_BLOCKS) - 1)))] for c in counts)


# ----------------------------------------------------------------------------
# inputs
@dataclass
class _Entry:
    name: str
    source: str
    probs: np.ndarray
    kind: str
    y: np.ndarray | None = None
    class_names: list[str] | None = None


def _is_path(value) -> bool:
    return isinstance(value, str) or hasattr(value, "__fspath__")


def _validate_names(models_or_predictions) -> dict:
    if not isinstance(models_or_predictions, dict):
        raise InvalidInputError(
            "models_or_predictions must be a dict mapping a name to a model, a whylow.Split with predictions, "
            f"a predictions array or a file path, got {type(models_or_predictions).__name__}."
        )
    if len(models_or_predictions) < 2:
        raise InvalidInputError(
            f"compare needs at least two models or prediction sets, got {len(models_or_predictions)}; "
            "use whylow.diagnose to look at one model."
        )
    for name in models_or_predictions:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"Model names must be non-empty strings, got {name!r}.")
    return models_or_predictions


def _prediction_entry(name: str, split, source: str, auto: bool = False) -> _Entry:
    from whylow.inputs import predictions_to_probs

    if split.probs is None and split.logits is None:
        raise InvalidInputError(
            f"The predictions of {name!r} ({source}) hold no probs or logits; give a file or Split with predictions, or a model."
        )
    values, kind = (split.logits, "logits") if split.logits is not None else (split.probs, "probs")
    label = f"The predictions of {name!r}" if auto else f"The {kind} of {name!r}"
    probs, pkind = predictions_to_probs(values, label, "auto" if auto else kind)
    y = None
    if split.y is not None:
        from whylow.inputs import Split, prepare_splits

        # Labels are validated and mapped to ids exactly as for any split.
        data, _ = prepare_splits({"test": Split(y=split.y, class_names=split.class_names)}, class_names=split.class_names)
        y = data["test"].y
    return _Entry(name, source, probs, pkind, y, split.class_names)


def _model_entry(name: str, value, test, progress: bool) -> _Entry:
    from whylow.inputs import predictions_to_probs
    from whylow.models import as_predictor, load_model

    if test is None or test.x is None:
        raise InvalidInputError(
            f"{name!r} is a model, so the test split needs inputs x to run it on; give --test with x, or predictions instead of a model."
        )
    if _is_path(value):
        predictor = load_model(value)
        source = f"model ({Path(value).name})"
    else:
        predictor = as_predictor(value, data_layout=None if test.layout == "tabular" else test.layout)
        source = f"model ({getattr(predictor, 'kind', type(value).__name__)})"
    raw = predictor.predict(test.x, progress=progress)
    kind = {"probs": "probs", "logits": "logits"}.get(getattr(predictor, "output", None) or "", "auto")
    probs, pkind = predictions_to_probs(raw, f"The output of model {name!r}", kind, test.n)
    return _Entry(name, source, probs, pkind)


def _entry(name: str, value, test, progress: bool) -> _Entry:
    from whylow.inputs import Split, load_split

    if isinstance(value, Split):
        return _prediction_entry(name, value, "predictions")
    if isinstance(value, dict) and ("probs" in value or "logits" in value):
        return _prediction_entry(name, Split(**value), "predictions")
    if isinstance(value, np.ndarray):
        return _prediction_entry(name, Split(probs=value), "predictions", auto=True)
    if _is_path(value):
        path = Path(value)
        if path.suffix.lower() in PREDICTION_SUFFIXES:
            return _prediction_entry(name, load_split(path, f"{name!r} predictions"), f"predictions ({path.name})")
        if not path.exists():
            raise InvalidInputError(f"The file for {name!r}, {str(path)!r}, does not exist.")
    return _model_entry(name, value, test, progress)


# ----------------------------------------------------------------------------
# statistics
def _model_stats(entry: _Entry, y: np.ndarray | None, edges: np.ndarray) -> tuple[ModelStats, dict]:
    from scipy.special import xlogy

    from whylow import metrics

    probs = entry.probs
    n, k = probs.shape
    conf = probs.max(axis=1)
    sharp = (conf - 1.0 / k) / (1.0 - 1.0 / k)
    entropy = -xlogy(probs, probs).sum(axis=1) / math.log(k)
    if y is not None:
        summary = metrics.summary(y, probs)
        values = {key: summary[key] for key in _METRIC_KEYS}
    else:
        values = {key: None for key in _METRIC_KEYS}
        values["mean_confidence"] = float(conf.mean())
    q10, q50, q90 = np.quantile(conf, [0.1, 0.5, 0.9])
    stats = ModelStats(
        name=entry.name,
        source=entry.source,
        prediction_kind=entry.kind,
        metrics=values,
        sharpness=float(sharp.mean()),
        mean_entropy=float(entropy.mean()),
        extreme_fraction=float(np.mean(conf >= EXTREME_CONFIDENCE)),
        confidence_quantiles={"p10": float(q10), "p50": float(q50), "p90": float(q90)},
        confidence_hist=np.histogram(conf, bins=edges)[0].tolist(),
        positive_hist=np.histogram(probs[:, 1], bins=edges)[0].tolist() if k == 2 else None,
    )
    per_sample = {"conf": conf}
    if y is not None:
        p_true = probs[np.arange(n), y]
        per_sample["correct"] = probs.argmax(axis=1) == y
        per_sample["nll"] = -np.log(np.clip(p_true, metrics.LOG_EPS, 1.0))
    return stats, per_sample


def _paired_wilcoxon(diff: np.ndarray) -> float:
    from scipy.stats import wilcoxon

    if not np.any(diff != 0):
        return 1.0
    return float(wilcoxon(diff).pvalue)


def _paired_mean_test(diff: np.ndarray) -> float:
    """Two-sided paired t-test of ``mean(diff) == 0`` (1.0 when every difference is 0)."""
    from scipy.stats import ttest_1samp

    if len(diff) < 2 or not np.any(diff != diff[0]):
        return 1.0 if not np.any(diff) else 0.0
    return float(ttest_1samp(diff, 0.0).pvalue)


def _pair_test(a: ModelStats, b: ModelStats, sa: dict, sb: dict) -> PairTest:
    from scipy.stats import binomtest, ks_2samp

    ks = ks_2samp(sa["conf"], sb["conf"])
    w = _paired_wilcoxon(sa["conf"] - sb["conf"])
    diff = a.sharpness - b.sharpness
    closer = None
    if ks.pvalue < ALPHA and w < ALPHA and diff != 0:
        closer = a.name if diff > 0 else b.name
    test = PairTest(a.name, b.name, diff, float(ks.statistic), float(ks.pvalue), w, closer)
    if "correct" in sa:
        only_a = int(np.count_nonzero(sa["correct"] & ~sb["correct"]))
        only_b = int(np.count_nonzero(sb["correct"] & ~sa["correct"]))
        test.accuracy_diff = a.metrics["accuracy"] - b.metrics["accuracy"]
        test.mcnemar_pvalue = float(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
        test.log_loss_diff = a.metrics["log_loss"] - b.metrics["log_loss"]
        test.log_loss_pvalue = _paired_mean_test(sa["nll"] - sb["nll"])
    return test


def compare(
    test,
    models_or_predictions: dict[str, Any],
    class_names=None,
    *,
    layout: str | None = None,
    n_bins: int = 10,
    progress: bool = False,
) -> Comparison:
    """Compare models (or their predictions) on the same test data.

    Parameters
    ----------
    test : whylow.Split, (x, y) tuple, path, or None
        The shared data: ``x`` to run models on, ``y`` for the metrics. May be
        None when every entry is a set of predictions; labels then come from
        the prediction files (which must agree with each other).
    models_or_predictions : dict of str to model, Split, ndarray or path
        Two or more entries, name -> what to compare: a model
        (``torch.nn.Module``, Keras, scikit-learn, callable, or a model file
        ``.pt``/``.pt2``/``.onnx``/``.keras``), a `whylow.Split` with
        ``probs`` or ``logits``, an array of shape (n_samples, n_classes) or
        (n_samples,), or a prediction file (``.npz``, ``.csv``, ``.parquet``).
    class_names : list of str, optional
        Names of the classes in id order.
    layout : {"NHWC", "NCHW", "NHW", "tabular"}, optional
        Layout of the test ``x`` when it cannot be inferred.
    n_bins : int, default 10
        Equal-width histogram bins over [0, 1].
    progress : bool, default False
        Show a progress bar while running models.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> import numpy as np, whylow
    >>> from whylow.compare import compare
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 500)
    >>> soft = np.where(y == 1, 0.7, 0.3)
    >>> sharp = np.where(y == 1, 0.99, 0.01)
    >>> c = compare(whylow.Split(y=y), {"sharp": sharp, "soft": soft})
    >>> c.sharpest
    'sharp'
    >>> round(c["soft"].sharpness, 3)
    0.4
    """
    from whylow.inputs import as_split, prepare_splits

    entries_in = _validate_names(models_or_predictions)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or not 2 <= n_bins <= 1000:
        raise InvalidInputError(f"n_bins must be an integer from 2 to 1000, got {n_bins!r}.")
    test_data, names_from_test = None, None
    raw_test = as_split(test, "test") if test is not None else None
    if raw_test is not None:
        splits, _ = prepare_splits({"test": raw_test}, class_names=class_names, layout=layout)
        test_data = splits["test"]
        names_from_test = raw_test.class_names
    entries = [_entry(name, value, test_data, progress) for name, value in entries_in.items()]

    ks = {e.probs.shape[1] for e in entries}
    if len(ks) > 1:
        detail = ", ".join(f"{e.name}: {e.probs.shape[1]}" for e in entries)
        raise InvalidInputError(f"The models predict different numbers of classes ({detail}); compare models of the same task.")
    n_classes = ks.pop()
    ns = {e.probs.shape[0] for e in entries} | ({test_data.n} if test_data is not None else set())
    if len(ns) > 1:
        detail = ", ".join(f"{e.name}: {e.probs.shape[0]}" for e in entries)
        if test_data is not None:
            detail += f", test split: {test_data.n}"
        raise InvalidInputError(f"The predictions cover different numbers of samples ({detail}); they must all be on the same test samples.")
    n_samples = ns.pop()

    y = test_data.y if test_data is not None else None
    y_from = "the test split"
    for e in entries:
        if e.y is None:
            continue
        if y is None:
            y, y_from = e.y, f"the predictions of {e.name!r}"
        elif not np.array_equal(e.y, y):
            bad = int(np.count_nonzero(e.y != y))
            raise InvalidInputError(
                f"The labels in the predictions of {e.name!r} differ from those of {y_from} at {bad} of {n_samples} samples; "
                "all predictions must be on the same samples in the same order."
            )
    if y is not None and y.size and int(y.max()) >= n_classes:
        raise InvalidInputError(
            f"The labels go up to {int(y.max())} but the models predict {n_classes} classes (ids 0 to {n_classes - 1})."
        )

    names = class_names or names_from_test or next((e.class_names for e in entries if e.class_names), None)
    names = [str(c) for c in names] if names is not None else [str(k) for k in range(n_classes)]
    if len(names) != n_classes:
        raise InvalidInputError(f"{len(names)} class names were given but the models predict {n_classes} classes; they must match.")

    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    stats, per_sample = [], []
    for e in entries:
        s, ps = _model_stats(e, y, edges)
        stats.append(s)
        per_sample.append(ps)
    pairs = [_pair_test(stats[i], stats[j], per_sample[i], per_sample[j]) for i, j in combinations(range(len(stats)), 2)]
    return Comparison(
        models=stats,
        pairs=pairs,
        n_samples=int(n_samples),
        n_classes=int(n_classes),
        class_names=names,
        has_labels=y is not None,
        bin_edges=np.round(edges, 12).tolist(),
        probs={e.name: e.probs for e in entries},
        y_true=y,
    )


def scenario_models(scenario) -> dict[str, Any]:
    """The models a scenario carries for comparison (the seed's Example 2: over-parametrised vs reduced).

    Parameters
    ----------
    scenario : whylow.scenarios.Scenario

    Returns
    -------
    dict of str to model or ndarray
        Name -> model (or test predictions), at least two entries.
    """
    notes = scenario.notes or {}
    found: dict[str, Any] = {}
    if isinstance(notes.get("models"), dict):
        found.update(notes["models"])
    if "reduced_model" in notes:
        found.setdefault("over-parametrised" if scenario.model is not None else "model", scenario.model)
        found["reduced"] = notes["reduced_model"]
    for key in ("test_probs", "test_predictions", "predictions"):
        if isinstance(notes.get(key), dict):
            for name, values in notes[key].items():
                found.setdefault(str(name), np.asarray(values))
    found = {k: v for k, v in found.items() if v is not None}
    if len(found) < 2:
        raise InvalidInputError(
            f"The scenario {scenario.name!r} carries no second model to compare with; use one whose notes hold a "
            "'reduced_model' or per-model test predictions (such as seed-2)."
        )
    return found
