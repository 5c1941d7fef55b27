"""Patch to fleet, the whole loop on the real engine (issue 15 item 4).

A security update of a package appears in the package mirror (a .deb built with dpkg-deb and
published into the loopback Debian repository of tests/integration/aptrepo.py). `kiln nightly
--deploy` refreshes the lock, rebuilds the image that installs it, verifies and publishes it,
moves `candidate`, rolls the canary service (following `candidate`), promotes `stable` and
rolls the service that follows `stable`. The test checks every task now has the new version of
the package and prints the patch-to-fleet latency: from the package's arrival in the mirror to
the last task replaced (a figure, not an assert: speed goals live in bench/).

The image is the cheapest real one with apt: a Debian minbase bootstrap (`repo`, which only adds
the loopback sources) and `hello` on it, installing kiln-hello; `sleep infinity` stands in for a
service, healthy when the package's file is there.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import test_fleet
import test_nightly
from aptrepo import Mirror, repo_files
from test_fleet import FAST, label_service
from test_nightly import HELLO_TEST, setup_project

from kiln.embedded import LocalRegistry
from kiln.engine import Engine
from kiln.fleet.deploy import deploy
from kiln.fleet.swarm import Swarm
from kiln.load import Project
from kiln.release.api import open_session
from kiln.ui import UI
from kilncli import KilnCLI

# keep_images: the session keeps the Debian bootstrap this test makes, so the tests after it
# that bootstrap the same suite (test_hermetic, test_lock_errors, test_nightly, test_samples)
# find it instead of running mmdebstrap again; the session removes it at the end.
pytestmark = [pytest.mark.slow, pytest.mark.keep_images]
# The fleet and nightly tests' fixtures, shared rather than copied.
swarm = test_fleet.swarm
apt_repo = test_nightly.apt_repo
published_env = test_nightly.published_env
VERSION_FILE = "/usr/share/kiln-hello/version"


def patch_files(mirror: Mirror) -> dict[str, str]:
    return {
        **repo_files(*mirror.sources),
        "layers/hello/layer.yaml": f"""\
packages: [kiln-hello]
user: "65534:65534"
entrypoint: ["/bin/sleep", "infinity"]
healthcheck:
  test: ["/usr/bin/test", "-s", "{VERSION_FILE}"]
  interval: 1s
  timeout: 2s
  retries: 2
  start_period: 1s
""",
        "layers/hello/tests/test_hello.py": HELLO_TEST,
        "images/hello.yaml": 'base:\n  image: repo\nversion: "1"\nlayers: [hello]\n',
    }


def versions(engine: Engine, swarm: Swarm, service: str) -> list[str]:
    """The kiln-hello version in every running task of `service`."""
    out = []
    for task in swarm.tasks(service):
        if task.get("DesiredState") != "running":
            continue
        container = (task.get("Status") or {}).get("ContainerStatus", {}).get("ContainerID")
        result = engine.exec(str(container), ["/bin/cat", VERSION_FILE])
        out.append(result.stdout.decode().strip() if result.exit_code == 0 else "?")
    return out


def test_a_security_update_reaches_the_fleet_through_a_canary(
        make_project: Callable[..., Project], engine: Engine, swarm: Swarm,
        apt_repo: Mirror, published_env: LocalRegistry, kiln_cli: KilnCLI,
        tmp_path: Path) -> None:
    registry = published_env
    root = setup_project(make_project(patch_files(apt_repo))).root
    env = {"KILN_REGISTRY": str(registry.address), "KILN_CACHE_DIR": str(tmp_path / "cache")}

    def kiln(*args: str) -> str:
        done = kiln_cli(root, *args, env=env)
        assert done.returncode == 0, f"kiln {' '.join(args)}:\n{done.stderr}\n{done.stdout}"
        return done.stdout

    # The fleet before: kiln-hello 1.0 everywhere; one canary follows candidate, two tasks
    # follow stable.
    kiln("nightly", "--json")
    kiln("promote", "hello:candidate", "stable")
    s = open_session(Project(root), UI(quiet=True), engine)
    before = s.registry.resolve("kiln/hello", "stable")
    assert before is not None
    canary, main = (f"kiln-test-{k}-{uuid.uuid4().hex[:6]}" for k in ("canary", "main"))
    try:
        deploy(s, canary, "hello:candidate", policy=FAST, timeout=180)
        deploy(s, main, "hello:stable", replicas=2, policy=FAST, timeout=180)
    finally:
        for service in (canary, main):
            if swarm.service(service):
                label_service(engine, service)
    assert versions(engine, swarm, canary) + versions(engine, swarm, main) == ["1.0"] * 3

    # kiln-hello 1.1 reaches the security archive; the night takes it to the fleet.
    arrived = time.time()
    apt_repo.security.add("kiln-hello", "1.1")
    report = json.loads(kiln("nightly", "--deploy", "--json", "--report",
                             str(tmp_path / "report")))
    night_done = time.time()

    statuses = {o["image"]: o["status"] for o in report["outcomes"]}
    assert statuses == {"repo": "unchanged", "hello": "rebuilt"}, statuses
    (fleet,) = report["fleet"]
    after = s.registry.resolve("kiln/hello", "candidate")
    assert after is not None and after.digest != before.digest
    assert s.registry.resolve("kiln/hello", "stable").digest == after.digest  # promoted
    assert (fleet["image"], fleet["promoted"], fleet["problem"]) == ("hello", True, "")
    assert fleet["fix"] == ["kiln-hello: 1.0 -> 1.1 [security]"]
    assert [(d["service"], d["digest"], d["follows"]) for d in fleet["canaries"]] == [
        (canary, after.digest, "hello:candidate")]
    assert [(d["service"], d["digest"], d["follows"]) for d in fleet["rolled"]] == [
        (main, after.digest, "hello:stable")]
    assert fleet["rolled"][0]["canary"] is not None  # two tasks: one first, then the other
    for service in (canary, main):
        assert swarm.running_image(service).endswith("@" + after.digest)
    assert versions(engine, swarm, canary) + versions(engine, swarm, main) == ["1.1"] * 3

    markdown = (tmp_path / "report" / "nightly.md").read_text()
    assert f"- `{canary}` (canary) now runs hello" in markdown
    assert f"- `{main}` now runs hello `{after.digest[:19]}` (hello:stable): kiln-hello: " \
           "1.0 -> 1.1 [security]" in markdown
    assert json.loads((tmp_path / "report" / "fleet.json").read_text()) == report["fleet"]

    last = max(d["finished"] for d in (*fleet["canaries"], *fleet["rolled"]))
    assert arrived < last <= night_done
    print(f"\npatch to fleet (Debian minbase image, 1 canary + 2 stable tasks): "
          f"{last - arrived:.1f}s from the package's arrival to the last task replaced "
          f"(the night: {fleet['seconds_to_fleet']}s from its start)")
