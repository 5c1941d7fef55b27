"""Fixtures for tests against the real Docker engine. Everything a test creates is removed.

The engine may be shared: cleanup and leak checks look only at this session's containers and
image references (enginescope.py says how they are known).

The test base is Debian's busybox-static put in a rootfs tarball made here, byte for byte the
same every time, so most integration tests build in seconds without the Debian mirror.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from enginescope import (
    SESSION,
    named_images,
    remove_orphans,
    remove_refs,
    session_containers,
    session_refs,
    track_registry,
)

from kiln import session as kiln_session
from kiln.context import Context
from kiln.embedded import LocalRegistry
from kiln.engine import Engine
from kiln.errors import EngineError
from kiln.load import Project
from kiln.ui import UI

BUSYBOX = Path("/bin/busybox")
SESSION_STARTED = time.time()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """KILN_SESSION is set around each integration test, its fixtures' setup and teardown
    included (module-scoped ones too), and around nothing else: unit tests see no session."""
    if "integration" not in str(item.fspath):
        yield
        return
    old = os.environ.get(kiln_session.ENV)
    os.environ[kiln_session.ENV] = SESSION
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(kiln_session.ENV, None)
        else:
            os.environ[kiln_session.ENV] = old


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return Engine.connect()
    except EngineError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Docker engine: {exc}")


def busybox_tar_bytes() -> bytes:
    """A minimal root filesystem: busybox, its applets as links, root in passwd, /tmp."""
    if not BUSYBOX.is_file():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()

    def info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o755) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, 315532800, 0, 0
        return ti

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("bin", "etc", "root", "sbin", "tmp", "usr", "usr/bin", "usr/sbin", "var"):
            tar.addfile(info(folder, tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755))
        data = BUSYBOX.read_bytes()
        ti = info("bin/busybox")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
        for applet in sorted(set(applets)):
            if applet in ("bin/busybox", "") or "/" not in applet:
                continue
            link = info(applet, tarfile.SYMTYPE, 0o777)
            link.linkname = "/bin/busybox"
            tar.addfile(link)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                           ("etc/group", "root:x:0:\n")):
            ti = info(name, mode=0o644)
            ti.size = len(text)
            tar.addfile(ti, io.BytesIO(text.encode()))
    return buf.getvalue()


@pytest.fixture(scope="session")
def busybox_tar() -> bytes:
    return busybox_tar_bytes()


ProjectFactory = Callable[..., Project]


@pytest.fixture
def make_project(tmp_path: Path, busybox_tar: bytes) -> ProjectFactory:
    """Write a project: {"layers/x/layer.yaml": "...", "images/y.yaml": "..."}.

    `{busybox}` in an image file stands for a rootfs base of the busybox test tarball.
    """

    def make(files: dict[str, str | bytes]) -> Project:
        root = tmp_path / "project"
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "layers").mkdir(exist_ok=True)
        (root / "rootfs").mkdir(exist_ok=True)
        (root / "rootfs" / "busybox.tar").write_bytes(busybox_tar)
        sha = hashlib.sha256(busybox_tar).hexdigest()
        base = f"base:\n  rootfs:\n    path: rootfs/busybox.tar\n    sha256: {sha}\n"
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content).replace("{busybox}\n", base))
        return Project(root)

    return make


@pytest.fixture
def kiln_ctx(engine: Engine) -> Callable[[Project], Context]:
    def make(project: Project, **options: object) -> Context:
        return Context(project=project, engine=engine, ui=UI(verbose=True), **options)  # type: ignore[arg-type]

    return make


@pytest.fixture(autouse=True)
def leaves_nothing(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test removes the images it created, and must leave no container of this session
    behind. Only this session's references and containers are looked at."""
    if "engine" not in request.fixturenames:
        yield
        return
    engine: Engine = request.getfixturevalue("engine")
    before_refs = session_refs(engine)
    before_containers = {c.id for c in session_containers(engine)}
    started = time.time()
    yield
    leaked = [c for c in session_containers(engine) if c.id not in before_containers]
    for container in leaked:
        engine.remove_container(container)
    if not request.node.get_closest_marker("keep_images"):
        remove_refs(engine, session_refs(engine) - before_refs)
        remove_orphans(engine, named_images(engine, started))
    assert not leaked, f"kiln left containers behind: {[c.name for c in leaked]}"


@pytest.fixture(scope="session", autouse=True)
def session_cleanup() -> Iterator[None]:
    """At the end of the run, what the session kept (keep_images tests) goes too."""
    yield
    try:
        engine = Engine.connect()
    except EngineError:
        return
    for container in session_containers(engine):
        engine.remove_container(container)
    remove_refs(engine, session_refs(engine))
    remove_orphans(engine, named_images(engine, SESSION_STARTED))


@pytest.fixture
def scratch_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "scratch"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    """A real registry process (Debian's docker-registry) on a loopback port, storage in tmp."""
    local = LocalRegistry(tmp_path / "registry")
    local.start()
    track_registry(local)
    yield local
    local.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Docker config of our own: the machine's credentials play no part."""
    path = tmp_path / "docker-config"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path
