"""An image's testinfra suite: collected from its layers, run against a host, results as checks.

Which files run where, by name (layers/<name>/tests/):
  test_vm_*.py         only on a booted VM (kernel, mounts, services, network)
  test_container_*.py  only in a container
  test_*.py            on every target

`collect(root, plan, target)` and `run(files, params, ...)` are kept apart so that the
container verifier (kiln.verify) and this one can share a collection and differ in the host.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import CommandError, KilnError
from kiln.model import ParamValue, Plan
from kiln.records import CheckResult, Outcome
from kiln.run import run as run_command

ONLY = {"vm": "test_vm_", "container": "test_container_"}


@dataclass(frozen=True)
class TestFile:
    layer: str
    path: Path

    @property
    def arcname(self) -> str:
        return f"{self.layer}/{self.path.name}"


def collect(root: Path, plan: Plan, target: str) -> tuple[TestFile, ...]:
    """The union of every layer's tests/test_*.py (parents' layers too) that apply to target."""
    others = tuple(prefix for t, prefix in ONLY.items() if t != target)
    files = []
    for layer in plan.all_layers:
        for path in sorted((root / layer.path / "tests").glob("test_*.py")):
            if not path.name.startswith(others):
                files.append(TestFile(layer.name, path))
    return tuple(files)


def digest(files: tuple[TestFile, ...]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.arcname}\0{hashlib.sha256(f.path.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


CONFTEST = '''\
"""Written by kiln for one verification run: the image's params, and a report of every test."""
import json
from pathlib import Path

import pytest

PARAMS = json.loads({params!r})
CLOUD = json.loads({cloud!r})
RESULTS = []


@pytest.fixture(scope="session")
def params():
    """The image's resolved params, as the layers' tests see them."""
    return dict(PARAMS)


@pytest.fixture(scope="session")
def cloud():
    """What the machine's datasource gave (a NoCloud seed made by kiln's verifier) and what
    the image holds that the machine must not share; skips when it was booted without one."""
    if not CLOUD:
        pytest.skip("booted without a cloud-init datasource")
    return dict(CLOUD)


@pytest.fixture(scope="module")
def root_host(host):
    """Commands as root: over SSH to a VM, `host` already is root (logged in as root, or as
    the seed's account with testinfra's --sudo)."""
    return host


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if report.when != "call" and outcome == "failed":
            outcome = "error"
        message = "" if outcome == "passed" else (
            getattr(report, "longreprtext", "") or str(report.longrepr or ""))
        RESULTS.append({{"test": report.nodeid, "outcome": outcome, "message": message[-2000:]}})


def pytest_sessionfinish(session):
    Path({out!r}).write_text(json.dumps(RESULTS))
'''


def run(files: tuple[TestFile, ...], params: tuple[tuple[str, ParamValue], ...],
        hosts: list[str], work: Path, timeout: float = 600,
        cloud: dict[str, Any] | None = None) -> tuple[CheckResult, ...]:
    """Run the files with testinfra against `hosts` (pytest arguments); one check per test.
    `cloud` is what the machine's datasource gave, for the `cloud` fixture."""
    if not files:
        return ()
    suite = work / "suite"
    shutil.rmtree(suite, ignore_errors=True)
    suite.mkdir(parents=True)
    out = work / "results.json"
    out.unlink(missing_ok=True)
    (suite / "conftest.py").write_text(
        CONFTEST.format(params=json.dumps(dict(params), sort_keys=True),
                        cloud=json.dumps(cloud or {}, sort_keys=True), out=str(out)))
    (suite / "pytest.ini").write_text("[pytest]\n")
    for f in files:
        (suite / f.layer).mkdir(exist_ok=True)
        shutil.copyfile(f.path, suite / f.arcname)
    argv: list[str | Path] = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--import-mode=importlib", "--rootdir", suite, "-c", suite / "pytest.ini",
            *hosts, *(f.arcname for f in files)]
    failure = ""
    try:
        run_command(argv, cwd=suite, timeout=timeout)
    except CommandError as exc:
        failure = str(exc)  # failing tests exit 1; the results file says which
    if not out.exists():
        raise KilnError(f"the test suite did not run: {failure}")
    checks = []
    for item in json.loads(out.read_text()):
        layer = item["test"].split("/", 1)[0]
        outcome: Outcome = item["outcome"]
        checks.append(CheckResult(layer, item["test"], outcome, item["message"]))
    return tuple(checks)
