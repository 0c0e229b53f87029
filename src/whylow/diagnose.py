"""`diagnose`: inputs → evidence → findings → report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from whylow import metrics
from whylow.checks import registered_checks, skip_reason
from whylow.context import Context
from whylow.errors import InvalidInputError
from whylow.inputs import as_split, prepare_splits
from whylow.inputs.loaders import load_class_names
from whylow.report import CheckStatus, Report, rank_findings

__all__ = ["diagnose", "load_history"]


def load_history(history) -> dict[str, list[float]] | None:
    """Validate a training history: a Keras ``History``, a dict of per-epoch lists, or a JSON file path.

    NaN and infinite values are kept: they are evidence of divergence.
    """
    if history is None:
        return None
    if hasattr(history, "history") and isinstance(history.history, dict):
        history = history.history
    if isinstance(history, (str, Path)):
        path = Path(history)
        if not path.is_file():
            raise InvalidInputError(f"The history file {str(path)!r} does not exist.")
        try:
            history = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"The history file {str(path)!r} is not valid JSON ({exc}).") from None
    if not isinstance(history, dict):
        raise InvalidInputError(
            f"The training history must be a dict of per-epoch lists such as {{'loss': [...], 'val_loss': [...]}}, "
            f"got {type(history).__name__}."
        )
    clean = {}
    for key, values in history.items():
        if not isinstance(values, (list, tuple, np.ndarray)):
            raise InvalidInputError(f"The training history's {key!r} must be a list of per-epoch numbers, got {type(values).__name__}.")
        try:
            arr = [float("nan") if v is None else float(v) for v in values]
        except (TypeError, ValueError):
            raise InvalidInputError(f"The training history's {key!r} holds values that are not numbers.") from None
        clean[str(key)] = arr
    lengths = {len(v) for v in clean.values()}
    if not clean or lengths == {0}:
        raise InvalidInputError("The training history is empty: it has no per-epoch values.")
    return clean


def _model_predictor(model, layout):
    if model is None:
        return None
    from whylow.models import as_predictor, load_model

    layout = None if layout == "tabular" else layout  # adapters take None for N×D features

    if isinstance(model, (str, Path)):
        return load_model(model, data_layout=layout)
    return as_predictor(model, data_layout=layout)


def _fill_predictions(ctx: Context, progress: bool) -> None:
    """Run the model on splits that have inputs but no predictions (given predictions win)."""
    if ctx.model is None:
        return
    for s in ctx.splits.values():
        if s.probs is None and s.x is not None:
            try:
                s.probs, s.prediction_kind = ctx.run_model(s.x, progress=progress)
            except InvalidInputError as exc:
                raise InvalidInputError(f"Running the model on the {s.name} split failed: {exc}") from None
            if s.probs.shape[1] != ctx.n_classes:
                if s.y is not None and s.y.max() >= s.probs.shape[1]:
                    raise InvalidInputError(
                        f"The model outputs {s.probs.shape[1]} classes but the {s.name} labels go up to {int(s.y.max())}."
                    )
                ctx.n_classes = s.probs.shape[1]
            s.prediction_source = "model"


def _metrics_section(ctx: Context) -> tuple[dict, list, dict, dict]:
    """Summary, per-class rows, bootstrap intervals and baselines on the test split."""
    test = ctx.test
    empty = {k: None for k in ("accuracy", "balanced_accuracy", "log_loss", "brier", "ece", "mean_confidence")}
    if test.probs is None:
        return {**empty, "n_test": test.n}, [], {}, {}
    if test.y is None:
        return {**empty, "mean_confidence": metrics.mean_confidence(test.probs), "n_test": test.n}, [], {}, {}
    summary = metrics.summary(test.y, test.probs)
    pcm = metrics.per_class_metrics(test.y, test.probs)
    per_class = [
        {
            "class": ctx.class_names[k],
            "support": int(pcm["support"][k]),
            "precision": float(pcm["precision"][k]),
            "recall": float(pcm["recall"][k]),
            "f1": float(pcm["f1"][k]),
            "mean_true_prob": None if math.isnan(pcm["mean_true_prob"][k]) else float(pcm["mean_true_prob"][k]),
        }
        for k in range(ctx.n_classes)
    ]
    intervals = {k: [float(lo), float(hi)] for k, (lo, hi) in metrics.bootstrap_ci(test.y, test.probs, seed=ctx.seed).items()}
    train = ctx.split("train")
    train_priors = None
    if train is not None and train.y is not None:
        train_priors = np.bincount(train.y, minlength=ctx.n_classes) / train.n
    baselines = metrics.baselines(test.y, ctx.n_classes, train_priors=train_priors)
    return summary, per_class, intervals, baselines


def _core_artifacts(ctx: Context) -> dict:
    """Data behind the report's own plots: confusion matrix, confidence histograms, class counts, thumbnails."""
    from whylow.report.thumbnails import collect_thumbnails

    art: dict = {}
    edges = np.linspace(0.0, 1.0, 21)
    for s in ctx.splits.values():
        if s.y is not None:
            art[f"class_counts:{s.name}"] = np.bincount(s.y, minlength=ctx.n_classes).tolist()
        if s.probs is not None and s.y is not None:
            conf = s.probs.max(axis=1)
            correct = s.probs.argmax(axis=1) == s.y
            art[f"confidence_hist:{s.name}"] = {
                "bin_edges": edges.tolist(),
                "count_correct": np.histogram(conf[correct], edges)[0].tolist(),
                "count_wrong": np.histogram(conf[~correct], edges)[0].tolist(),
            }
    test = ctx.test
    if test.probs is not None and test.y is not None:
        art["confusion_matrix"] = metrics.confusion_matrix(test.y, test.y_pred, ctx.n_classes).tolist()
    try:
        art["thumbnails"] = collect_thumbnails(ctx)
    except Exception as exc:  # noqa: BLE001 - thumbnails are decoration; never fail a diagnosis for them
        art["thumbnails_error"] = f"{type(exc).__name__}: {exc}"
    return art


def diagnose(
    test,
    *,
    train=None,
    val=None,
    model=None,
    history=None,
    class_names=None,
    layout: str | None = None,
    options: dict | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Report:
    """Diagnose why a classifier's predictions are low.

    Parameters
    ----------
    test : Split, (x, y) tuple, path, or torch Dataset/DataLoader
        The evaluation split (required).
    train, val : same types as ``test``, optional
        Training and validation splits; more input enables more checks.
    model : torch.nn.Module, Keras model, sklearn estimator, callable or path, optional
        Used to predict splits without predictions and to verify fixes.
    history : dict, Keras History or path to JSON, optional
        Per-epoch training history.
    class_names : list of str or path, optional
    layout : {"NHWC", "NCHW", "NHW", "tabular"}, optional
        Layout of ``x`` when its shape is ambiguous.
    options : dict, optional
        Threshold overrides, ``{"<check>.<threshold>": value}``.
    seed : int
        Seed for bootstrap, cross-fitting and proxies; the same seed gives the same report.
    progress : bool
        Show a progress bar while running the model.

    Returns
    -------
    Report

    Examples
    --------
    >>> import numpy as np, whylow
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 300)
    >>> probs = np.full((300, 3), 0.1); probs[np.arange(300), y] = 0.8
    >>> report = whylow.diagnose(test=whylow.Split(y=y, probs=probs))
    >>> report.summary["accuracy"]
    1.0
    """
    if isinstance(class_names, (str, Path)):
        class_names = load_class_names(class_names)
    raw = {name: as_split(value, name) for name, value in (("train", train), ("val", val), ("test", test))}
    splits, names = prepare_splits(raw, class_names=class_names, layout=layout)
    ctx = Context(
        splits=splits,
        n_classes=len(names),
        class_names=names,
        model=_model_predictor(model, splits["test"].layout),
        history=load_history(history),
        options=dict(options or {}),
        seed=seed,
    )
    _fill_predictions(ctx, progress)
    if len(ctx.class_names) != ctx.n_classes:
        ctx.class_names = [str(k) for k in range(ctx.n_classes)]
    findings, statuses = [], []
    for check_cls in registered_checks():
        check = check_cls()
        reason = skip_reason(check, ctx)
        if reason is not None:
            statuses.append(CheckStatus(check.name, "skipped", reason))
            continue
        try:
            found = check.run(ctx) or []
        except Exception as exc:  # noqa: BLE001 - one failing check never kills the diagnosis
            statuses.append(CheckStatus(check.name, "failed", f"{type(exc).__name__}: {exc}"))
            continue
        for f in found:
            f.check = f.check or check.name
        findings.extend(found)
        statuses.append(CheckStatus(check.name, "ran", None))
    summary, per_class, intervals, baselines = _metrics_section(ctx)
    ctx.artifacts["core"] = _core_artifacts(ctx)
    kinds = [s.prediction_kind for s in ctx.splits.values() if s.prediction_kind]
    inputs = {
        "splits": {name: s.describe() for name, s in ctx.splits.items()},
        "model": getattr(ctx.model, "kind", None),
        "prediction_kind": ctx.test.prediction_kind or next(iter(kinds), None),
        "n_classes": ctx.n_classes,
        "class_names": ctx.class_names,
        "layout": ctx.test.layout,
        "history": sorted(ctx.history) if ctx.history else None,
    }
    return Report(
        inputs=inputs,
        summary=summary,
        findings=rank_findings(findings),
        checks=statuses,
        per_class=per_class,
        intervals=intervals,
        baselines=baselines,
        artifacts=ctx.artifacts,
    )
