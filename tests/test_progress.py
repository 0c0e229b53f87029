"""Progress: stages and bars on a terminal, nothing in a pipe or with --quiet."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

import whylow
from whylow.progress import Activity, current_activity


@pytest.fixture(scope="module")
def npz_split(tmp_path_factory):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    probs = np.full((400, 3), 0.15)
    probs[np.arange(400), y] = 0.7
    path = tmp_path_factory.mktemp("progress") / "test.npz"
    np.savez(path, y=y, probs=probs)
    return path


def _run_on_pty(args: list[str], timeout: float = 120.0) -> str:
    """Run a command with stdout and stderr on a pseudo-terminal; everything it wrote."""
    pty = pytest.importorskip("pty", reason="pseudo-terminals need a POSIX system")
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=timeout)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_stages_show_on_a_pseudo_terminal(whylow_exe, npz_split):
    out = _run_on_pty([whylow_exe, "diagnose", "--test", str(npz_split)])
    assert "whylow: " in out, out[-2000:]  # a stage line ("whylow: reading the test split", "whylow: checking ...")
    assert "Findings" in out or "No findings" in out  # and the report after it


def test_nothing_but_the_report_in_a_pipe(run_whylow, npz_split):
    proc = run_whylow("diagnose", "--test", npz_split)
    assert proc.returncode == 0
    assert "whylow: checking" not in proc.stdout + proc.stderr
    assert proc.stderr.strip() == ""


def test_quiet_on_a_terminal_prints_nothing(whylow_exe, npz_split):
    out = _run_on_pty([whylow_exe, "diagnose", "--test", str(npz_split), "--quiet"])
    assert out.strip() == ""


def test_activity_draws_only_on_a_terminal_and_nests_model_bars():
    buf = io.StringIO()
    with Activity(True, console=Console(file=buf, force_terminal=True, width=80)) as activity:
        assert current_activity() is activity and activity.shown
        activity.stage("checking calibration")
        with activity.bar(3, "running the model on the test split") as advance:
            for _ in range(3):
                advance()
    assert current_activity() is None
    quiet = io.StringIO()
    with Activity(True, console=Console(file=quiet, force_terminal=False)) as activity:
        activity.stage("checking calibration")
        assert not activity.shown
    assert quiet.getvalue() == ""


def test_the_api_is_silent_by_default(capsys, npz_split):
    whylow.diagnose(test=str(npz_split))
    captured = capsys.readouterr()
    assert captured.out == "" and "whylow:" not in captured.err


def test_import_does_not_pull_heavy_frameworks():
    code = ("import sys, whylow, whylow.diagnose, whylow.cli.diagnose; "
            "print(sorted(m for m in ('torch', 'keras', 'onnxruntime', 'tensorflow', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
