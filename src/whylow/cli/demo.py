"""``whylow demo``: train a small CNN on real digits, inject a known fault, diagnose it, write the report."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer

from whylow.cli import app, fail
from whylow.errors import InvalidInputError, MissingDependencyError

__all__ = ["DEFAULT_SCENARIO", "demo_command", "export_scenario", "format_scenario_list", "run_demo", "single_thread_torch"]

#: The scenario ``whylow demo`` runs when none is named: the seed's first cause, a lighting shift.
DEFAULT_SCENARIO = "lighting"


def format_scenario_list(specs) -> str:
    """One line per scenario: ``name  expected-code  description``, in aligned columns."""
    rows = [(s.name, s.expected or "(healthy)", s.description) for s in specs]
    w1 = max((len(r[0]) for r in rows), default=0)
    w2 = max((len(r[1]) for r in rows), default=0)
    return "\n".join(f"{a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in rows)


def _html_available() -> str | None:
    """None when the HTML renderer can be used, else the reason it cannot."""
    try:
        import whylow.report.html  # noqa: F401
    except ImportError as exc:  # MissingDependencyError is an ImportError too
        return str(exc) or type(exc).__name__
    return None


def export_scenario(scenario, folder: Path) -> dict[str, Path]:
    """Write a built scenario as the files a user would have: splits, TorchScript model, history, class names.

    ``train.npz`` / ``val.npz`` / ``test.npz`` (keys ``x``, ``y``; ``probs`` when the scenario gives
    predictions instead of a model), ``model.pt`` (TorchScript, traced on the test inputs, when the
    scenario's model is a torch module), ``history.json`` and ``classes.txt``, each written atomically.

    Returns
    -------
    dict of str to Path
        What was written, by kind.
    """
    import io
    import json

    import numpy as np

    from whylow.report.report import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in ("train", "val", "test"):
        split = getattr(scenario, name, None)
        if split is None:
            continue
        arrays = {k: np.asarray(v) for k in ("x", "y", "probs", "logits") if (v := getattr(split, k, None)) is not None}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        written[name] = write_atomic(folder / f"{name}.npz", buf.getvalue())
    model = scenario.model
    torch = None
    try:
        import torch
    except ImportError:
        pass
    if torch is not None and isinstance(model, torch.nn.Module) and getattr(scenario.test, "x", None) is not None:
        model.eval()
        example = torch.as_tensor(np.asarray(scenario.test.x[:8], dtype=np.float32))
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
        written["model"] = write_atomic(folder / "model.pt", buf.getvalue())
    if scenario.history:
        written["history"] = write_atomic(folder / "history.json", json.dumps({k: [float(v) for v in vals] for k, vals in scenario.history.items()}))
    if scenario.class_names:
        written["class_names"] = write_atomic(folder / "classes.txt", "\n".join(scenario.class_names) + "\n")
    return written


def _diagnose_command_for(written: dict[str, Path]) -> str:
    """The ``whylow diagnose`` command line that diagnoses exported files."""
    flags = {"test": "--test", "train": "--train", "val": "--val", "model": "--model", "history": "--history", "class_names": "--class-names"}
    return "whylow diagnose " + " ".join(f"{flags[k]} {p}" for k, p in written.items()) + " --html report.html"


def single_thread_torch() -> None:
    """Run torch on one thread: the demo's models are tiny, and on a small or busy machine two or more
    threads per process make training several times slower (measured: 4 s on one thread, 20 s on two,
    for the digits CNN on a loaded 2-core machine)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def run_demo(
    name: str,
    out: Path,
    *,
    seed: int = 0,
    html: bool = True,
    markdown: bool = False,
    quiet: bool = False,
    built=None,
) -> dict:
    """Build the scenario, diagnose it, print and write the report; return what happened.

    Parameters
    ----------
    name : str
        A registered scenario.
    out : Path
        Folder for ``report.json``, ``report.html``, ``report.md`` and, for
        scenarios that carry several models, ``compare.json``.
    seed : int
    html, markdown : bool
        Which extra formats to write.
    quiet : bool
        Print nothing.
    built : Scenario, optional
        An already built scenario called ``name`` (tests reuse theirs).

    Returns
    -------
    dict
        ``report`` (the Report), ``scenario``, ``paths`` (written files by
        kind), ``build_s`` and ``diagnose_s`` (seconds), ``html_skipped``
        (the reason, or None).
    """
    from whylow.cli.diagnose import write_outputs
    from whylow.scenarios import build, list_scenarios

    specs = {s.name: s for s in list_scenarios()}
    if name not in specs:
        raise InvalidInputError(f"Unknown scenario {name!r}; the scenarios are: {', '.join(specs)}.")
    spec = specs[name]
    say = (lambda msg: None) if quiet else (lambda msg: typer.echo(msg, err=True))
    say(f"whylow demo: scenario {name!r} (seed {seed}): {spec.description}")
    say("building the scenario (training a small CNN on scikit-learn's digits)...")
    t0 = time.perf_counter()
    scenario = build(name, seed=seed) if built is None else built
    build_s = time.perf_counter() - t0
    say(f"built in {build_s:.1f} s; diagnosing...")
    t0 = time.perf_counter()
    report = scenario.diagnose(progress=not quiet, seed=seed)
    diagnose_s = time.perf_counter() - t0

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json"}
    if markdown:
        paths["markdown"] = out / "report.md"
    write_outputs(report, paths["json"], paths.get("markdown"), None, quiet)
    html_skipped = None
    if html:
        html_skipped = _html_available()
        if html_skipped is None:
            try:
                report.save_html(out / "report.html")
                paths["html"] = out / "report.html"
            except ImportError as exc:
                html_skipped = str(exc)
        if html_skipped is not None:
            say(f"HTML report skipped: {html_skipped}")
        elif not quiet:
            typer.echo(f"wrote {paths['html']}")

    comparison = None
    try:
        from whylow.compare import compare, scenario_models

        entries = scenario_models(scenario)
    except InvalidInputError:
        entries = None  # this scenario carries one model only
    if entries is not None:
        comparison = compare(scenario.test, entries, class_names=scenario.class_names)
        paths["compare"] = comparison.save_json(out / "compare.json")
        if not quiet:
            from rich.console import Console

            console = Console()
            for part in comparison.renderables():
                console.print(part)
            typer.echo(f"wrote {paths['compare']}")

    top = report.findings[0] if report.findings else None
    serious = [f for f in report.findings if f.severity != "info"]
    if spec.expected is None:
        outcome = "as expected, nothing flagged" if not serious else f"unexpected: {serious[0].code} ({serious[0].severity}) flagged"
    else:
        got = top.code if top is not None else "nothing"
        outcome = "as expected" if got == spec.expected else "NOT as expected"
        outcome = f"injected fault {spec.expected}, top finding {got}: {outcome}"
    say(f"{outcome}; built in {build_s:.1f} s, diagnosed in {diagnose_s:.1f} s")
    return {
        "report": report,
        "scenario": scenario,
        "comparison": comparison,
        "paths": paths,
        "build_s": build_s,
        "diagnose_s": diagnose_s,
        "html_skipped": html_skipped,
    }


@app.command("demo")
def demo_command(
    scenario: Optional[str] = typer.Argument(
        None, help=f"Scenario to run (default: {DEFAULT_SCENARIO}); see --list.", show_default=False
    ),
    out: Path = typer.Option(Path("whylow-demo"), "--out", "-o", help="Folder for report.json, report.html (and report.md)."),
    list_: bool = typer.Option(False, "--list", help="List the scenarios, one a line: name, expected finding, description."),
    seed: int = typer.Option(0, "--seed", help="Seed of the scenario's data split, training and diagnosis."),
    html: bool = typer.Option(True, "--html/--no-html", help="Write report.html (needs the HTML renderer)."),
    markdown: bool = typer.Option(False, "--markdown/--no-markdown", help="Also write report.md."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only where the report is."),
    export: Optional[Path] = typer.Option(
        None, "--export", help="Also write the scenario as files (splits .npz, model.pt, history.json, classes.txt) to diagnose yourself."
    ),
):
    """Train a small CNN on scikit-learn's digits, inject a named fault, diagnose it and write the report."""
    from whylow.scenarios import list_scenarios

    specs = list_scenarios()
    if list_:
        typer.echo(format_scenario_list(specs))
        return
    name = scenario or DEFAULT_SCENARIO
    known = [s.name for s in specs]
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        fail(f"Unknown scenario {name!r}{hint}; the scenarios are: {', '.join(known)} (see whylow demo --list).")
    from whylow.cli.diagnose import check_seed_option
    from whylow.inputs.files import file_kind
    from whylow.report.report import check_output_path

    seed = check_seed_option(seed)
    if os.path.exists(out) and not os.path.isdir(out):
        fail(f"--out {str(out)!r} is {file_kind(os.stat(out).st_mode)}; give a folder for the report files.")
    check_output_path(out / "report.json", "The --out folder's report")
    single_thread_torch()
    try:
        result = run_demo(name, out, seed=seed, html=html, markdown=markdown, quiet=quiet)
    except (InvalidInputError, MissingDependencyError) as exc:
        fail(str(exc))
    if export is not None:
        if os.path.exists(export) and not os.path.isdir(export):
            fail(f"--export {str(export)!r} is {file_kind(os.stat(export).st_mode)}; give a folder for the exported files.")
        written = export_scenario(result["scenario"], export)
        typer.echo(f"Exported to {export}/; diagnose it yourself with:\n  {_diagnose_command_for(written)}")
    paths = result["paths"]
    main = paths.get("html", paths["json"])
    others = ", ".join(str(p) for kind, p in paths.items() if p != main)
    typer.echo(f"Report: {main}" + (f" (also {others})" if others else ""))
