"""``whylow compare``: two or more models (or prediction files) on the same data, side by side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from whylow.cli import app, fail
from whylow.errors import InvalidInputError, MissingDependencyError

__all__ = ["compare_command", "default_names"]


def default_names(paths: list[Path]) -> list[str]:
    """Names for models from their files: the stem, or the file name / a counter where stems repeat."""
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        names = [p.name for p in paths]
    if len(set(names)) != len(names):
        names = [f"{n}#{i + 1}" for i, n in enumerate(names)]
    return names


@app.command("compare")
def compare_command(
    test: Optional[Path] = typer.Option(
        None, "--test", help="Shared test data: .npz (x, y), image folder, or .csv/.parquet with labels. Needed with --model."
    ),
    model: Optional[list[Path]] = typer.Option(
        None, "--model", help="A model file (.pt/.pt2/.onnx/.keras); repeat for each model."
    ),
    preds: Optional[list[Path]] = typer.Option(
        None, "--preds", help="A prediction file (.npz with probs|logits, .csv/.parquet with prob_<k>|logit_<k>); repeat."
    ),
    name: Optional[list[str]] = typer.Option(
        None, "--name", help="A name per model, in order (--model entries first, then --preds); default: file names."
    ),
    scenario: Optional[str] = typer.Option(
        None, "--scenario", help="Compare the models a built-in scenario carries instead (e.g. seed-2: over-parametrised vs reduced)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the scenario (with --scenario)."),
    class_names: Optional[Path] = typer.Option(None, "--class-names", help="Class names: JSON list or one name a line."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Layout of the test x when ambiguous: NHWC, NCHW, NHW or tabular."),
    bins: int = typer.Option(10, "--bins", help="Number of histogram bins over [0, 1]."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the comparison as JSON here."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Write the comparison as Markdown here."),
    option: Optional[list[str]] = typer.Option(
        None, "--option", metavar="limits.NAME=VALUE", help="Raise a reading limit, e.g. limits.max_csv_field=1000000; repeatable."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; only write the files."),
):
    """Compare models (or their predictions) on the same data: metrics, confidence distributions, tests."""
    from whylow.cli.diagnose import check_seed_option
    from whylow.inputs.files import limits_scope
    from whylow.inputs.options import parse_option_args
    from whylow.report.report import check_outputs

    models = list(model or [])
    predictions = list(preds or [])
    seed = check_seed_option(seed)
    if bins < 1 or bins > 10_000:
        fail(f"--bins must be from 1 to 10000, got {bins}.")
    _, limits = parse_option_args(option, only=("limits",))
    inputs = {"--test": test, "--class-names": class_names}
    inputs.update({f"--model {str(m)!r}": m for m in models})
    inputs.update({f"--preds {str(p)!r}": p for p in predictions})
    check_outputs({"--json": json_path, "--markdown": markdown_path}, inputs)
    with limits_scope(limits):
        comparison = _run_compare(test, models, predictions, name, scenario, seed, class_names, layout, bins, quiet)
    if not quiet:
        from rich.console import Console

        console = Console()
        for part in comparison.renderables():
            console.print(part)
    for path, text in ((json_path, comparison.to_json), (markdown_path, comparison.to_markdown)):
        if path is not None:
            from whylow.report.report import write_atomic

            write_atomic(path, text() + ("\n" if path == json_path else ""))
            if not quiet:
                typer.echo(f"wrote {path}")


def _run_compare(test, models, predictions, name, scenario, seed, class_names, layout, bins, quiet):
    from whylow.compare import compare, scenario_models

    try:
        if scenario is not None:
            if models or predictions or test is not None:
                fail("--scenario brings its own data and models; leave out --test, --model and --preds.")
            from whylow.cli.demo import single_thread_torch
            from whylow.scenarios import build, list_scenarios

            known = [s.name for s in list_scenarios()]
            if scenario not in known:
                fail(f"Unknown scenario {scenario!r}; the scenarios are: {', '.join(known)}.")
            if not quiet:
                typer.echo(f"building scenario {scenario} (seed {seed})...", err=True)
            single_thread_torch()
            built = build(scenario, seed=seed)
            entries = scenario_models(built)
            if name:
                if len(name) != len(entries):
                    fail(f"{len(name)} --name values were given for the scenario's {len(entries)} models; give one per model or none.")
                entries = dict(zip(name, entries.values()))
            comparison = compare(built.test, entries, class_names=built.class_names, n_bins=bins, progress=not quiet)
        else:
            sources = models + predictions
            if len(sources) < 2:
                fail(f"compare needs at least two --model or --preds files, got {len(sources)}.")
            if models and test is None:
                fail("--model needs --test with inputs x to run the models on.")
            for path in sources:
                if not os.path.lexists(path):
                    fail(f"The file {str(path)!r} does not exist.")
            if name:
                if len(name) != len(sources):
                    fail(f"{len(name)} --name values were given for {len(sources)} models; give one per --model/--preds, in order.")
                if len(set(name)) != len(name):
                    fail("The --name values must differ from each other.")
                names = list(name)
            else:
                names = default_names(sources)
            names_list = None
            if class_names is not None:
                from whylow.inputs import load_class_names

                names_list = load_class_names(class_names)
            comparison = compare(
                test, dict(zip(names, sources)), class_names=names_list, layout=layout, n_bins=bins, progress=not quiet
            )
    except (InvalidInputError, MissingDependencyError) as exc:
        fail(str(exc))
    return comparison
