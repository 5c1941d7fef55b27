"""What `check` can know before a build, checked over the composed plans (pure, no engine).

compose checks each definition's keys and merge; these checks need the whole plan, the project's
files or several images at once. Every problem is `path:line: message (hint)`, all reported
together, and nothing is built while any remains.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kiln.errors import DefinitionError, Problem
from kiln.model import Plan
from kiln.testowners import check_overrides


def check_plans(root: Path, plans: Iterable[Plan]) -> None:
    problems: list[Problem] = []
    for plan in plans:
        problems += check_overrides(root, plan)
    if problems:
        raise DefinitionError(problems)
