"""The suite runner both verifiers share: the suite found, run in a pytest subprocess, recorded.

An image's suite is every `tests/` folder of its layers, the parent image's layers first, then
`images/<name>/tests/`, whatever the target; by name, some files belong to one target only:

    test_vm_*.py         only on a booted VM (kernel, mounts, services, network)
    test_container_*.py  only in a container
    test_*.py            on every target

The suite's digest covers every file of those folders the target runs (paths and contents), so
a record says which tests it holds for. The suite runs in a pytest subprocess whose plugin is
kiln.testing (the fixtures `host`, `root_host`, `params`, `image`, `cloud`, and the report of
each check with its owner), so that no pytest state (imported test modules, plugins, assertion
rewriting) leaks from one image to the next or into kiln, and an interrupted run is ended by
killing one process. Only the host differs: testinfra's `--hosts` arguments, which reach a
throwaway container (kiln.verify) or a booted VM over SSH (kiln.vm.verify).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kiln import records
from kiln.errors import CommandError, KilnError
from kiln.model import Plan, RuntimeConfig, TargetKind
from kiln.records import CheckResult, Outcome, VerifyRecord
from kiln.run import run as run_command
from kiln.suiteinfo import INFO_ENV, config_to_json
from kiln.testowners import describe, overrides

# The files only one target runs, by name prefix.
ONLY: dict[TargetKind, str] = {"vm": "test_vm_", "container": "test_container_"}


class VerifyError(KilnError):
    """The image could not be verified (no tests, no shell, a service or machine that never
    came up), or its suite failed. Either way the record of the run was saved."""


@dataclass(frozen=True)
class Target:
    """A built image to verify: its composed plan and what the engine calls it. A disk is
    verified as the container image it was made from (the record is keyed by that image ID)."""

    plan: Plan
    ref: str
    image_id: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.plan.image.name


@dataclass(frozen=True)
class Suite:
    root: Path
    target: TargetKind  # the backend these files are for
    parts: tuple[tuple[str, str], ...]  # (owner, tests folder relative to root), in layer order
    files: tuple[str, ...]  # every file of those folders the target runs, relative to root
    digest: str  # sha256 over the files' paths and contents

    @property
    def owners(self) -> dict[str, str]:
        return {folder: owner for owner, folder in self.parts}

    @property
    def has_tests(self) -> bool:
        return any(posixpath.basename(f).startswith("test_") and f.endswith(".py")
                   for f in self.files)

    @property
    def skipped_prefixes(self) -> tuple[str, ...]:
        """The name prefixes of the other targets' files, which this one neither hashes nor
        runs."""
        return tuple(prefix for target, prefix in ONLY.items() if target != self.target)


def collect(root: Path, plan: Plan, target: TargetKind) -> Suite:
    """The image's suite for `target`: its layers' and its own tests/ folders, every file in
    them but the other targets' (and bytecode)."""
    parts = [(layer.name, f"{layer.path}/tests") for layer in plan.all_layers]
    parts.append((f"image:{plan.image.name}", f"images/{plan.image.name}/tests"))
    present = tuple((owner, folder) for owner, folder in parts if (root / folder).is_dir())
    others = tuple(prefix for t, prefix in ONLY.items() if t != target)
    files: list[str] = []
    digest = hashlib.sha256()
    for _, folder in present:
        for path in sorted((root / folder).rglob("*")):
            if path.name.startswith(others) or "__pycache__" in path.parts:
                continue
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                files.append(rel)
                digest.update(f"{rel}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return Suite(root, target, present, tuple(files), digest.hexdigest())


def is_service(config: RuntimeConfig) -> bool:
    """An entrypoint is a program to run; an image without one is a toolbox (cmd: python3, sh)."""
    return config.entrypoint is not None


# the run -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuiteRun:
    """What one pytest run of the suite reported through kiln.testing."""

    checks: tuple[CheckResult, ...]
    exitstatus: int
    commands: tuple[dict[str, Any], ...] = ()  # what the kiln:// backend ran (containers)

    @property
    def reason(self) -> str:
        """Why the run did not pass, or "" when it did."""
        return failure_reason(self.checks, self.exitstatus)


def info(suite: Suite, target: Target, *, container: str = "",
         cloud: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the plugin's fixtures know: the `image` fixture's fields, the owners of the folders,
    the overrides to apply, the `cloud` fixture's facts (a VM booted with a seed)."""
    plan = target.plan
    return {
        "image": target.name, "ref": target.ref, "image_id": target.image_id,
        "target": suite.target, "container": container,
        "layers": [layer.name for layer in plan.all_layers], "params": dict(plan.params),
        "config": config_to_json(plan.config),
        # a disk boots its init, never the container's entrypoint
        "service": suite.target == "container" and is_service(plan.config),
        "owners": suite.owners, "overrides": overrides(plan), "cloud": cloud}


def run(suite: Suite, target: Target, hosts: Sequence[str], *, container: str = "",
        cloud: dict[str, Any] | None = None, junit: Path | None = None,
        timeout: float | None = None) -> SuiteRun:
    """pytest in a subprocess against `hosts` (testinfra's arguments: --hosts=..., and for SSH
    --ssh-config, --sudo); the results its kiln.testing plugin wrote. VerifyError when pytest
    did not get as far as writing them."""
    with tempfile.TemporaryDirectory(prefix="kiln-verify-") as tmp:
        info_path, results = Path(tmp, "info.json"), Path(tmp, "results.json")
        ini = Path(tmp, "pytest.ini")
        info_path.write_text(json.dumps({**info(suite, target, container=container, cloud=cloud),
                                         "results": str(results)}))
        # Our own ini: the project's pytest settings (addopts, markers) are not the suite's.
        ini.write_text("[pytest]\npython_files = test_*.py\njunit_family = xunit1\n"
                       f"junit_suite_name = kiln.{target.name}\n")
        # Only the plugins the suite needs: whatever else is installed next to kiln
        # (hypothesis, benchmark...) would cost seconds to load and could change the results.
        argv: list[str | Path] = [
            sys.executable, "-m", "pytest", "-c", ini, "--rootdir", suite.root,
            "-p", "testinfra.plugin", "-p", "kiln.testing", "-p", "no:cacheprovider",
            "--import-mode=importlib", *hosts, "-q", "--tb=short", "--color=no",
            *(f"--ignore-glob=*/{prefix}*" for prefix in suite.skipped_prefixes)]
        if junit:
            junit.parent.mkdir(parents=True, exist_ok=True)
            argv += ["--junitxml", junit.resolve()]
        argv += [suite.root / folder for _, folder in suite.parts]
        # Bytecode (and pytest's rewritten test modules) is cached in the state folder,
        # never in the layers' tests/ folders.
        env = {INFO_ENV: str(info_path), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
               "PYTHONPYCACHEPREFIX": str(records.state_dir(suite.root) / "pycache")}
        failure = ""
        try:
            run_command(argv, env=env, cwd=suite.root, timeout=timeout)
        except CommandError as exc:
            failure = str(exc)  # pytest exits non-zero when a check fails: the results say
        if not results.is_file():
            raise VerifyError(f"the suite of '{target.name}' did not run:\n{failure}")
        data = json.loads(results.read_text())
    return SuiteRun(tuple(_check(c) for c in data["checks"]), int(data.get("exitstatus", 1)),
                    tuple(data.get("commands", ())))


def _check(data: dict[str, Any]) -> CheckResult:
    outcome = data["outcome"] if data["outcome"] in ("passed", "failed", "error",
                                                     "skipped") else "error"
    return CheckResult(layer=data["owner"], test=data["nodeid"],
                       outcome=cast(Outcome, outcome), message=data.get("message", ""))


def failure_reason(checks: tuple[CheckResult, ...], status: int) -> str:
    """Why the run did not pass, or "" when it did."""
    failed = [c for c in checks if c.outcome in ("failed", "error")]
    if failed:
        shown = "; ".join(f"layer '{c.layer}': {check_name(c.test)}" for c in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        return f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed: {shown}{more}"
    if status == 5:
        return "no tests were collected"
    if status != 0:
        return f"the suite did not pass (pytest exit status {status})"
    if not any(c.outcome == "passed" for c in checks):
        return "no check passed (all skipped)"
    return ""


def no_tests(target: Target) -> VerifyError:
    return VerifyError(f"{target.plan.image.path}: '{target.name}' has no tests to verify it "
                       f"with (add layers/<layer>/tests/test_*.py to one of its layers, or "
                       f"images/{target.name}/tests/test_*.py)")


# the record ----------------------------------------------------------------------------------
def record(target: Target, suite: Suite, started: str, passed: bool, *,
           checks: tuple[CheckResult, ...] = (), seconds: float = 0.0, reason: str = "",
           extra: dict[str, Any] | None = None, profile: str = "") -> VerifyRecord:
    """The verification record, the same for every backend: keyed by the image ID and the
    target (kiln.records), the suite's digest, each check with its owner; `extra` says what
    the backend measured, plus the overrides (tests of a layer this image skips or replaces,
    and why) when there are any."""
    more = dict(extra or {})
    if overrides(target.plan):
        more["overrides"] = overrides(target.plan)
    return VerifyRecord(image=target.name, image_id=target.image_id,
                        fingerprint=target.fingerprint, target=suite.target, suite=suite.digest,
                        passed=passed, checks=checks, started=started, seconds=round(seconds, 3),
                        reason=reason, extra=more, profile=profile)


PARAM_ID_RE = re.compile(r"\[[^\]]*\]$")


def check_name(nodeid: str) -> str:
    """layers/core/tests/test_core.py::test_tz[kiln://base] -> test_core.py::test_tz"""
    path, _, rest = nodeid.partition("::")
    return f"{posixpath.basename(path)}::{PARAM_ID_RE.sub('', rest)}" if rest else path


def per_layer(record: VerifyRecord) -> list[tuple[str, int, int, int, int]]:
    """(layer, passed, failed, errors, skipped), in the suite's order."""
    rows: dict[str, list[int]] = {}
    index = {"passed": 0, "failed": 1, "error": 2, "skipped": 3}
    for check in record.checks:
        rows.setdefault(check.layer, [0, 0, 0, 0])[index[check.outcome]] += 1
    return [(layer, *counts) for layer, counts in rows.items()]  # type: ignore[misc]


def failure_lines(record: VerifyRecord) -> list[str]:
    lines = []
    for check in record.checks:
        if check.outcome in ("failed", "error"):
            lines.append(f"{check.outcome.upper()} in layer '{check.layer}': "
                         f"{check_name(check.test)} ({check.test})")
            lines += [f"    {line}" for line in check.message.split("\n") if line.strip()][:12]
    return lines


def override_lines(record: VerifyRecord) -> list[str]:
    """The tests of a layer this image skipped or replaced, each with who did and why."""
    return [f"{o['layer']}::{o['test']} {describe(o)}"
            for o in record.extra.get("overrides", ())]


__all__ = ["ONLY", "Suite", "SuiteRun", "Target", "VerifyError", "check_name",
           "collect", "failure_lines", "failure_reason", "info", "is_service", "no_tests",
           "override_lines", "per_layer", "record", "run"]
