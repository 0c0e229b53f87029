"""``whylow calibrate``: fit a temperature (or vector) calibrator on validation predictions and save it as JSON."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from whylow.cli import app, fail

__all__ = ["calibrate_command", "fit_and_measure"]


class Method(str, Enum):
    temperature = "temperature"
    vector = "vector"


def _labelled(path: Path, name: str):
    """Load and validate a split file; return (y, logits-or-None, probs) or exit 2 naming what is missing."""
    from whylow.inputs import load_split, prepare_splits

    raw = load_split(path, name)
    # prepare_splits insists on a test split; validating the same split under both names keeps the messages
    # about `name` (splits are validated in train, val, test order)
    splits, _ = prepare_splits({"val": raw, "test": raw} if name == "val" else {"test": raw})
    data = splits[name]
    if data.y is None or data.probs is None:
        missing = " and ".join(w for w, v in (("labels (y)", data.y), ("predictions (probs or logits)", data.probs)) if v is None)
        fail(f"The {name} split {str(path)!r} has no {missing}; calibrating needs both.")
    logits = None
    if raw.logits is not None:
        logits = np.asarray(raw.logits, dtype=np.float64)
    return data.y, logits, data.probs


def _scores(logits, probs) -> dict:
    return {"logits": logits} if logits is not None else {"probs": probs}


def _measure(y, before, after) -> dict:
    from whylow import metrics

    n_bins = 15  # the ECE of `diagnose` and `compare`: 15 equal-width bins (whylow.metrics.ece's default)
    return {
        "n": int(len(y)),
        "log_loss_before": metrics.log_loss(y, before),
        "log_loss_after": metrics.log_loss(y, after),
        "ece_before": metrics.ece(y, before, n_bins=n_bins),
        "ece_after": metrics.ece(y, after, n_bins=n_bins),
        "accuracy_before": metrics.accuracy(y, before),
        "accuracy_after": metrics.accuracy(y, after),
        "mean_confidence_before": metrics.mean_confidence(before),
        "mean_confidence_after": metrics.mean_confidence(after),
        "n_bins": n_bins,
    }


def fit_and_measure(val: Path, test: Path | None = None, method: str = "temperature", seed: int = 0):
    """Fit a calibrator on ``val`` and measure it on ``test`` (or by cross-fitting on ``val``).

    Returns
    -------
    calibrator : TemperatureScaler or VectorScaler
        Fitted on all of ``val``.
    measured : dict
        ``on`` ("test" or "val (cross-fitted)") and NLL / ECE / accuracy /
        mean confidence before and after.
    """
    from whylow.errors import InvalidInputError
    from whylow.fixes.temperature import TemperatureScaler, VectorScaler, cross_fit, to_logits

    make = (lambda: TemperatureScaler(seed=seed)) if method == "temperature" else (lambda: VectorScaler(seed=seed))
    y_val, logits_val, probs_val = _labelled(val, "val")
    calibrator = make().fit(y_val, **_scores(logits_val, probs_val))
    if test is not None:
        y_test, logits_test, probs_test = _labelled(test, "test")
        if probs_test.shape[1] != probs_val.shape[1]:
            raise InvalidInputError(
                f"The test split has {probs_test.shape[1]} classes but the val split has {probs_val.shape[1]}; they must match."
            )
        if method == "vector" and calibrator.input_ == "logits" and logits_test is None:
            raise InvalidInputError(
                "The vector calibrator was fitted on the val split's logits, so the test split needs logits too (npz key 'logits')."
            )
        after = calibrator.transform(**_scores(logits_test, probs_test))
        return calibrator, {"on": "test", **_measure(y_test, probs_test, after)}
    z, _ = to_logits(**_scores(logits_val, probs_val))
    if len(y_val) < 4:
        raise InvalidInputError(
            f"The val split has only {len(y_val)} samples, too few to cross-fit; pass --test to measure on a test split."
        )
    after, _ = cross_fit(make, y_val, z, seed=seed)
    return calibrator, {"on": "val (two-fold cross-fitted)", **_measure(y_val, probs_val, after)}


@app.command("calibrate")
def calibrate_command(
    val: Path = typer.Option(..., "--val", help="Validation split with labels and predictions: .npz (y, probs|logits) or .csv/.parquet table."),
    out: Path = typer.Option(..., "--out", help="Write the fitted calibrator here as JSON."),
    test: Optional[Path] = typer.Option(None, "--test", help="Labelled split to measure before/after on (default: cross-fit on --val)."),
    method: Method = typer.Option(Method.temperature, "--method", help="temperature (one T) or vector (scale and bias per class)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cross-fitting halves and of fitting subsets (0 to 4294967295)."),
    option: Optional[list[str]] = typer.Option(
        None, "--option", metavar="limits.NAME=VALUE", help="Raise a reading limit, e.g. limits.max_csv_field=1000000; repeatable."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; only write --out."),
):
    """Fit temperature (or vector) scaling on validation predictions, save it as JSON, and show the gain."""
    from whylow.cli.diagnose import check_seed_option
    from whylow.inputs.files import limits_scope
    from whylow.inputs.options import parse_option_args
    from whylow.report.report import check_outputs

    seed = check_seed_option(seed)
    _, limits = parse_option_args(option, only=("limits",))
    check_outputs({"--out": out}, {"--val": val, "--test": test})
    with limits_scope(limits):
        calibrator, m = fit_and_measure(val, test, method.value, seed)
    calibrator.save(out)
    if quiet:
        return
    if method is Method.temperature:
        t = calibrator.temperature_
        meaning = "softens overconfident scores" if t > 1.0 else ("sharpens underconfident scores" if t < 1.0 else "no change")
        typer.echo(f"temperature T = {t:.4g} ({meaning}), fitted on {calibrator.n_samples_} val samples")
    else:
        typer.echo(
            f"vector scaling: scale {np.min(calibrator.scale_):.3g} to {np.max(calibrator.scale_):.3g}, "
            f"bias {np.min(calibrator.bias_):.3g} to {np.max(calibrator.bias_):.3g} over {calibrator.scale_.size} classes, "
            f"fitted on {calibrator.n_samples_} val samples"
        )
    typer.echo(f"measured on {m['on']} (n={m['n']}; ECE with {m['n_bins']} equal-width bins, as in diagnose):")
    typer.echo(f"  {'':8}{'log-loss':>10}{'ECE':>9}{'accuracy':>10}{'mean conf':>11}")
    for when in ("before", "after"):
        typer.echo(
            f"  {when:8}{m['log_loss_' + when]:>10.4f}{m['ece_' + when]:>9.4f}"
            f"{m['accuracy_' + when]:>10.4f}{m['mean_confidence_' + when]:>11.4f}"
        )
    typer.echo(f"wrote {out}")
