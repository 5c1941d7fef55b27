"""Fixtures for every test, unit and integration alike."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kilncli import KilnCLI

SESSION_ENV = "KILN_SESSION"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """A unit test sees no KILN_SESSION, whatever the caller set: local image names are then
    kiln's own. (tests/integration/conftest.py sets the session's around integration tests.)"""
    if "integration" in str(item.fspath) or SESSION_ENV not in os.environ:
        yield
        return
    old = os.environ.pop(SESSION_ENV)
    try:
        yield
    finally:
        os.environ[SESSION_ENV] = old


@pytest.fixture
def kiln_cli(request: pytest.FixtureRequest) -> KilnCLI:
    """Runs `kiln` as a user would, in a scrubbed environment (kilncli.py says what is kept).
    An integration test's run is the test session's (KILN_SESSION); a unit test's has none."""
    integration = request.node.get_closest_marker("integration") is not None
    return KilnCLI(os.environ.get(SESSION_ENV) if integration else None)
