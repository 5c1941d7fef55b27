"""Everything kiln shows a person: progress and logs on stderr, results on stdout.

rich is imported when the first line is printed, not with the module: a command that prints
nothing through the UI does not pay for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class UI:
    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self._status: Status | None = None
        self._started = 0.0
        self._label = ""

    @cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, highlight=False)

    @cached_property
    def out(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)

    # logs --------------------------------------------------------------------------------
    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[bold yellow]warning:[/] {escape(message)}")

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
                self._status = None

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self._started
        self.info(f"  [cyan]{escape(text)}[/] [dim]({elapsed:.1f}s)[/]")
        if self._status:
            self._status.update(f"{escape(self._label)} · {escape(text)}")

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
        self.out.print(message)
