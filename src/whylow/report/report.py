"""`Report`: the result of a diagnosis, and its JSON form (schema ``whylow.report/1``)."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whylow._version import __version__
from whylow.report.finding import SEVERITIES, CheckStatus, Finding

__all__ = ["Report", "SCHEMA_ID", "check_output_path", "check_outputs", "report_schema", "to_jsonable", "write_atomic"]

SCHEMA_ID = "whylow.report/1"


def report_schema() -> dict:
    """The JSON Schema of the report, as shipped inside the package (a copy of the design contract's).

    Returns
    -------
    dict
        The schema, for ``jsonschema.validate(report.to_dict(), report_schema())``.
    """
    return json.loads((Path(__file__).with_name("report.schema.json")).read_text(encoding="utf-8"))


def to_jsonable(value):
    """Convert numpy scalars/arrays and non-finite floats into plain JSON values (NaN/inf -> None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _output_path(path, what: str) -> Path:
    from whylow.inputs.files import as_path

    return as_path(path, what)


#: Paths that name a file descriptor of this process: written in place even when they lead to a regular file.
_FD_PATH = re.compile(r"^/(dev/(stdout|stderr|fd/\d+)|proc/(self|thread-self|\d+)/fd/\d+)$")


def _in_place(path: Path, st: os.stat_result | None) -> bool:
    """Whether ``path`` is written in place rather than replaced by a rename: devices, FIFOs, /dev/stdout and the like."""
    if st is None:
        return False
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return True
    return bool(_FD_PATH.match(os.path.abspath(path)))


def check_output_path(path, what: str = "The output file") -> Path:
    """Check that ``path`` can be written as an output before any work is done; return it as a `Path`.

    Refused: a directory, a block device or socket, a path under a file, a
    folder that cannot be created or written. Accepted as is: a regular file
    (replaced atomically), a character device or FIFO such as ``/dev/stdout``
    or ``/dev/null`` (written in place, never replaced).
    """
    from whylow.errors import InvalidInputError
    from whylow.inputs.files import file_kind

    p = _output_path(path, what)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None
    except OSError as exc:
        raise InvalidInputError(f"{what} {str(p)!r} cannot be checked ({exc.strerror or exc}).") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"{what} {str(p)!r} is a directory; give a file name inside it, e.g. {str(p / 'report')!r}.")
        if _in_place(p, st):
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
                raise InvalidInputError(f"{what} {str(p)!r} is {file_kind(st.st_mode)}; whylow writes regular files, pipes and terminals only.")
            if not os.access(p, os.W_OK):
                raise InvalidInputError(f"{what} {str(p)!r} cannot be written: permission denied.")
            return p
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(f"{what} {str(p)!r} is {file_kind(st.st_mode)}; whylow writes regular files, pipes and terminals only.")
    target = Path(os.path.realpath(p))
    folder = target.parent
    while True:
        try:
            fst = os.stat(folder)
        except FileNotFoundError:
            if folder.parent == folder:
                raise InvalidInputError(f"{what} {str(p)!r} cannot be created: no part of its folder exists.") from None
            folder = folder.parent
            continue
        except OSError as exc:
            raise InvalidInputError(f"{what} {str(p)!r} cannot be created ({exc.strerror or exc}).") from None
        break
    if not stat.S_ISDIR(fst.st_mode):
        raise InvalidInputError(f"{what} {str(p)!r} cannot be created: {str(folder)!r} is {file_kind(fst.st_mode)}, not a folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{what} {str(p)!r} cannot be written: the folder {str(folder)!r} is not writable.")
    return p


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file: the same inode when both exist, else the same resolved path."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: dict, inputs: dict | None = None) -> dict:
    """Check every output path (see `check_output_path`), that none is an input or inside an input folder, and that no two are the same.

    Parameters
    ----------
    outputs : dict of str to path or None
        Output paths by the option that names them (``"--json"``...); None entries are skipped.
    inputs : dict of str to path or None
        Input paths by option (``"--test"``...).

    Returns
    -------
    dict of str to Path
        The outputs that were given.
    """
    from whylow.errors import InvalidInputError

    checked = {k: check_output_path(v, f"The {k} output") for k, v in outputs.items() if v is not None}
    names = list(checked)
    for i, opt in enumerate(names):
        for other in names[:i]:
            if _same_file(checked[other], checked[opt]):
                raise InvalidInputError(
                    f"{other} and {opt} name the same file {str(checked[opt])!r}; give each output its own file."
                )
    for iopt, ip in (inputs or {}).items():
        if ip is None:
            continue
        try:
            ipath = _output_path(ip, f"The {iopt} input")
        except InvalidInputError:
            continue  # the input's own check names the problem
        real_in = os.path.realpath(ipath)
        is_dir = os.path.isdir(ipath)
        for opt, p in checked.items():
            if _same_file(p, ipath):
                raise InvalidInputError(
                    f"{opt} {str(p)!r} is the {iopt} input, which would be overwritten; whylow never writes over its "
                    "inputs, so give the output another name."
                )
            real_out = os.path.realpath(p)
            if is_dir and os.path.commonpath([real_in, real_out]) == real_in:
                raise InvalidInputError(
                    f"{opt} {str(p)!r} is inside the {iopt} input folder {str(ipath)!r}; whylow never writes into its inputs, "
                    "so put the output elsewhere."
                )
    return checked


def write_atomic(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` so readers never see half a file and inputs are never replaced by accident.

    A regular file is written through a temporary file in the same folder and a
    rename (a link is followed: its target is replaced, the link kept);
    missing folders are created. A character device or FIFO (``/dev/stdout``,
    ``/dev/null``, a pipe) is written in place, never renamed over. Anything
    else (a directory, a block device, a path under a file) and any failure to
    write raise `InvalidInputError` naming the path.
    """
    from whylow.errors import InvalidInputError

    what = "The output file"
    p = check_output_path(path, what)
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    try:
        st = os.stat(p)
    except OSError:
        st = None
    if _in_place(p, st):
        _write_in_place(p, raw, st)
        return Path(path) if not isinstance(path, Path) else path
    target = Path(os.path.realpath(p))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise InvalidInputError(f"{what} {str(p)!r} cannot be written ({exc.strerror or exc}).") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, target)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InvalidInputError(f"{what} {str(p)!r} cannot be written ({exc.strerror or exc}).") from None
        raise
    return p


def _write_in_place(p: Path, raw: bytes, st) -> None:
    from whylow.errors import InvalidInputError

    flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    if st is not None and stat.S_ISFIFO(st.st_mode):
        flags |= os.O_NONBLOCK  # a FIFO without a reader fails at once (ENXIO) instead of hanging
    elif st is not None and stat.S_ISREG(st.st_mode):
        flags |= os.O_APPEND  # /dev/stdout redirected to a file: add to it, as the shell would
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise InvalidInputError(f"The output {str(p)!r} is a pipe that nobody reads; start its reader first.") from None
        raise InvalidInputError(f"The output {str(p)!r} cannot be opened for writing ({exc.strerror or exc}).") from None
    try:
        if flags & os.O_NONBLOCK:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        view = memoryview(raw)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except BrokenPipeError:
        raise InvalidInputError(f"The output {str(p)!r} was closed by its reader before the report was written.") from None
    except OSError as exc:
        raise InvalidInputError(f"The output {str(p)!r} cannot be written ({exc.strerror or exc}).") from None
    finally:
        os.close(fd)


@dataclass
class Report:
    """A diagnosis: ranked findings, the status of every check, and the numbers.

    Attributes
    ----------
    inputs : dict
        What was given: splits, model, prediction kind, classes.
    summary : dict
        Headline metrics on the test split.
    findings : list of Finding
        Ordered most likely root cause first.
    checks : list of CheckStatus
    per_class : list of dict
    intervals : dict
        Bootstrap confidence intervals of the summary metrics.
    baselines : dict
        Majority-class and prior-only baselines on the test split.
    artifacts : dict
        Data behind the plots (reliability curves, property histograms...),
        keyed by the check that made them; used by the HTML report, not in JSON.
    """

    inputs: dict
    summary: dict
    findings: list[Finding] = field(default_factory=list)
    checks: list[CheckStatus] = field(default_factory=list)
    per_class: list[dict] = field(default_factory=list)
    intervals: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)

    # -- judgement -------------------------------------------------------
    def worst_severity(self) -> str | None:
        """The most serious severity among the findings, or None when there are none."""
        levels = [SEVERITIES.index(f.severity) for f in self.findings]
        return SEVERITIES[min(levels)] if levels else None

    def fails(self, fail_on: str) -> bool:
        """True when a finding is at or above ``fail_on`` (``"warning"`` or ``"critical"``)."""
        limit = SEVERITIES.index(fail_on)
        return any(SEVERITIES.index(f.severity) <= limit for f in self.findings)

    @property
    def verdict(self) -> str:
        """The diagnosis in one sentence."""
        serious = [f for f in self.findings if f.severity != "info"]
        if not serious:
            acc = self.summary.get("accuracy")
            tail = f" (test accuracy {acc:.1%})" if isinstance(acc, float) else ""
            return f"No problem found that explains low predictions{tail}."
        top = serious[0]
        more = len(serious) - 1
        extra = f"; {more} more issue{'s' if more != 1 else ''} below" if more else ""
        return f"Most likely cause: {top.title[0].lower() + top.title[1:]} ({top.code}){extra}."

    # -- output ----------------------------------------------------------
    def to_dict(self) -> dict:
        """The report as a JSON-ready dict following ``report.schema.json``."""
        return to_jsonable(
            {
                "schema": SCHEMA_ID,
                "whylow_version": __version__,
                "verdict": self.verdict,
                "inputs": self.inputs,
                "summary": self.summary,
                "intervals": self.intervals,
                "baselines": self.baselines,
                "findings": [f.to_dict() for f in self.findings],
                "checks": [c.to_dict() for c in self.checks],
                "per_class": self.per_class,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_markdown(self) -> str:
        """The report as Markdown."""
        from whylow.report.markdown import render_markdown

        return render_markdown(self)

    def to_text(self, width: int = 100, color: bool = False, verbose: bool = False) -> str:
        """The terminal summary as plain (or ANSI-coloured) text; ``verbose`` adds full fixes and each finding's evidence."""
        from whylow.report.text import render_text

        return render_text(self, width=width, color=color, verbose=verbose)

    def to_html(self) -> str:
        """The self-contained HTML report."""
        from whylow.report.html import render_html

        return render_html(self)

    def _check_save_path(self, path, what: str) -> Path:
        """Refuse an output path that is unwritable or one of the files this report was made from."""
        sources = {f"{name} split": s.get("source") for name, s in (self.inputs.get("splits") or {}).items() if isinstance(s, dict)}
        check_outputs({what: path}, {k: v for k, v in sources.items() if v})
        return _output_path(path, f"The {what} output")

    def save_json(self, path) -> Path:
        """Write the JSON report atomically (in place for a pipe or device); never over an input of this report."""
        self._check_save_path(path, "JSON report")
        return write_atomic(path, self.to_json() + "\n")

    def save_markdown(self, path) -> Path:
        """Write the Markdown report atomically (in place for a pipe or device); never over an input of this report."""
        self._check_save_path(path, "Markdown report")
        return write_atomic(path, self.to_markdown())

    def save_html(self, path) -> Path:
        """Write the HTML report atomically (in place for a pipe or device); never over an input of this report."""
        self._check_save_path(path, "HTML report")
        return write_atomic(path, self.to_html())

    #: Columns of `flagged_examples` and of ``--examples-csv``.
    EXAMPLE_COLUMNS = ("code", "severity", "split", "index", "path", "given", "suggested", "score", "note")

    def example_rows(self) -> list[dict]:
        """Every example flagged by any finding, in report order, as dicts with `EXAMPLE_COLUMNS`."""
        return [{"code": f.code, "severity": f.severity, **{k: e.get(k) for k in self.EXAMPLE_COLUMNS[2:]}}
                for f in self.findings for e in getattr(f, "examples", [])]

    def flagged_examples(self):
        """Every flagged example of every finding as a pandas DataFrame (one row per example and finding).

        Columns: the finding's ``code`` and ``severity``, the example's ``split``, row ``index``, file ``path``
        (splits read from a folder), ``given`` and ``suggested`` label, ``score`` and ``note``.
        """
        try:
            import pandas as pd
        except ImportError as exc:
            from whylow.errors import MissingDependencyError

            raise MissingDependencyError("flagged_examples() needs pandas: pip install pandas "
                                         "(or use example_rows() / save_examples_csv()).") from exc
        return pd.DataFrame(self.example_rows(), columns=list(self.EXAMPLE_COLUMNS))

    def save_examples_csv(self, path) -> Path:
        """Write every flagged example as CSV (`EXAMPLE_COLUMNS`), atomically; never over an input of this report."""
        import csv
        import io

        self._check_save_path(path, "examples CSV")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.EXAMPLE_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in self.example_rows())
        return write_atomic(path, buf.getvalue())

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        return self.to_html()
