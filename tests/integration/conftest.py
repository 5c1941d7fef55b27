"""Fixtures for tests against the real Docker engine. Everything a test creates is removed.

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
from collections.abc import Callable, Iterator
from pathlib import Path

import docker.errors
import pytest

from kiln.embedded import LocalRegistry
from kiln.engine import Engine
from kiln.errors import EngineError
from kiln.load import Project
from kiln.pipeline import Context
from kiln.ui import UI

BUSYBOX = Path("/bin/busybox")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


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


def _image_ids(engine: Engine) -> set[str]:
    return {img["Id"] for img in engine.api.images(all=True)}


def remove_images(engine: Engine, ids: set[str]) -> None:
    """Remove images, children before parents (the engine refuses the other order)."""
    for _ in range(10):
        if not ids:
            return
        for image_id in sorted(ids):
            try:
                engine.api.remove_image(image_id, force=True)
                ids.discard(image_id)
            except docker.errors.NotFound:
                ids.discard(image_id)
            except docker.errors.APIError:
                pass  # a child still exists; the next pass gets it
        ids &= _image_ids(engine)
    raise AssertionError(f"could not remove images: {sorted(ids)}")


@pytest.fixture(autouse=True)
def leaves_nothing(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test removes the images it created, and must leave no kiln container behind."""
    if "engine" not in request.fixturenames:
        yield
        return
    engine: Engine = request.getfixturevalue("engine")
    before_images = _image_ids(engine)
    before_containers = {c.id for c in engine.containers()}
    yield
    leaked = [c for c in engine.containers() if c.id not in before_containers]
    for container in leaked:
        container.remove(force=True, v=True)
    if not request.node.get_closest_marker("keep_images"):
        remove_images(engine, _image_ids(engine) - before_images)
    assert not leaked, f"kiln left containers behind: {[c.name for c in leaked]}"


@pytest.fixture
def scratch_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "scratch"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    """Debian's docker-registry on a loopback port, with its own storage; stopped after."""
    local = LocalRegistry(tmp_path / "registry")
    local.start()
    yield local
    local.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Docker config of our own: the machine's credentials play no part."""
    path = tmp_path / "docker-config"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path
