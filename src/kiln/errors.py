"""kiln's own exceptions. Every outside failure is translated into one of these at its door."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class KilnError(Exception):
    """A failure the user can act on: printed as its message, without a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, located in its file."""

    path: str
    line: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        tail = f" ({self.hint})" if self.hint else ""
        text = f"{where}: {self.message}{tail}"
        # One problem, one line: a value holding a newline or NUL is shown escaped.
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class DefinitionError(KilnError):
    """One or more definitions are invalid; nothing may be built while any is."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(set(problems), key=lambda p: (p.path, p.line, p.message)))
        super().__init__("\n".join(str(p) for p in self.problems))


class EngineError(KilnError):
    """The Docker engine refused or failed an operation."""


class BuildError(KilnError):
    """A build step failed inside the engine."""


class CommandError(KilnError):
    """A subprocess exited non-zero."""
