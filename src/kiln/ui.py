"""Everything kiln shows a person: progress and logs on stderr, results on stdout.

rich is imported when the first line is printed, not with the module: a command that prints
nothing through the UI does not pay for it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kiln.prog import localise

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


# Not a terminal (CI logs, pipes): lines as long as they are. Wrapped at 80 columns, a
# `docker exec` line could not be pasted and tables cut refs short.
UNLIMITED = 1_000_000


def console(stderr: bool) -> Console:
    from rich.console import Console

    tty = (sys.stderr if stderr else sys.stdout).isatty()
    return Console(stderr=stderr, highlight=False, soft_wrap=not tty or not stderr,
                   width=None if tty else UNLIMITED)


class UI:
    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self._status: Status | None = None
        self._started = 0.0
        self._label = ""
        self._pending: tuple[str, float] | None = None  # the step running, and since when

    @cached_property
    def err(self) -> Console:
        return console(stderr=True)

    @cached_property
    def out(self) -> Console:
        return console(stderr=False)

    # logs --------------------------------------------------------------------------------
    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(localise(message))

    def warn(self, message: str) -> None:
        self.err.print(f"[bold yellow]warning:[/] {escape(localise(message))}")

    def output(self, line: str) -> None:
        if self.verbose:
            self.err.print(f"[dim]  | {escape(line)}[/]")

    # progress ----------------------------------------------------------------------------
    @contextmanager
    def task(self, label: str) -> Iterator[None]:
        """A timed block with a live spinner on a terminal and a plain log line elsewhere."""
        self._label, self._started = label, time.monotonic()
        self.info(f"[bold]{escape(label)}[/]")
        with self.err.status(escape(label)) as status:
            self._status = status
            try:
                yield
            finally:
                self._finish_step()
                self._status = None

    def step(self, text: str) -> None:
        """A step of the task: shown with its own time once it is over (the next step starts,
        or the task ends); with --verbose, shown as it starts, before its output."""
        self._finish_step()
        if self.verbose:
            self.info(f"  [cyan]{escape(text)}[/]")
        self._pending = (text, time.monotonic())
        if self._status:
            self._status.update(f"{escape(self._label)} · {escape(text)}")

    def _finish_step(self) -> None:
        if self._pending is None:
            return
        text, since = self._pending
        self._pending = None
        took = time.monotonic() - since
        self.info(f"  [dim]done in {took:.1f}s[/]" if self.verbose
                  else f"  [cyan]{escape(text)}[/] [dim]({took:.1f}s)[/]")

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    # results -----------------------------------------------------------------------------
    def json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, sort_keys=True))

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(escape(str(c)) for c in row))
        self.out.print(table)

    def result(self, message: str) -> None:
        self.out.print(localise(message))
