"""Verification in a container: the image's suite (kiln.testsuite) against a throwaway container.

The suite, its run in a pytest subprocess and the record are kiln.testsuite's, shared with the
VM verifier (kiln.vm.verify); this module is the container backend and the gate.

Service images (those with an entrypoint) run as in production: own entrypoint, cmd and user,
and are tested once their healthcheck says healthy. Others get an entrypoint that sleeps, so
the container stays up while the checks run in it. Either way the container is removed on
pass, failure, error, Ctrl-C and SIGTERM, unless `keep` is asked for. A service (or an image
that runs as a numeric non-root user) then runs its suite a second time, in a container
started the restricted way (kiln.restricted).
"""

from __future__ import annotations

import posixpath
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from kiln import durations, records, restricted
from kiln.engine import Engine
from kiln.errors import KilnError
from kiln.model import Healthcheck, Plan
from kiln.records import VerifyRecord
from kiln.restricted import Profile, RestrictedUnfit
from kiln.run import interactive
from kiln.suiteinfo import SCHEME
from kiln.testsuite import (
    Suite,
    SuiteRun,
    Target,
    VerifyError,
    collect,
    failure_lines,
    is_service,
    no_tests,
    override_lines,
    per_layer,
    record,
)
from kiln.testsuite import run as run_suite
from kiln.ui import UI

TARGET: Final = "container"
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


@dataclass
class Verification:
    """One run: the record kiln keeps, and what the run measured."""

    record: VerifyRecord
    container: str
    start_seconds: float = 0.0  # create, start and wait until ready
    suite_seconds: float = 0.0  # the pytest subprocess
    commands: list[dict[str, Any]] = field(default_factory=list)


def find_suite(root: Path, plan: Plan) -> Suite:
    """The image's suite as a container runs it (kiln.testsuite.collect)."""
    return collect(root, plan, TARGET)


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
    verification = Verification(record(target, suite, started, False), "")
    try:
        if not suite.has_tests:
            raise no_tests(target)
        with throwaway(engine, target, ui, purpose="verify", keep=keep) as container:
            verification.container = container
            verification.start_seconds = time.monotonic() - clock
            ui.info(f"  checking {target.name} ({len(suite.files)} test files from "
                    f"{', '.join(owner for owner, _ in suite.parts)}) in {container}")
            results = _in_container(suite, target, container, connection, junit)
            verification.suite_seconds = time.monotonic() - clock - verification.start_seconds
    except VerifyError as exc:
        verification.record = record(target, suite, started, False, reason=str(exc),
                                     seconds=time.monotonic() - clock)
        records.save(root, verification.record)
        raise
    verification.commands = list(results.commands)
    reason = results.reason
    profile, note = ("", {}) if reason else (restricted.DEFAULT, restricted.opt_out(target.plan))
    if not reason and restricted.expected(target.plan) == restricted.RESTRICTED:
        reason, note = second_pass(engine, suite, target, ui, connection)
        profile = restricted.DEFAULT if reason else restricted.RESTRICTED
    extra: dict[str, Any] = {
        "container": verification.container, "connection": connection,
        "start_seconds": round(verification.start_seconds, 3),
        "suite_seconds": round(verification.suite_seconds, 3),
        "commands": len(verification.commands), "profile": note}
    if junit:
        extra["junit"] = str(junit)
    verification.record = record(target, suite, started, not reason, checks=results.checks,
                                 reason=reason, seconds=time.monotonic() - clock, extra=extra,
                                 profile=profile)
    records.save(root, verification.record)
    return verification


def _in_container(suite: Suite, target: Target, container: str, connection: str,
                  junit: Path | None = None) -> SuiteRun:
    """The shared suite runner, its host the container through kiln's own testinfra backend."""
    return run_suite(suite, target, [f"--hosts={connection}://{container}"],
                     container=container, junit=junit)


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
            results = _in_container(suite, target, container, connection)
    except VerifyError as exc:
        note["error"] = str(exc)
        return (f"restricted profile ({profile.describe()}): {exc} (declare what it writes "
                f"as `tmpfs` or `volumes` and the capabilities it needs, or opt out with "
                f"`unrestricted: <reason>`; docs/hardening.md)"), note
    checks = results.checks
    note["counts"] = {o: sum(c.outcome == o for c in checks)
                      for o in ("passed", "failed", "error", "skipped")}
    note["seconds"] = round(time.monotonic() - clock, 3)
    if results.reason:
        note["failures"] = failure_lines(record(target, suite, "", False, checks=checks))
        return f"restricted profile ({profile.describe()}): {results.reason}", note
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


# reports -------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        skipped = record(target, suite, _now(), False, reason=NOT_VERIFIED)
        records.save(root, skipped)
        return skipped
    if covered and not force:
        assert existing is not None
        ui.info(f"[bold]{target.name}[/]: verified on {existing.started} "
                f"(same image ID and suite; not verified again)")
        return existing
    if not suite.has_tests:
        ui.warn(f"{target.plan.image.path}: '{target.name}' has no tests; it stays unverified "
                f"(add layers/<layer>/tests/test_*.py)")
        untested = record(target, suite, _now(), False, reason="no tests")
        records.save(root, untested)
        return untested
    with ui.task(f"verify {target.name} ({target.image_id[7:19]})"):
        verification = verify(engine, root, target, ui, keep=keep)
    show(ui, verification.record)
    if not verification.record.passed:
        raise VerifyError(f"{target.plan.image.path}: '{target.name}' failed verification: "
                          f"{verification.record.reason} (the image is built but unverified; "
                          f"`invoke verify {target.name}` reruns its suite)")
    return verification.record
