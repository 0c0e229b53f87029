"""Shared helpers of the benchmark scripts: timing, peak memory, machine description, Markdown tables.

Not part of the library (benchmarks may print); imported by
``benchmarks/detection.py`` and ``benchmarks/speed.py`` with the
``benchmarks`` folder on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "CallTimeout",
    "Measured",
    "best_time",
    "call_with_timeout",
    "cpu_count",
    "fmt_bytes",
    "fmt_seconds",
    "growth_exponent",
    "machine_info",
    "machine_line",
    "markdown_table",
    "run_measured",
    "silenced",
]

REPO = Path(__file__).resolve().parents[1]


# -- machine ----------------------------------------------------------------------------------------
def cpu_count() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_ram() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    """Date, machine, and versions: what a benchmark table must be read against."""
    ram = _total_ram()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": cpu_count(),
        "ram": fmt_bytes(ram) if ram else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            d: _version(d) for d in ("whylow", "numpy", "scipy", "scikit-learn", "torch", "cleanlab", "netcal", "datasets")
        },
        "commit": _git_commit(),
    }


def machine_line(info: dict | None = None) -> str:
    """One Markdown line describing when and where the numbers were measured."""
    info = info or machine_info()
    v = info["versions"]
    libs = ", ".join(f"{k} {v[k]}" for k in v)
    return (
        f"Measured {info['date']} on {info['cpu']}, {info['cores']} cores available, {info['ram']} RAM, "
        f"{info['os']}, Python {info['python']} ({libs}; commit {info['commit']})."
    )


# -- formatting -------------------------------------------------------------------------------------
def fmt_seconds(s: float | None) -> str:
    """Seconds with a precision that suits their size; '—' for missing."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "—"
    if s < 0.01:
        return f"{s * 1000:.2f} ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 100:
        return f"{s:.2f} s"
    return f"{s:.0f} s"


def fmt_bytes(n: float | None) -> str:
    """Bytes as MiB / GiB; '—' for missing."""
    if n is None:
        return "—"
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.0f} MiB"


def _cell(value) -> str:
    text = "—" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table.

    Parameters
    ----------
    headers : sequence of str
    rows : iterable of sequences
        One value per header; ``None`` prints as '—'; ``|`` is escaped.
    align : str, optional
        One letter per column: ``l`` left, ``r`` right, ``c`` centre (default all left).
    """
    headers = [_cell(h) for h in headers]
    align = align or "l" * len(headers)
    if len(align) != len(headers):
        raise ValueError(f"align has {len(align)} letters for {len(headers)} columns")
    rule = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    for row in rows:
        row = list(row)
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells for {len(headers)} columns: {row!r}")
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines)


def growth_exponent(ns: Sequence[float], times: Sequence[float | None]) -> float | None:
    """Least-squares slope ``b`` of ``log t = a + b log n``: time grows as ``N^b``.

    Returns None when fewer than two sizes have a positive time.
    """
    pts = [(math.log(n), math.log(t)) for n, t in zip(ns, times) if t is not None and t > 0 and n > 0]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    if np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, y, 1)[0])


# -- timing -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def silenced():
    """Swallow stdout, stderr and warnings of peer libraries (progress bars, deprecation notes)."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        yield sink


def best_time(fn: Callable[[], object], repeats: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls of ``fn`` (after a garbage collection), and the last value."""
    import gc

    best, value = float("inf"), None
    for _ in range(max(1, repeats)):
        gc.collect()
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


class CallTimeout(Exception):
    """A call ran past its time limit."""


def call_with_timeout(fn: Callable[[], object], seconds: float | None):
    """Run ``fn()`` and raise `CallTimeout` if it runs longer than ``seconds``.

    Uses ``SIGALRM``, so it interrupts Python code (a long C call is
    interrupted when it returns to Python). Only in the main thread of a
    POSIX process; elsewhere ``fn`` runs without a limit.
    """
    usable = seconds and hasattr(signal, "setitimer") and _in_main_thread()
    if not usable:
        return fn()

    def _alarm(signum, frame):
        raise CallTimeout(f"ran past {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# -- subprocesses with peak memory ------------------------------------------------------------------
@dataclass
class Measured:
    """A finished child process: wall time, peak resident memory, exit status and output."""

    wall_s: float
    peak_rss: int | None
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def why(self) -> str:
        """A one-line reason for a failure."""
        if self.timed_out:
            return f"timed out after {self.wall_s:.0f} s"
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-1:] or [""]
        return f"exit {self.returncode}: {tail[0][:200]}"


def _maxrss_bytes(ru_maxrss: int) -> int:
    # Linux reports kilobytes, macOS bytes.
    return int(ru_maxrss) if sys.platform == "darwin" else int(ru_maxrss) * 1024


# A child forked from a large process starts with that process's high-water RSS (Linux keeps it
# across exec), so the measured command is started by this small launcher instead, which reports
# the command's own wall time, peak RSS and exit status in a JSON file.
_LAUNCHER = r"""
import json, os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, dict(os.environ))
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(report, "w") as fh:
    json.dump({"wall_s": wall, "maxrss": usage.ru_maxrss, "returncode": os.waitstatus_to_exitcode(status)}, fh)
"""


def run_measured(cmd: Sequence[str], timeout: float = 900.0, env: dict | None = None, cwd: str | None = None) -> Measured:
    """Run ``cmd`` as a child process; return its wall time and its own peak RSS.

    The command is started by a small launcher process (not forked from
    this one, whose memory would otherwise count as the child's peak), which
    reads the command's peak resident set size with ``os.wait4``. Output
    goes to temporary files (no pipe can fill up). On timeout the launcher's
    process group (the launcher and the command) is killed.
    """
    with tempfile.TemporaryDirectory(prefix="whylow-measure-") as tmp:
        report = Path(tmp) / "usage.json"
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, str(report), *cmd],
                stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # the launcher leads its own group: it and the command
                proc.wait()
            outer_wall = time.perf_counter() - t0
        usage = json.loads(report.read_text()) if report.exists() else {}
        return Measured(
            wall_s=usage.get("wall_s", outer_wall),
            peak_rss=_maxrss_bytes(usage["maxrss"]) if "maxrss" in usage else None,
            returncode=usage.get("returncode", proc.returncode),
            stdout=out_path.read_text(errors="replace"),
            stderr=err_path.read_text(errors="replace"),
            timed_out=timed_out,
        )
