"""``whylow diagnose``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from whylow.cli import app

__all__ = ["diagnose_command", "write_outputs"]


class FailOn(str, Enum):
    warning = "warning"
    critical = "critical"


def write_outputs(report, json_path=None, markdown_path=None, html_path=None, quiet=False) -> None:
    """Print the terminal report and write the requested files (atomically)."""
    from rich.console import Console

    from whylow.report.text import print_report

    if not quiet:
        print_report(report, Console())
    for path, save in ((json_path, report.save_json), (markdown_path, report.save_markdown), (html_path, report.save_html)):
        if path is not None:
            save(path)
            if not quiet:
                typer.echo(f"wrote {path}")


@app.command("diagnose")
def diagnose_command(
    test: Path = typer.Option(..., "--test", help="Test split: .npz (x, y, probs|logits), image folder, or .csv/.parquet predictions."),
    train: Optional[Path] = typer.Option(None, "--train", help="Training split, same forms as --test."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation split, same forms as --test."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file: TorchScript/torch.export .pt/.pt2, .onnx or .keras."),
    history: Optional[Path] = typer.Option(None, "--history", help="Training history JSON: {'loss': [...], 'val_loss': [...], ...}."),
    class_names: Optional[Path] = typer.Option(None, "--class-names", help="Class names: JSON list or one name a line."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Layout of x when ambiguous: NHWC, NCHW, NHW or tabular."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the JSON report here."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Write a Markdown report here."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write the HTML report here."),
    fail_on: Optional[FailOn] = typer.Option(None, "--fail-on", help="Exit 1 when a finding at or above this severity is found."),
    seed: int = typer.Option(0, "--seed", help="Seed for bootstrap and cross-fitting."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; only write files and set the exit code."),
):
    """Diagnose why predictions are low and report ranked causes with fixes."""
    from whylow.diagnose import diagnose

    report = diagnose(
        test=test,
        train=train,
        val=val,
        model=model,
        history=history,
        class_names=class_names,
        layout=layout,
        seed=seed,
        progress=not quiet,
    )
    write_outputs(report, json_path, markdown_path, html_path, quiet)
    if fail_on is not None and report.fails(fail_on.value):
        raise typer.Exit(1)
