"""What whylow is doing, on a terminal: the stage (reading a split, loading the model, a check) and bars for model runs.

One rich `Progress` display on stderr for the whole diagnosis, transient (it
disappears when the report is printed). It shows only when asked for
(``progress=True``, the CLI without ``--quiet``) *and* stderr is a terminal:
in a pipe, a CI log or a notebook cell's captured output it writes nothing.

>>> with Activity(enabled=False) as activity:
...     activity.stage("reading the test split")
...     with activity.bar(10, "running the model on the test split") as advance:
...         advance()
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

__all__ = ["Activity", "current_activity"]

_CURRENT: contextvars.ContextVar["Activity | None"] = contextvars.ContextVar("whylow_activity", default=None)


class Activity:
    """A status line and progress bars on stderr, shown only on a terminal.

    Parameters
    ----------
    enabled : bool
        Whether the caller wants progress at all.
    console : rich.console.Console, optional
        Where to draw (stderr by default); its ``is_terminal`` decides whether anything is drawn.
    """

    def __init__(self, enabled: bool = True, console=None) -> None:
        self._progress = None
        self._stage_task = None
        self.shown = False
        if not enabled:
            return
        from rich.console import Console

        console = console or Console(stderr=True)
        self.shown = bool(console.is_terminal)
        if self.shown:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), console=console, transient=True)

    def __enter__(self) -> "Activity":
        self._token = _CURRENT.set(self)
        if self._progress is not None:
            self._progress.start()
            self._stage_task = self._progress.add_task("whylow: starting", total=None)
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(self._token)
        if self._progress is not None:
            self._progress.stop()

    def stage(self, text: str) -> None:
        """Say what whylow is doing now (replaces the previous stage)."""
        if self._progress is not None:
            self._progress.update(self._stage_task, description=f"whylow: {text}")

    @contextlib.contextmanager
    def bar(self, total: int, description: str) -> Iterator[Callable[[], None]]:
        """A bar of ``total`` steps for the duration of the block; yields ``advance()``."""
        if self._progress is None:
            yield lambda: None
            return
        task = self._progress.add_task(description, total=total)
        try:
            yield lambda: self._progress.advance(task)
        finally:
            self._progress.remove_task(task)


def current_activity() -> Activity | None:
    """The `Activity` of the diagnosis running in this context, if any (model runs draw their bars on it)."""
    return _CURRENT.get()
