"""``whylow diagnose``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from whylow.cli import app, fail

__all__ = ["diagnose_command", "write_outputs"]


class FailOn(str, Enum):
    warning = "warning"
    critical = "critical"


def write_outputs(report, json_path=None, markdown_path=None, html_path=None, quiet=False, verbose=False, examples_csv=None) -> None:
    """Print the terminal report and write the requested files (atomically; pipes and devices in place)."""
    from rich.console import Console

    from whylow.report.text import print_report

    if not quiet:
        print_report(report, Console(), verbose=verbose)
    for path, save in ((json_path, report.save_json), (markdown_path, report.save_markdown), (html_path, report.save_html),
                       (examples_csv, report.save_examples_csv)):
        if path is not None:
            save(path)
            if not quiet:
                typer.echo(f"wrote {path}")


def check_seed_option(seed: int) -> int:
    """``--seed`` within 0 .. 2**32 - 1, or exit 2 with the sentence."""
    from whylow.diagnose import check_seed
    from whylow.errors import InvalidInputError

    try:
        return check_seed(seed, "--seed")
    except InvalidInputError as exc:
        fail(str(exc))


def declared_preprocessing(**values) -> tuple[dict, str | None]:
    """The ``[SPLIT=]VALUE`` options as ``diagnose(preprocess=...)`` and the layout for every split; exit 2 on a bad value.

    ``--layout NCHW`` without a split name stays the global ``layout`` (checked against every split's shape).
    """
    from whylow.errors import InvalidInputError
    from whylow.inputs.preprocess import parse_split_values, preprocessing_by_split

    preprocess: dict[str, dict] = {}
    try:
        for key, given in values.items():
            for split, value in parse_split_values(given, f"--{key}").items():
                preprocess.setdefault(split, {})[key] = value
        layout = preprocess.get("*", {}).pop("layout", None)
        preprocessing_by_split(preprocess, cli=True)  # every value checked before any input is read
    except InvalidInputError as exc:
        fail(str(exc))
    return preprocess, layout


def html_unavailable() -> str | None:
    """None when the HTML renderer can be imported, else why not (the install line)."""
    try:
        import whylow.report.html  # noqa: F401
    except ImportError as exc:  # MissingDependencyError is an ImportError too
        return str(exc) or type(exc).__name__
    return None


@app.command("diagnose")
def diagnose_command(
    test: Path = typer.Option(..., "--test", help="Test split: .npz (x, y, probs|logits), image folder, or .csv/.parquet predictions."),
    train: Optional[Path] = typer.Option(None, "--train", help="Training split, same forms as --test."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation split, same forms as --test."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file: TorchScript/torch.export .pt/.pt2, .onnx or .keras."),
    history: Optional[Path] = typer.Option(None, "--history", help="Training history JSON: {'loss': [...], 'val_loss': [...], ...}."),
    class_names: Optional[Path] = typer.Option(None, "--class-names", help="Class names: JSON list or one name a line."),
    layout: Optional[list[str]] = typer.Option(
        None, "--layout", metavar="[SPLIT=]LAYOUT", help="Layout of x when ambiguous: NHWC, NCHW, NHW or tabular; repeatable."
    ),
    scale: Optional[list[str]] = typer.Option(
        None, "--scale", metavar="[SPLIT=]FACTOR",
        help="Multiply a split's stored inputs by this before the model sees them (e.g. test=1/255); repeatable.",
    ),
    mean: Optional[list[str]] = typer.Option(
        None, "--mean", metavar="[SPLIT=]VALUES",
        help="Subtract this per-channel mean after --scale: 1 or 3 numbers, or imagenet, cifar10, mnist; repeatable.",
    ),
    std: Optional[list[str]] = typer.Option(
        None, "--std", metavar="[SPLIT=]VALUES", help="Divide by this per-channel std after --mean (as --mean); repeatable."
    ),
    color: Optional[list[str]] = typer.Option(
        None, "--color", metavar="[SPLIT=]rgb|grey", help="Convert a split's images to RGB or grey, as the model expects; repeatable."
    ),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the JSON report here (a file, or /dev/stdout)."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown report here."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write the HTML report here."),
    examples_csv: Optional[Path] = typer.Option(
        None, "--examples-csv", help="Write every flagged example (finding, split, index, file, given and suggested label, score) as CSV."
    ),
    fail_on: Optional[FailOn] = typer.Option(None, "--fail-on", help="Exit 1 when a finding at or above this severity is found."),
    option: Optional[list[str]] = typer.Option(
        None,
        "--option",
        metavar="NAME=VALUE",
        help="Override a check threshold (CHECK.THRESHOLD=VALUE, e.g. calibration.min_gap=0.05) or raise a reading "
        "limit (limits.NAME=VALUE, e.g. limits.max_image_pixels=2e8); repeatable.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for bootstrap and cross-fitting (0 to 4294967295)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; only write files and set the exit code."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print each finding's full fix and its evidence."),
):
    """Diagnose why predictions are low and report ranked causes with fixes."""
    from whylow.diagnose import diagnose
    from whylow.inputs.options import parse_option_args
    from whylow.report.report import check_outputs

    # everything that can be checked before the work is checked first: a bad output path must not cost a diagnosis
    seed = check_seed_option(seed)
    options, limits = parse_option_args(option)
    preprocess, layout = declared_preprocessing(layout=layout, scale=scale, mean=mean, std=std, color=color)
    inputs = {"--test": test, "--train": train, "--val": val, "--model": model, "--history": history, "--class-names": class_names}
    check_outputs({"--json": json_path, "--markdown": markdown_path, "--html": html_path, "--examples-csv": examples_csv}, inputs)
    if html_path is not None and (reason := html_unavailable()) is not None:
        fail(f"--html needs the HTML renderer: {reason}")
    limit_options = {f"limits.{k}": v for k, v in vars(limits).items() if v != getattr(type(limits)(), k)}
    report = diagnose(
        test=test,
        train=train,
        val=val,
        model=model,
        history=history,
        class_names=class_names,
        layout=layout,
        preprocess=preprocess,
        options={**options, **limit_options},
        seed=seed,
        progress=not quiet,
    )
    write_outputs(report, json_path, markdown_path, html_path, quiet, verbose, examples_csv)
    if fail_on is not None and report.fails(fail_on.value):
        raise typer.Exit(1)
