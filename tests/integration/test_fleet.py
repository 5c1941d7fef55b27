"""The fleet on the real engine: a one-node Swarm, a loopback registry, busybox web images.

The swarm is initialised only when the engine is not in one, and left again afterwards.
Services, the overlay network and the front proxy are labelled and removed, pass or fail.
The front proxy is Debian's haproxy (from the host, bind-mounted into a busybox container on
the overlay network, published on loopback) finding the tasks through `tasks.<service>` DNS:
the routing mesh needs IPVS, which this machine kind lacks, so services use dnsrr.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from released import record_verified

import kiln.release.lease as lease_mod
from kiln import session as kiln_session
from kiln.config import load_config
from kiln.context import Context
from kiln.embedded import LocalRegistry
from kiln.engine import Engine
from kiln.fleet.attest import signed_manifest
from kiln.fleet.deploy import DeployError, deploy
from kiln.fleet.drift import DriftError, judge_container
from kiln.fleet.swarm import Policy, Swarm
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.release.api import PublishResult, open_session, promote, publish
from kiln.run import free_port
from kiln.signing import keygen
from kiln.ui import UI
from kilncli import KilnCLI

HAPROXY = Path("/usr/sbin/haproxy")
LABEL = "dev.kiln.test.fleet"
STATUS = ("Package: hello\nStatus: install ok installed\nVersion: 1.0\n\n"
          "Package: extra\nStatus: install ok installed\nVersion: 2.0\n")
FAST = Policy(monitor=2.0, stop_grace=2.0)


def web_files(version: str, health: str = "/index.html") -> dict[str, str]:
    layer = f"""\
        files:
          - {{src: index.html, dest: /www/index.html}}
          - {{src: status, dest: /var/lib/dpkg/status}}
          - {{src: copyright, dest: /usr/share/doc/extra/copyright}}
        entrypoint: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
        healthcheck:
          test: ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080{health}"]
          interval: 1s
          timeout: 2s
          retries: 2
          start_period: 1s
        mutable: [/www/uploads]
        """
    return {"layers/web/layer.yaml": layer, "layers/web/files/index.html": f"{version}\n",
            "layers/web/files/status": STATUS, "layers/web/files/copyright": "extra's\n",
            # busybox httpd runs as root here: these tests are about rollouts, not hardening
            "images/web.yaml": '{busybox}\nversion: "1.0"\nlayers: [web]\n'
                               'unrestricted: a root busybox httpd stands in for a service\n'}


@pytest.fixture
def swarm(engine: Engine) -> Iterator[Swarm]:
    """The engine in a swarm; left as it was found."""
    door = Swarm(engine)
    was_active = door.active()
    if not was_active:
        try:
            engine.client.swarm.init(advertise_addr="127.0.0.1")
        except docker.errors.APIError as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"this engine cannot start a swarm: {exc.explanation}")
    try:
        yield door
    finally:
        for svc in door.services(LABEL):
            door.remove(svc["Spec"]["Name"])
        _wait_gone(engine, LABEL)
        if not was_active:
            engine.client.swarm.leave(force=True)


def _wait_gone(engine: Engine, label: str) -> None:
    """Swarm removes a removed service's task containers on its own time: wait for them."""
    for _ in range(120):
        left = engine.client.containers.list(all=True, filters={"label": label},
                                             ignore_removed=True)
        tasks = [c for c in engine.client.containers.list(all=True, filters={
            "label": "com.docker.swarm.task.id"}, ignore_removed=True) if c.labels.get(
                "com.docker.swarm.service.name", "").startswith("kiln-test-")]
        if not left and not tasks:
            return
        time.sleep(0.5)


@pytest.fixture
def project(make_project: Callable[..., Project], registry: LocalRegistry, docker_config: Path,
            monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    p = make_project(web_files("v1"))
    config = load_config(p.root)
    keygen(config.signing_key, config.public_key)
    return p


def session(root: Path, engine: Engine) -> Context:
    return open_session(Project(root), UI(quiet=True), engine)


def release(root: Path, kiln_ctx: Callable[..., object], engine: Engine, version: str,
            health: str = "/index.html") -> PublishResult:
    """Build the web image saying `version`, record it verified, publish it signed."""
    for rel, text in web_files(version, health).items():
        if rel.startswith("layers/"):
            import textwrap
            (root / rel).write_text(textwrap.dedent(text))
    built = build_image(kiln_ctx(Project(root), verify=False), "web")  # type: ignore[attr-defined]
    record_verified(root, built)
    return publish(session(root, engine), "web")


def task_container(engine: Engine, service: str) -> str:
    for _ in range(60):
        found = engine.client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={service}", "status": "running"})
        if found:
            return str(found[0].id)
        time.sleep(0.5)
    raise AssertionError(f"no running task of {service}")


@pytest.fixture
def run_kiln(kiln_cli: KilnCLI, registry: LocalRegistry
             ) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`kiln ...` in a project, against the test's registry (kiln_cli scrubs KILN_*)."""
    def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return kiln_cli(root, *args, env={"KILN_REGISTRY": str(registry.address)})

    return run


def label_service(engine: Engine, service: str) -> None:
    """Services get the test label, so the fixture removes them even after a failure."""
    Swarm(engine).update(service, labels={LABEL: "1"})


# drift ---------------------------------------------------------------------------------------
def test_manifest_is_signed_and_complete(project, kiln_ctx, engine):
    first = release(project.root, kiln_ctx, engine, "v1")
    s = session(project.root, engine)
    files = signed_manifest(s, "kiln/web", first.digest)
    assert files.image_id == first.image_id
    index = files.entries["/www/index.html"]
    assert (index.type, index.mode, index.uid, index.size) == ("file", 0o644, 0, 3)
    assert files.entries["/bin/sh"].type == "symlink"
    assert files.entries["/bin/sh"].link == "/bin/busybox"
    assert files.packages == {"hello": "1.0", "extra": "2.0"}
    assert "/www/uploads" in files.mutable and "/tmp" in files.mutable


def test_drift_reports_exactly_refuses_unsigned_and_replace_restores(project, kiln_ctx, engine,
                                                                      swarm, run_kiln):
    first = release(project.root, kiln_ctx, engine, "v1")
    s = session(project.root, engine)
    promote(s, "web:" + first.tag, "stable")
    service = f"kiln-test-drift-{uuid.uuid4().hex[:6]}"
    try:
        deploy(s, service, "web:stable", policy=FAST, timeout=120)
    finally:
        if swarm.service(service):
            label_service(engine, service)
    container = task_container(engine, service)
    clean = judge_container(s, container)
    assert not clean.drifted, clean.to_json()

    script = ("echo tampered >> /www/index.html && "
              "printf 'Package: hello\\nStatus: install ok installed\\nVersion: 1.0\\n' "
              "> /var/lib/dpkg/status && rm /usr/share/doc/extra/copyright && "
              "echo scratch > /tmp/scratch && mkdir -p /www/uploads && echo u > /www/uploads/u")
    assert engine.exec(container, ["/bin/sh", "-c", script], user="0").exit_code == 0
    drift = judge_container(s, container)
    assert drift.drifted
    assert [p for p, _ in drift.changed] == ["/var/lib/dpkg/status", "/www/index.html"]
    assert all(d[0].startswith("sha256: ") for _, d in drift.changed)
    assert drift.deleted == ["/usr/share/doc/extra/copyright"]
    assert drift.added == []
    assert (drift.removed, drift.installed, drift.upgraded) == (["extra=2.0"], [], [])
    assert drift.ignored >= 3  # /tmp/scratch, /www/uploads, /www/uploads/u

    out = run_kiln(project.root, "drift", container, "--json")
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)[0]["packages"]["removed"] == ["extra=2.0"], out.stderr
    prom = run_kiln(project.root, "drift", container, "--prom")
    assert prom.returncode == 1
    assert 'kind="deleted"} 1' in prom.stdout and "kiln_drift{" in prom.stdout

    replaced = run_kiln(project.root, "drift", container, "--replace")
    assert replaced.returncode == 1, replaced.stderr
    fresh = task_container(engine, service)
    assert fresh != container
    assert not judge_container(s, fresh).drifted
    assert run_kiln(project.root, "drift", fresh).returncode == 0

    (project.root / "layers/web/files/index.html").write_text("never published\n")
    unsigned = build_image(kiln_ctx(Project(project.root), verify=False), "web")
    local = engine.run_container(unsigned.image_id, entrypoint=["/bin/sleep", "60"])
    try:
        with pytest.raises(DriftError, match="not pulled by digest"):
            judge_container(s, str(local.id))
        refused = run_kiln(project.root, "drift", str(local.id))
        assert refused.returncode == 2 and "kiln judges only images" in refused.stderr
    finally:
        engine.remove_container(local)


# rollouts ------------------------------------------------------------------------------------
HAPROXY_CFG = """\
global
  maxconn 512
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 5s
  retries 3
  option redispatch 1
  retry-on all-retryable-errors
resolvers swarm
  nameserver dns 127.0.0.11:53
  hold valid 1s
  hold obsolete 0s
  timeout resolve 200ms
  timeout retry 200ms
frontend web
  bind :8080
  default_backend tasks
backend tasks
  balance roundrobin
  option httpchk GET /index.html
  default-server check inter 300ms fall 1 rise 1 resolvers swarm init-addr none
  server-template task 6 tasks.{service}:8080
"""


@pytest.fixture
def front(engine: Engine, swarm: Swarm, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start (on demand) an overlay network and haproxy published on loopback; its URL."""
    if not HAPROXY.exists():
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    made: list[str] = []
    network = f"kiln-test-net-{uuid.uuid4().hex[:6]}"

    def start(service: str, image_id: str) -> str:
        engine.client.networks.create(network, driver="overlay", attachable=True,
                                      labels={LABEL: "1", **kiln_session.labels()})
        made.append(network)
        (tmp_path / "haproxy.cfg").write_text(HAPROXY_CFG.format(service=service))
        port = free_port()
        engine.run_container(
            image_id, entrypoint=[str(HAPROXY), "-db", "-f", "/cfg/haproxy.cfg"], user="0",
            name=f"{network}-front", network=network, labels={LABEL: "1", **kiln_session.labels()},
            ports={"8080/tcp": ("127.0.0.1", port)},
            volumes={str(tmp_path): {"bind": "/cfg", "mode": "ro"},
                     str(HAPROXY): {"bind": str(HAPROXY), "mode": "ro"},
                     "/usr/lib/x86_64-linux-gnu": {"bind": "/lib/x86_64-linux-gnu",
                                                   "mode": "ro"},
                     "/usr/lib64": {"bind": "/lib64", "mode": "ro"}})
        return f"http://127.0.0.1:{port}/index.html"

    start.network = network  # type: ignore[attr-defined]
    yield start
    for c in engine.client.containers.list(all=True, filters={"label": LABEL}):
        if c.name.endswith("-front"):
            c.remove(force=True, v=True)
    for svc in swarm.services(LABEL):
        swarm.remove(svc["Spec"]["Name"])
    _wait_gone(engine, LABEL)
    for name in made:
        for _ in range(20):
            try:
                engine.client.networks.get(name).remove()
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:
                time.sleep(0.5)


def running_tasks(swarm: Swarm, service: str) -> list[str]:
    return [str(t["ID"]) for t in swarm.tasks(service) if t.get("DesiredState") == "running"
            and (t.get("Status") or {}).get("State") == "running"]


def image_of(task: dict[str, Any]) -> str:
    return str(task["Spec"]["ContainerSpec"]["Image"])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode().strip()


def wait_serving(url: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(get(url) == text for _ in range(6)):
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} does not serve {text!r}")


class Load(threading.Thread):
    """GET in a loop until stopped (and at least `least` requests); counts what failed."""

    def __init__(self, url: str, least: int = 2000) -> None:
        super().__init__(daemon=True)
        self.url, self.least = url, least
        self.sent = self.failed = 0
        self.seen: dict[str, int] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while (not self.stop.is_set() or self.sent < self.least) and self.sent < 50000:
            self.sent += 1
            try:
                body = get(self.url)
                self.seen[body] = self.seen.get(body, 0) + 1
            except OSError as exc:
                self.failed += 1
                self.errors.append(str(exc))
            time.sleep(0.002)


def test_rolling_update_fails_no_request_and_a_bad_image_rolls_back(project, kiln_ctx, engine,
                                                                    swarm, front, run_kiln):
    s = session(project.root, engine)
    v1 = release(project.root, kiln_ctx, engine, "v1")
    promote(s, f"web:{v1.tag}", "stable")
    service = f"kiln-test-web-{uuid.uuid4().hex[:6]}"
    url = front(service, v1.image_id)
    try:
        deploy(s, service, "web:stable", replicas=3, networks=(front.network,), policy=FAST,
               timeout=180)
    finally:
        if swarm.service(service):
            label_service(engine, service)
    wait_serving(url, "v1")

    v2 = release(project.root, kiln_ctx, engine, "v2")
    promote(s, f"web:{v2.tag}", "stable")
    load = Load(url)
    load.start()
    started = time.monotonic()
    done = deploy(s, service, "web:stable", timeout=300)
    rollout = time.monotonic() - started
    load.stop.set()
    load.join(timeout=120)
    print(f"\ngood rollout of 3 tasks: {rollout:.1f}s; {load.sent} requests, {load.failed} "
          f"failed, served {load.seen}")
    assert (done.action, done.digest, done.previous) == ("updated", v2.digest, v1.digest)
    assert done.canary is not None and done.canary.seconds >= 2.0  # FAST: a 2 s watch
    assert done.to_json()["canary"]["slot"] == done.canary.slot
    assert load.sent >= 2000
    assert load.failed == 0, load.errors[:5]
    assert load.seen.get("v2", 0) > 0
    assert {image_of(t) for t in swarm.tasks(service) if t["DesiredState"] == "running"} == {
        f"{s.registry.host}/kiln/web@{v2.digest}"}
    wait_serving(url, "v2")

    bad = release(project.root, kiln_ctx, engine, "v3", health="/missing.html")
    promote(s, f"web:{bad.tag}", "candidate")
    good_tasks = running_tasks(swarm, service)
    assert len(good_tasks) == 3
    started = time.monotonic()
    with pytest.raises(DeployError) as failed:
        deploy(s, service, "web:candidate", timeout=300)
    print(f"bad rollout rolled back in {time.monotonic() - started:.1f}s: {failed.value}")
    assert "its canary failed (1 of 3 tasks ever replaced)" in str(failed.value)
    assert "rollback completed" in str(failed.value)
    # The canary stopped it: one slot ever got the bad image, the other two tasks were never
    # touched (the very same tasks still run), and the service is back on v2.
    assert len(swarm.replaced_slots(service, f"{s.registry.host}/kiln/web@{bad.digest}")) == 1
    assert len(set(good_tasks) & set(running_tasks(swarm, service))) >= 2
    assert swarm.running_image(service).endswith("@" + v2.digest)
    assert s.registry.resolve("kiln/web", "stable").digest == v2.digest
    assert s.registry.resolve("kiln/web", "candidate").digest == bad.digest
    wait_serving(url, "v2")

    out = run_kiln(project.root, "deploy", service, "web:candidate")
    assert out.returncode != 0 and "was not changed" in out.stderr, out.stderr
    assert "its canary failed (1 of 3 tasks ever replaced)" in out.stderr, out.stderr

    # The channel goes back to v1 and its follower with it (the failed deploy left the
    # service following web:stable: Swarm's rollback restored its labels too).
    back = run_kiln(project.root, "rollback", "web", "stable", "--deploy", "--json")
    assert back.returncode == 0, back.stderr
    (rolled,) = json.loads(back.stdout)["services"]
    assert (rolled["service"], rolled["digest"]) == (service, v1.digest)
    assert rolled["canary"]["slot"] in (1, 2, 3) and rolled["canary"]["seconds"] >= 2.0
    assert s.registry.resolve("kiln/web", "stable").digest == v1.digest
    assert swarm.running_image(service).endswith("@" + v1.digest)
    wait_serving(url, "v1")
