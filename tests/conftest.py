"""Shared fixtures: the report schema and a runner for the real `whylow` executable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The design contract's copy of the schema; the package ships its own (`whylow.report.report_schema`).
CONTRACT_SCHEMA_PATH = ROOT.parent / "shared" / "report.schema.json"


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Train the tiny test models on one thread: on a 2-core machine that is several times faster than two."""
    from threadpoolctl import threadpool_limits

    torch = None
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in the dev extra
        pass
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    if torch:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def diagnosed():
    """``get(name, **params) -> (scenario, report)``: each scenario built and diagnosed once per test session."""
    from whylow.scenarios import build

    cache: dict = {}

    def get(name: str, **params):
        key = (name, tuple(sorted(params.items())))
        if key not in cache:
            sc = build(name, **params)
            cache[key] = (sc, sc.diagnose())
        return cache[key]

    return get


@pytest.fixture(scope="session")
def report_schema() -> dict:
    """The JSON Schema of the report shipped in the package (equal to the contract's: `test_report.py` checks)."""
    from whylow.report import report_schema as packaged

    return packaged()


@pytest.fixture(scope="session")
def validate_report(report_schema):
    """Validate a report dict against the contract schema."""
    import jsonschema

    def check(report: dict) -> None:
        jsonschema.validate(report, report_schema)

    return check


@pytest.fixture(scope="session")
def whylow_exe() -> str:
    """Path of the installed `whylow` console script."""
    exe = shutil.which("whylow") or str(Path(sys.executable).parent / "whylow")
    if not os.path.exists(exe):
        pytest.fail("the whylow executable is not installed; run pip install -e .")
    return exe


@pytest.fixture(scope="session")
def run_whylow(whylow_exe):
    """Run `whylow ARGS...` as a subprocess and return the CompletedProcess."""

    def run(*args, timeout=300, cwd=None):
        env = {**os.environ, "COLUMNS": "120"}
        return subprocess.run(
            [whylow_exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
        )

    return run


def load_detection_benchmark():
    """``benchmarks/detection.py`` imported as a module (once per session; it is a script, not a package)."""
    import importlib.util

    name = "whylow_bench_detection"
    if name in sys.modules:
        return sys.modules[name]
    bench = ROOT / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location(name, bench / "detection.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their module through sys.modules
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(bench))
