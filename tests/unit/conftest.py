"""Fixtures for pure tests: YAML in, Plan, Dockerfile or errors out. No Docker."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import count
from pathlib import Path

import pytest
from kilntest import Definition, MakeProject, write_project

from kiln.load import Project


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """A factory of throwaway projects, each in its own folder under tmp_path."""
    numbers = count()

    def make(layers: Mapping[str, Definition] | None = None,
             images: Mapping[str, Definition] | None = None,
             files: Mapping[str, str | bytes] | None = None) -> Project:
        return write_project(tmp_path / f"project{next(numbers)}", layers, images, files)

    return make
