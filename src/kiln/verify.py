"""Verification: an image's suite (its layers' testinfra tests) run against a throwaway container.

The suite of an image is every `tests/` folder of its layers, the parent image's layers first,
then `images/<name>/tests/`. It runs in a pytest subprocess (kiln.testing is its plugin), so
that no pytest state (imported test modules, plugins, assertion rewriting) leaks from one
image to the next or into kiln, and so that an interrupted run is ended by killing one process.

Service images (those with an entrypoint) run as in production: own entrypoint, cmd and user,
and are tested once their healthcheck says healthy. Others get an entrypoint that sleeps, so
the container stays up while the checks run in it. Either way the container is removed on
pass, failure, error, Ctrl-C and SIGTERM, unless `keep` is asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from kiln import durations, records, restricted
from kiln.engine import Engine
from kiln.errors import CommandError, KilnError
from kiln.model import Config, Healthcheck, Plan
from kiln.records import CheckResult, Outcome, VerifyRecord
from kiln.restricted import Profile, RestrictedUnfit
from kiln.run import interactive, run
from kiln.suiteinfo import INFO_ENV, SCHEME, config_to_json
from kiln.testowners import describe, overrides
from kiln.ui import UI

TARGET = "container"
PURPOSE_LABEL = "dev.kiln.purpose"
# Non-service images: keep the container up with whatever `sleep` the image has (coreutils or
# busybox applet), else busybox itself. A finite number works with every sleep; 68 years.
KEEP_ALIVE = ["/bin/sh", "-c", "command -v sleep >/dev/null && exec sleep 2147483647; "
              "exec /bin/busybox sleep 2147483647"]
HEALTH_POLL_NS = 250_000_000  # how often the engine runs the healthcheck while we wait
MIN_HEALTH_WAIT = 5.0  # seconds; the production budget is used when larger
SETTLE = 1.0  # a service without a healthcheck must stay up this long before it is tested
LOG_TAIL = 20
NOT_VERIFIED = "not verified (--no-verify)"


class VerifyError(KilnError):
    """The image could not be verified, or its suite failed."""


@dataclass(frozen=True)
class Target:
    """A built image to verify: its composed plan and what the engine calls it."""

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
    parts: tuple[tuple[str, str], ...]  # (owner, tests folder relative to root), in layer order
    files: tuple[str, ...]  # every file of those folders, relative to root
    digest: str  # sha256 over the files' paths and contents

    @property
    def owners(self) -> dict[str, str]:
        return {folder: owner for owner, folder in self.parts}


@dataclass
class Verification:
    """One run: the record kiln keeps, and what the run measured."""

    record: VerifyRecord
    container: str
    start_seconds: float = 0.0  # create, start and wait until ready
    suite_seconds: float = 0.0  # the pytest subprocess
    commands: list[dict[str, Any]] = field(default_factory=list)


# Layer tests named test_vm_*.py check what only a booted VM has (kernel, mounts, services);
# they run under kiln.vm.verify, never in a container.
VM_ONLY = "test_vm_"


def is_service(config: Config) -> bool:
    """An entrypoint is a program to run; an image without one is a toolbox (cmd: python3, sh)."""
    return config.entrypoint is not None


def find_suite(root: Path, plan: Plan) -> Suite:
    parts = [(layer.name, f"{layer.path}/tests") for layer in plan.all_layers]
    parts.append((f"image:{plan.image.name}", f"images/{plan.image.name}/tests"))
    present = tuple((owner, folder) for owner, folder in parts if (root / folder).is_dir())
    files: list[str] = []
    digest = hashlib.sha256()
    for _, folder in present:
        for path in sorted((root / folder).rglob("*")):
            if path.name.startswith(VM_ONLY):
                continue  # booted VMs only (kiln.vm.suite)
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(root).as_posix()
                files.append(rel)
                digest.update(f"{rel}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return Suite(root, present, tuple(files), digest.hexdigest())


def has_tests(suite: Suite) -> bool:
    return any(posixpath.basename(f).startswith("test_") and f.endswith(".py")
               for f in suite.files)


# the run -------------------------------------------------------------------------------------
def verify(engine: Engine, root: Path, target: Target, ui: UI, *, junit: Path | None = None,
           keep: bool = False, connection: str = SCHEME) -> Verification:
    """Run the image's suite against a throwaway container; save and return the record.

    A failed suite is a result, not an exception; VerifyError means the suite could not run
    (no tests, no shell, a service that never became healthy) and is recorded as a failure.
    Interrupted runs record nothing: the image keeps whatever record it had.
    """
    suite = find_suite(root, target.plan)
    started, clock = _now(), time.monotonic()
    verification = Verification(_record(target, suite, started, False), "")
    try:
        if not has_tests(suite):
            raise VerifyError(f"{target.plan.image.path}: '{target.name}' has no tests to verify "
                              f"it with (add layers/<layer>/tests/test_*.py to one of its layers, "
                              f"or images/{target.name}/tests/test_*.py)")
        with throwaway(engine, target, ui, purpose="verify", keep=keep) as container:
            verification.container = container
            verification.start_seconds = time.monotonic() - clock
            ui.info(f"  checking {target.name} ({len(suite.files)} test files from "
                    f"{', '.join(owner for owner, _ in suite.parts)}) in {container}")
            results = run_suite(suite, target, container, junit, connection)
            verification.suite_seconds = time.monotonic() - clock - verification.start_seconds
    except VerifyError as exc:
        verification.record = _record(target, suite, started, False, reason=str(exc),
                                      seconds=time.monotonic() - clock)
        records.save(root, verification.record)
        raise
    checks = tuple(_check(c) for c in results["checks"])
    verification.commands = list(results.get("commands", ()))
    reason = _failure_reason(checks, int(results.get("exitstatus", 1)))
    profile, note = ("", {}) if reason else (restricted.DEFAULT, restricted.opt_out(target.plan))
    if not reason and restricted.expected(target.plan) == restricted.RESTRICTED:
        reason, note = second_pass(engine, suite, target, ui, connection)
        profile = restricted.DEFAULT if reason else restricted.RESTRICTED
    record = _record(target, suite, started, not reason, checks=checks, reason=reason,
                     seconds=time.monotonic() - clock)
    verification.record = _with_extra(record, verification, connection, junit)
    if overrides(target.plan):  # tests of a layer that this image skips or replaces, and why
        verification.record.extra["overrides"] = overrides(target.plan)
    verification.record = dataclasses.replace(
        verification.record, profile=profile,
        extra={**verification.record.extra, "profile": note})
    records.save(root, verification.record)
    return verification


def run_suite(suite: Suite, target: Target, container: str, junit: Path | None,
              connection: str) -> dict[str, Any]:
    """pytest in a subprocess against `container`; the results its kiln.testing plugin wrote."""
    with tempfile.TemporaryDirectory(prefix="kiln-verify-") as tmp:
        info, results = Path(tmp, "info.json"), Path(tmp, "results.json")
        ini = Path(tmp, "pytest.ini")
        plan = target.plan
        info.write_text(json.dumps({
            "image": target.name, "ref": target.ref, "image_id": target.image_id,
            "container": container, "layers": [layer.name for layer in plan.all_layers],
            "params": dict(plan.params), "config": config_to_json(plan.config),
            "service": is_service(plan.config), "owners": suite.owners,
            "overrides": overrides(plan), "results": str(results)}))
        # Our own ini: the project's pytest settings (addopts, markers) are not the suite's.
        ini.write_text("[pytest]\npython_files = test_*.py\njunit_family = xunit1\n"
                       f"junit_suite_name = kiln.{target.name}\n")
        # Only the plugins the suite needs: whatever else is installed next to kiln
        # (hypothesis, benchmark...) would cost seconds to load and could change the results.
        argv: list[str | Path] = [
            sys.executable, "-m", "pytest", "-c", ini, "--rootdir", suite.root,
            "-p", "testinfra.plugin", "-p", "kiln.testing", "-p", "no:cacheprovider",
            "--import-mode=importlib",
            f"--hosts={connection}://{container}", "-q", "--tb=short", "--color=no",
            f"--ignore-glob=*/{VM_ONLY}*"]
        if junit:
            junit.parent.mkdir(parents=True, exist_ok=True)
            argv += ["--junitxml", junit.resolve()]
        argv += [suite.root / folder for _, folder in suite.parts]
        # Bytecode (and pytest's rewritten test modules) is cached in the state folder,
        # never in the layers' tests/ folders.
        env = {INFO_ENV: str(info), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
               "PYTHONPYCACHEPREFIX": str(records.state_dir(suite.root) / "pycache")}
        failure = ""
        try:
            run(argv, env=env, cwd=suite.root)
        except CommandError as exc:
            failure = str(exc)  # pytest exits non-zero when a check fails: the results say
        if not results.is_file():
            raise VerifyError(f"the suite of '{target.name}' did not run:\n{failure}")
        return cast(dict[str, Any], json.loads(results.read_text()))


def second_pass(engine: Engine, suite: Suite, target: Target, ui: UI,
                connection: str) -> tuple[str, dict[str, Any]]:
    """The suite again, in a container run the restricted way; (failure reason or "", note)."""
    clock = time.monotonic()
    try:
        profile = restricted.restricted(target.plan)
    except RestrictedUnfit as exc:
        return f"restricted profile: {exc}", {"name": restricted.RESTRICTED, "error": str(exc)}
    note: dict[str, Any] = profile.to_json()
    try:
        with throwaway(engine, target, ui, purpose="restricted", profile=profile) as container:
            ui.info(f"  checking {target.name} again under the restricted profile "
                    f"({profile.describe()})")
            results = run_suite(suite, target, container, None, connection)
    except VerifyError as exc:
        note["error"] = str(exc)
        return (f"restricted profile ({profile.describe()}): {exc} (declare what it writes "
                f"as `tmpfs` or `volumes` and the capabilities it needs, or opt out with "
                f"`unrestricted: <reason>`; docs/hardening.md)"), note
    checks = tuple(_check(c) for c in results["checks"])
    note["counts"] = {o: sum(c.outcome == o for c in checks)
                      for o in ("passed", "failed", "error", "skipped")}
    note["seconds"] = round(time.monotonic() - clock, 3)
    reason = _failure_reason(checks, int(results.get("exitstatus", 1)))
    if reason:
        note["failures"] = failure_lines(_record(target, suite, "", False, checks=checks))
        return f"restricted profile ({profile.describe()}): {reason}", note
    return "", note


# the container -------------------------------------------------------------------------------
@contextmanager
def throwaway(engine: Engine, target: Target, ui: UI, *, purpose: str, keep: bool = False,
              service: bool | None = None, profile: Profile | None = None) -> Iterator[str]:
    """A container of the image, started and ready; removed afterwards unless `keep`.

    Its name is chosen here, before the engine creates it, so that cleanup finds it even when
    an interrupt lands between the engine creating it and kiln learning its id.
    """
    plan = target.plan
    service = is_service(plan.config) if service is None else service
    name = f"kiln-{purpose}-{target.name}-{secrets.token_hex(4)}"
    created = False
    try:
        engine.create_container(
            target.ref, name, entrypoint=None if service else KEEP_ALIVE,
            labels={PURPOSE_LABEL: purpose, "dev.kiln.image": target.name},
            healthcheck=_health_override(plan.config.healthcheck) if service else
            {"test": ["NONE"]}, user=profile.user if profile else None,
            host=profile.host_options() if profile else None)
        created = True
        require_shell(engine, name, target)
        engine.start_container(name)
        wait_ready(engine, name, target, service)
        yield name
    finally:
        if keep and created:
            ui.info(f"[bold yellow]kept[/] container {name}: enter it with "
                    f"`docker exec -it {name} sh`, remove it with `docker rm -f {name}`")
        else:
            with _signals_deferred():
                engine.remove_container(name)


def require_shell(engine: Engine, container: str, target: Target) -> None:
    """testinfra runs every check as `/bin/sh -c ...`: an image without one cannot be verified."""
    path = "/bin/sh"
    for _ in range(8):  # follow links: /bin/sh -> dash, /bin/sh -> /bin/busybox
        stat = engine.stat_path(container, path)
        if stat is None:
            break
        link = stat.get("linkTarget") or ""
        if not (int(stat.get("mode", 0)) & (1 << 27)) or not link:  # Go's os.ModeSymlink
            return
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
    raise VerifyError(
        f"{target.plan.image.path}: '{target.name}' has no /bin/sh ({path} is missing), so it "
        "cannot be verified: testinfra runs every check as `/bin/sh -c <command>` inside the "
        "container (add a layer that installs a shell, e.g. busybox, or verify a debug variant "
        "of the image that has one)")


def wait_ready(engine: Engine, container: str, target: Target, service: bool,
               timeout: float | None = None) -> None:
    """Running (any image); healthy (a service with a healthcheck); up for SETTLE (without)."""
    hc = target.plan.config.healthcheck if service else None
    limit = timeout if timeout is not None else _health_budget(hc)
    began = time.monotonic()
    while True:
        state = engine.inspect_container(container)["State"]
        waited = time.monotonic() - began
        if state.get("Status") in ("exited", "dead"):
            raise VerifyError(_not_ready(engine, container, target, f"exited with code "
                                         f"{state.get('ExitCode')} before it was ready"))
        health = state.get("Health")
        if state.get("Running"):
            if not service:
                return
            if hc is None and waited >= SETTLE:
                return
            if hc is not None and health and health.get("Status") == "healthy":
                return
        if waited > limit:
            last = (health or {}).get("Log") or [{}]
            output = str(last[-1].get("Output", "")).strip()
            what = ("did not become healthy" if hc else "did not start") + f" within {limit:.0f}s"
            if output:
                what += f"; last healthcheck said: {output}"
            raise VerifyError(_not_ready(engine, container, target, what))
        time.sleep(0.1)


def _not_ready(engine: Engine, container: str, target: Target, what: str) -> str:
    logs = engine.container_logs(container, LOG_TAIL).rstrip()
    lines = [f"{target.plan.image.path}: service '{target.name}' {what} "
             f"(container {container})"]
    lines += [f"  | {line}" for line in logs.split("\n")] if logs else ["  (no output)"]
    return "\n".join(lines)


def _health_override(hc: Healthcheck | None) -> dict[str, Any] | None:
    """The image's own healthcheck, polled often: only the waiting between checks is shorter."""
    if hc is None:
        return None
    return {"test": ["CMD", *hc.test], "interval": HEALTH_POLL_NS,
            "timeout": _ns(hc.timeout, 5.0), "retries": hc.retries,
            "start_period": _ns(hc.start_period, 5.0)}


def _health_budget(hc: Healthcheck | None) -> float:
    """What production would allow before calling the service unhealthy."""
    if hc is None:
        return MIN_HEALTH_WAIT
    budget = (_ns(hc.start_period, 5.0) + hc.retries * (_ns(hc.interval, 30.0)
                                                         + _ns(hc.timeout, 5.0))) / 1e9
    return max(MIN_HEALTH_WAIT, budget)


def _ns(duration: str, default_seconds: float) -> int:
    """A definition's duration ("1m30s", checked at compose) in nanoseconds, as the engine's
    API wants it; the default when it is empty."""
    found = durations.nanoseconds(duration)
    return int(default_seconds * 1e9) if found is None else found


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Cleanup is not cut short by a second Ctrl-C or a SIGTERM: they land once it is done."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def open_shell(engine: Engine, target: Target, ui: UI, user: str | None = None) -> int:
    """An interactive /bin/sh in a fresh, idle container of the image; its exit status.

    The service (if any) is not started: to poke at it running, use `verify --keep`. The
    docker CLI does the terminal plumbing, which docker-py does not offer.
    """
    cli = shutil.which("docker")
    if cli is None:
        raise KilnError("docker: command not found (the shell needs the docker CLI; "
                        "apt-get install docker.io)")
    with throwaway(engine, target, ui, purpose="shell", service=False) as container:
        argv = [cli, "exec", "-it" if sys.stdin.isatty() else "-i"]
        argv += ["-u", user] if user else []
        ui.info(f"shell in {container} ({target.ref}); it is removed when the shell exits")
        return interactive([*argv, container, "/bin/sh"])


# records and reports -------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(target: Target, suite: Suite, started: str, passed: bool, *,
            checks: tuple[CheckResult, ...] = (), seconds: float = 0.0,
            reason: str = "") -> VerifyRecord:
    return VerifyRecord(image=target.name, image_id=target.image_id,
                        fingerprint=target.fingerprint, target=TARGET, suite=suite.digest,
                        passed=passed, checks=checks, started=started,
                        seconds=round(seconds, 3), reason=reason)


def _with_extra(record: VerifyRecord, run: Verification, connection: str,
                junit: Path | None) -> VerifyRecord:
    extra: dict[str, Any] = {
        "container": run.container, "connection": connection,
        "start_seconds": round(run.start_seconds, 3),
        "suite_seconds": round(run.suite_seconds, 3), "commands": len(run.commands)}
    if junit:
        extra["junit"] = str(junit)
    return VerifyRecord(**{**record.__dict__, "extra": extra})


def _check(data: dict[str, Any]) -> CheckResult:
    outcome = data["outcome"] if data["outcome"] in ("passed", "failed", "error",
                                                     "skipped") else "error"
    return CheckResult(layer=data["owner"], test=data["nodeid"],
                       outcome=cast(Outcome, outcome), message=data.get("message", ""))


def _failure_reason(checks: tuple[CheckResult, ...], status: int) -> str:
    """Why the run did not pass, or "" when it did."""
    failed = [c for c in checks if c.outcome in ("failed", "error")]
    if failed:
        shown = "; ".join(f"layer '{c.layer}': {_test_name(c.test)}" for c in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        return f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed: {shown}{more}"
    if status == 5:
        return "no tests were collected"
    if status != 0:
        return f"the suite did not pass (pytest exit status {status})"
    if not any(c.outcome == "passed" for c in checks):
        return "no check passed (all skipped)"
    return ""


PARAM_ID_RE = re.compile(r"\[[^\]]*\]$")


def _test_name(nodeid: str) -> str:
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
                         f"{_test_name(check.test)} ({check.test})")
            lines += [f"    {line}" for line in check.message.split("\n") if line.strip()][:12]
    return lines


def override_lines(record: VerifyRecord) -> list[str]:
    """The tests of a layer this image skipped or replaced, each with who did and why."""
    return [f"{o['layer']}::{o['test']} {describe(o)}"
            for o in record.extra.get("overrides", ())]


def summary(record: VerifyRecord) -> str:
    counts = record.counts
    verdict = "[bold green]verified[/]" if record.passed else "[bold red]NOT verified[/]"
    return (f"{verdict} {record.image} {record.image_id[7:19]}: {counts['passed']} passed, "
            f"{counts['failed']} failed, {counts['error']} errors, {counts['skipped']} skipped "
            f"in {record.seconds:.1f}s")


def show(ui: UI, record: VerifyRecord) -> None:
    """The per-layer report, on stderr (stdout belongs to the task's result)."""
    for layer, passed, failed, errors, skipped in per_layer(record):
        mark = "[green]ok[/]" if not (failed or errors) else "[red]FAILED[/]"
        ui.info(f"  {mark} {layer}: {passed} passed" + (f", {failed} failed" if failed else "")
                + (f", {errors} errors" if errors else "")
                + (f", {skipped} skipped" if skipped else ""))
    for line in override_lines(record):
        ui.err.print(f"  {line}", markup=False, highlight=False)
    for line in failure_lines(record):
        ui.err.print(line, markup=False, highlight=False)
    ui.info(summary(record))


# the gate ------------------------------------------------------------------------------------
def gate(engine: Engine, root: Path, target: Target, ui: UI, *, enabled: bool = True,
         keep: bool = False, force: bool = False) -> VerifyRecord:
    """Verify a freshly built image unless a passing record already covers it; raise on failure.

    A record covers an image when it is for the same image ID and the same suite. With
    `enabled=False` (--no-verify) the image is left unverified, loudly; an earlier passing
    record of exactly this image and suite is kept, since those bytes did pass.
    """
    suite = find_suite(root, target.plan)
    existing = records.load(root, target.image_id, TARGET)
    covered = (existing is not None and existing.passed and existing.suite == suite.digest
               and existing.profile == restricted.expected(target.plan))
    if not enabled:
        if covered:
            assert existing is not None
            ui.warn(f"--no-verify: not verifying {target.name}; it keeps its passing record "
                    f"of {existing.started} (same image ID and suite)")
            return existing
        ui.warn(f"--no-verify: {target.name} was NOT verified ({len(suite.files)} test files "
                f"skipped); it is unverified, and publishing will refuse it until "
                f"`invoke verify {target.name}` passes")
        record = _record(target, suite, _now(), False, reason=NOT_VERIFIED)
        records.save(root, record)
        return record
    if covered and not force:
        assert existing is not None
        ui.info(f"[bold]{target.name}[/]: verified on {existing.started} "
                f"(same image ID and suite; not verified again)")
        return existing
    if not has_tests(suite):
        ui.warn(f"{target.plan.image.path}: '{target.name}' has no tests; it stays unverified "
                f"(add layers/<layer>/tests/test_*.py)")
        record = _record(target, suite, _now(), False, reason="no tests")
        records.save(root, record)
        return record
    with ui.task(f"verify {target.name} ({target.image_id[7:19]})"):
        verification = verify(engine, root, target, ui, keep=keep)
    show(ui, verification.record)
    if not verification.record.passed:
        raise VerifyError(f"{target.plan.image.path}: '{target.name}' failed verification: "
                          f"{verification.record.reason} (the image is built but unverified; "
                          f"`invoke verify {target.name}` reruns its suite)")
    return verification.record


__all__ = ["Suite", "Target", "Verification", "VerifyError", "find_suite", "gate", "is_service",
           "open_shell", "show", "throwaway", "verify"]
