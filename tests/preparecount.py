"""How many times `kiln.context.prepare` runs per image, for the tests of the one context."""

from __future__ import annotations

from collections import Counter

import pytest

from kiln import context
from kiln.context import Prepared
from kiln.load import Project


def count_prepare(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """A counter of `prepare` calls per image name, kept up to date until the test ends."""
    counted: Counter[str] = Counter()
    real = context.prepare

    def counting(project: Project, name: str) -> Prepared:
        counted[name] += 1
        return real(project, name)

    monkeypatch.setattr(context, "prepare", counting)
    return counted
