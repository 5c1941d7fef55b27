"""Everything kiln shows a person: progress and logs on stderr, results on stdout."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from kiln.prog import localise


class UI:
    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        self.err = Console(stderr=True, highlight=False)
        self.out = Console(highlight=False, soft_wrap=True)
        self.verbose = verbose
        self.quiet = quiet
        self._status: Status | None = None
        self._started = 0.0
        self._label = ""

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
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(escape(str(c)) for c in row))
        self.out.print(table)

    def result(self, message: str) -> None:
        self.out.print(localise(message))
