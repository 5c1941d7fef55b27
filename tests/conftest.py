"""Fixtures for every test, unit and integration alike."""

from __future__ import annotations

import os

import pytest

from kilncli import KilnCLI


@pytest.fixture
def kiln_cli(request: pytest.FixtureRequest) -> KilnCLI:
    """Runs `kiln` as a user would, in a scrubbed environment (kilncli.py says what is kept).
    An integration test's run is the test session's (KILN_SESSION); a unit test's has none."""
    integration = request.node.get_closest_marker("integration") is not None
    return KilnCLI(os.environ.get("KILN_SESSION") if integration else None)
