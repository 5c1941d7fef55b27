"""SIGINT, SIGTERM and SIGKILL at each phase of publish, promote, rollback and revoke, against a
real registry: nothing is left behind (no lease, no container, no temp folder), the registry
is never half-written (no tag names a partial image; a channel stays where a signed move puts
it), and a rerun completes.

kiln runs as a real `kiln` process; KILN_PAUSE_AT=<phase> makes it stop at that named point
(kiln.release.session.checkpoint), so the signal lands exactly there.
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from released import build_verified

from kiln import records
from kiln.config import load_config
from kiln.embedded import LocalRegistry
from kiln.load import Project
from kiln.registry import Registry
from kiln.release.api import open_session, promote, publish, pull
from kiln.signing import keygen
from kiln.ui import UI
from kilncli import KilnCLI

REPO = "kiln/small"


@pytest.fixture
def project(make_project: Callable[..., Project], registry: LocalRegistry, docker_config: Path,
            monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    p = make_project({"layers/hello/layer.yaml": "run:\n  - echo one > /hello\n",
                      "images/small.yaml": '{busybox}\nversion: "1.0"\nlayers: [hello]\n'})
    config = load_config(p.root)
    keygen(config.signing_key, config.public_key)
    return p



Kiln = Callable[..., tuple[int, str]]


@pytest.fixture
def kiln(kiln_cli: KilnCLI, registry: LocalRegistry) -> Kiln:
    """kiln(root, *args, pause=None, sig=None): run `kiln <args>` against the test's registry;
    with `pause`, send `sig` once it stops there. -> (exit code, output)"""
    return functools.partial(_kiln, kiln_cli, str(registry.address))


def _kiln(kiln_cli: KilnCLI, registry: str, root: Path, *args: str, pause: str | None = None,
          sig: signal.Signals | None = None) -> tuple[int, str]:
    env = {"KILN_PROJECT": str(root), "KILN_REGISTRY": registry}
    if pause:
        env["KILN_PAUSE_AT"] = pause
    proc = kiln_cli.start(root, *args, env=env, merged=True)
    out: list[str] = []
    try:
        if pause:
            assert proc.stdout is not None
            deadline = time.monotonic() + 120
            for line in proc.stdout:
                out.append(line)
                if f"paused at {pause}" in line:
                    assert sig is not None
                    proc.send_signal(sig)
                    break
                assert time.monotonic() < deadline, "".join(out)
            else:
                pytest.fail(f"kiln {' '.join(args)} never reached {pause}:\n{''.join(out)}")
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(out) + (rest or "")


def leftovers(root: Path, reg: Registry, engine: object) -> list[str]:
    found = [f"lease {t}" for t in reg.tags(REPO) if t.endswith(".lease")]
    tmp = records.state_dir(root) / "tmp"
    found += [f"temp {p.name}" for p in tmp.iterdir()] if tmp.is_dir() else []
    found += [f"container {c.name}" for c in engine.containers()
              if str(c.name).startswith("kiln-dpkg-query-")]
    return found


def test_interrupted_release_steps_clean_up_and_rerun(project, kiln_ctx, engine, registry, kiln):
    """SIGINT and SIGTERM (which kiln turns into the same unwinding) alternate over the phases."""
    root = project.root
    reg = Registry(str(registry.address))
    build_verified(root, kiln_ctx, "one")
    a = publish(open_session(project, UI(quiet=True), engine), "small")
    promote(open_session(project, UI(quiet=True), engine), "small", "stable")
    steps = [(("publish", "small"), "uploaded"), (("publish", "small"), "lease-claimed"),
             (("publish", "small"), "tag-leased"), (("publish", "small"), "pushed"),
             (("promote", "small", "stable"), "promote-pending"),
             (("rollback", "small", "stable"), "rollback-pending"),
             (("promote", "small", "candidate"), "lease-claimed")]
    for n, (args, phase) in enumerate(steps):
        sig = (signal.SIGINT, signal.SIGTERM)[n % 2]
        if args[0] == "publish":
            build_verified(root, kiln_ctx, f"{sig.name}{n}")  # new content: a real publish
        code, out = kiln(root, *args, pause=phase, sig=sig)
        assert code == 130 and "interrupted" in out, (phase, out)
        assert leftovers(root, reg, engine) == [], phase
        if phase == "rollback-pending":
            # the channel is where a signed move puts it: pull accepts it, rollback never
            # considers the unconfirmed move
            assert pull(open_session(project, UI(quiet=True), engine),
                        "small:stable").digest != a.digest
        code, out = kiln(root, *args)  # the rerun completes
        assert code == 0, (phase, out)
    assert reg.resolve(REPO, "stable").digest == a.digest  # promoted b, rolled back to a
    assert leftovers(root, reg, engine) == []


def test_killed_release_steps_leave_nothing_a_rerun_cannot_finish(project, kiln_ctx, engine,
                                                                  registry, kiln):
    """SIGKILL runs no cleanup: the rerun takes over its own stale lease at once (same user and
    host, dead pid) and sweeps the killed run's temp folder and containers."""
    root = project.root
    reg = Registry(str(registry.address))
    build_verified(root, kiln_ctx, "one")
    publish(open_session(project, UI(quiet=True), engine), "small")
    promote(open_session(project, UI(quiet=True), engine), "small", "stable")
    for n, (args, phase) in enumerate([(("publish", "small"), "uploaded"),
                                       (("publish", "small"), "tag-leased"),
                                       (("promote", "small", "stable"), "promote-pending"),
                                       (("revoke", "small@STABLE"), "revoke-listed")]):
        if args[0] == "publish":
            build_verified(root, kiln_ctx, f"killed{n}")
        if args[0] == "revoke":
            args = ("revoke", f"small@{reg.resolve(REPO, 'stable').digest}")
        code, out = kiln(root, *args, pause=phase, sig=signal.SIGKILL)
        assert code == -signal.SIGKILL, out
        started = time.monotonic()
        code, out = kiln(root, *args)
        assert code == 0, (phase, out)
        assert time.monotonic() - started < 60, phase  # not the lease's 120 s expiry
        assert leftovers(root, reg, engine) == [], phase
