"""`diagnose`: inputs → evidence → findings → report."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from whylow import metrics
from whylow.checks import registered_checks, skip_reason
from whylow.context import Context
from whylow.errors import InvalidInputError
from whylow.inputs import as_split, prepare_splits
from whylow.inputs.files import as_path, limits_scope, load_json
from whylow.inputs.loaders import load_class_names
from whylow.inputs.options import validate_options
from whylow.inputs.prepare import check_class_names
from whylow.inputs.preprocess import apply_preprocessing, preprocessing_by_split
from whylow.progress import Activity
from whylow.report import CheckStatus, Report, rank_findings

__all__ = ["diagnose", "load_history"]


def load_history(history) -> dict[str, list[float]] | None:
    """Validate a training history: a Keras ``History``, a dict of per-epoch lists, or a JSON file path.

    NaN and infinite values are kept: they are evidence of divergence. A file
    is read within the current `whylow.inputs.files.Limits` (regular files
    only, bounded size, JSON depth and number length; UTF-8 with or without a
    byte-order mark).
    """
    if history is None:
        return None
    if hasattr(history, "history") and isinstance(history.history, dict):
        history = history.history
    if isinstance(history, (str, bytes)) or hasattr(history, "__fspath__"):
        path = as_path(history, "The history file")
        history = load_json(path, "The history file")
        where = f"The history file {str(path)!r}"
        inside = f"In the history file {str(path)!r}, "
    else:
        where = "The training history"
        inside = "In the training history, "
    if not isinstance(history, Mapping):
        raise InvalidInputError(
            f"{where} must be a dict of per-epoch lists such as {{'loss': [...], 'val_loss': [...]}}, "
            f"got {type(history).__name__}."
        )
    clean = {}
    for key, values in history.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"{where} has the key {_short(key)}; keys are metric names such as 'loss'.")
        if isinstance(values, np.ndarray):
            if values.ndim != 1:
                raise InvalidInputError(f"{inside}{key!r} must be a flat list of per-epoch numbers, got shape {values.shape}.")
            values = values.tolist()
        if not isinstance(values, (list, tuple)):
            raise InvalidInputError(f"{inside}{key!r} must be a list of per-epoch numbers, got {type(values).__name__}.")
        arr = []
        for epoch, v in enumerate(values):
            if isinstance(v, np.generic):
                v = v.item()
            if v is None:
                arr.append(float("nan"))
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidInputError(f"{inside}{key!r} holds {_short(v)} at epoch {epoch}, which is not a number.")
            try:
                arr.append(float(v))
            except OverflowError:
                raise InvalidInputError(
                    f"{inside}{key!r} holds a number too large for a float at epoch {epoch} ({len(str(v))} digits)."
                ) from None
        clean[key] = arr
    lengths = {len(v) for v in clean.values()}
    if not clean or lengths == {0}:
        raise InvalidInputError(f"{where} is empty: it has no per-epoch values.")
    return clean


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_SEED_MAX = 2**32 - 1


def check_seed(seed, what: str = "seed") -> int:
    """``seed`` as an int in [0, 2**32 - 1], or an InvalidInputError naming ``what``."""
    if isinstance(seed, np.integer):
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"{what} must be an integer from 0 to {_SEED_MAX}, got {_short(seed)} ({type(seed).__name__}).")
    if not 0 <= seed <= _SEED_MAX:
        raise InvalidInputError(f"{what} must be an integer from 0 to {_SEED_MAX}, got {_short(seed)}.")
    return seed


def _check_arguments(class_names, layout, options, seed, progress):
    """Validate diagnose()'s plain arguments before any input is read; returns them cleaned."""
    seed = check_seed(seed)
    if not isinstance(progress, (bool, np.bool_)):
        raise InvalidInputError(f"progress must be True or False, got {_short(progress)}.")
    if layout is not None:
        if not isinstance(layout, str) or layout.upper() not in ("NHWC", "NCHW", "NHW", "TABULAR"):
            raise InvalidInputError(f"layout must be one of 'NHWC', 'NCHW', 'NHW' or 'tabular', got {_short(layout)}.")
    thresholds, limits = validate_options(options)
    if class_names is not None and not (isinstance(class_names, (str, bytes)) or hasattr(class_names, "__fspath__")):
        class_names = check_class_names(class_names)
    return class_names, layout, thresholds, limits, seed, bool(progress)


def _model_predictor(model, layout):
    if model is None:
        return None
    from whylow.models import as_predictor, load_model

    layout = None if layout == "tabular" else layout  # adapters take None for N×D features

    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        return load_model(as_path(model, "The model file"), data_layout=layout)
    return as_predictor(model, data_layout=layout)


def _read_inputs(activity: Activity, declared: dict, limits, *, train, val, test, model, history, class_names, layout,
                 thresholds, seed) -> Context:
    """Read and validate every input, apply the declared preprocessing, load the model: the `Context` checks run on."""
    with limits_scope(limits):
        if class_names is not None and (isinstance(class_names, (str, bytes)) or hasattr(class_names, "__fspath__")):
            class_names = load_class_names(as_path(class_names, "The class-names file"))
        raw = {}
        for name, value in (("train", train), ("val", val), ("test", test)):
            if value is not None:
                activity.stage(f"reading the {name} split")
            raw[name] = as_split(value, name)
            if name in declared and raw[name] is not None:
                activity.stage(f"preprocessing the {name} split as declared")
                raw[name] = apply_preprocessing(raw[name], declared[name], name)
        splits, names = prepare_splits(raw, class_names=class_names, layout=layout)
        for name, prep in declared.items():
            if name in splits:
                splits[name].preprocessing = prep.steps()
        if model is not None:
            activity.stage("loading the model")
        return Context(
            splits=splits,
            n_classes=len(names),
            class_names=names,
            model=_model_predictor(model, splits["test"].layout),
            history=load_history(history),
            options=thresholds,
            seed=seed,
        )


def _run_checks(ctx: Context, activity: Activity) -> tuple[list, list[CheckStatus]]:
    """Every registered check that can run; a failing check is recorded, never raised."""
    findings, statuses = [], []
    for check_cls in registered_checks():
        check = check_cls()
        reason = skip_reason(check, ctx)
        if reason is not None:
            statuses.append(CheckStatus(check.name, "skipped", reason))
            continue
        activity.stage(f"checking {check.name}")
        try:
            found = check.run(ctx) or []
        except Exception as exc:  # noqa: BLE001 - one failing check never kills the diagnosis
            statuses.append(CheckStatus(check.name, "failed", f"{type(exc).__name__}: {exc}"))
            continue
        for f in found:
            f.check = f.check or check.name
        findings.extend(found)
        statuses.append(CheckStatus(check.name, "ran", None))
    return findings, statuses


def _fill_predictions(ctx: Context, progress: bool, activity: Activity | None = None) -> None:
    """Run the model on splits that have inputs but no predictions (given predictions win)."""
    if ctx.model is None:
        return
    for s in ctx.splits.values():
        if s.probs is None and s.x is not None:
            if activity is not None:
                activity.stage(f"running the model on the {s.name} split")
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


#: Up to this many classes the report keeps the dense confusion matrix (its heatmap is drawn up to 200).
_DENSE_CONFUSION_CLASSES = 200


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
        if ctx.n_classes <= _DENSE_CONFUSION_CLASSES:
            art["confusion_matrix"] = metrics.confusion_matrix(test.y, test.y_pred, ctx.n_classes).tolist()
        else:  # K×K would not fit (20,000 classes: 400 million cells); the report only lists the top confusions
            art["confusion_cells"] = metrics.confusion_cells(test.y, test.y_pred, ctx.n_classes)
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
    preprocess: dict | None = None,
    transform=None,
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
    preprocess : dict, optional
        What the user's pipeline does to a split's stored inputs before the model sees them,
        ``{"test": {"scale": 1 / 255, "mean": "imagenet", "std": "imagenet", "color": "rgb", "layout": "NHWC"}}``
        (``"*"`` for every split); see `whylow.inputs.preprocess`. The report lists what was applied.
    transform : callable or dict of str to callable, optional
        ``x -> x`` run on chunks of a split's inputs after ``preprocess`` (one callable for every split, or one per split).
    options : dict, optional
        Threshold overrides, ``{"<check>.<threshold>": value}``, and reading
        limits, ``{"limits.<name>": value}`` (see `whylow.inputs.files.Limits`).
        Unknown names and values of the wrong type or range raise
        `InvalidInputError` (with "did you mean").
    seed : int
        Seed for bootstrap, cross-fitting and proxies, 0 to 2**32 - 1; the same seed gives the same report.
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
    class_names, layout, thresholds, limits, seed, progress = _check_arguments(class_names, layout, options, seed, progress)
    declared = preprocessing_by_split(preprocess, transform)
    with Activity(progress) as activity:
        ctx = _read_inputs(activity, declared, limits, train=train, val=val, test=test, model=model, history=history,
                           class_names=class_names, layout=layout, thresholds=thresholds, seed=seed)
        _fill_predictions(ctx, progress, activity)
        if len(ctx.class_names) != ctx.n_classes:
            ctx.class_names = [str(k) for k in range(ctx.n_classes)]
        findings, statuses = _run_checks(ctx, activity)
        activity.stage("computing the metrics")
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
