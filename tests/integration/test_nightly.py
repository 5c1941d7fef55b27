"""The nightly run against the real engine, a real registry and a real Debian repository.

`hello` installs kiln-hello from repositories on loopback (tests/integration/aptrepo.py): a
`debian` one and a `debian-security` one; they reach its apt sources through its parent image
`repo`, whose layer drops a sources.list.d file. `hello-child` is built on `hello`; `other`
(busybox) is unrelated.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aptrepo import Mirror, repo_files

import kiln.release.api as publishing
import kiln.release.lease as lease_mod
from kiln import nightly
from kiln.config import load_config
from kiln.embedded import LocalRegistry
from kiln.load import Project
from kiln.nightly import Options, Result, run_nightly
from kiln.registry import Registry
from kiln.release.api import open_session
from kiln.report import PackageChange
from kiln.signing import keygen
from kiln.ui import UI


def debian_files(mirror: Mirror) -> dict[str, str]:
    return {
        **repo_files(*mirror.sources),
        "layers/hello/layer.yaml": "packages: [kiln-hello]\n",
        "layers/hello/tests/test_hello.py": HELLO_TEST,
        "images/hello.yaml": 'base:\n  image: repo\nversion: "1"\nlayers: [hello]\n',
        "layers/child/layer.yaml": "run:\n  - cp /usr/share/kiln-hello/version /child\n",
        "layers/child/tests/test_child.py": (
            "def test_child(host):\n    assert host.file('/child').is_file\n"),
        "images/hello-child.yaml": 'base:\n  image: hello\nversion: "1"\nlayers: [child]\n',
        **busybox_files("one"),
    }


HELLO_TEST = """\
def test_hello_installed(host):
    assert host.package("kiln-hello").is_installed
"""
HELLO_FAILS_AT_1_2 = """\
def test_hello_installed(host):
    assert host.file("/usr/share/kiln-hello/version").content_string.strip() != "1.2"
"""


def busybox_files(text: str, name: str = "other") -> dict[str, str]:
    return {
        f"layers/{name}/layer.yaml": f"run:\n  - echo {text} > /{name}\n",
        f"layers/{name}/tests/test_{name}.py": (
            f"def test_{name}(host):\n"
            f"    assert host.file('/{name}').content_string.strip() == '{text}'\n"),
        f"images/{name}.yaml": '{busybox}\nversion: "1"\nlayers: [' + name + "]\n",
    }


@pytest.fixture
def apt_repo(tmp_path: Path) -> Iterator[Mirror]:
    mirror = Mirror(tmp_path / "apt")
    mirror.main.add("kiln-hello", "1.0")
    mirror.security.index()
    with mirror.server:
        yield mirror


@pytest.fixture
def published_env(registry: LocalRegistry, docker_config: Path, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> LocalRegistry:
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    return registry


def setup_project(project: Project) -> Project:
    config = load_config(project.root)
    keygen(config.signing_key, config.public_key)
    return project


def night(kiln_ctx: Callable[..., Any], root: Path, report: Path | None = None,
          **options: Any) -> Result:
    return run_nightly(kiln_ctx(Project(root)), Options(report_dir=report, **options))


def statuses(result: Result) -> dict[str, str]:
    return {o.image: o.status for o in result.report.outcomes}


def tags(registry: LocalRegistry, image: str) -> list[str]:
    client = Registry(str(registry.address))
    return [t for t in client.tags(f"kiln/{image}") if re.match(r"^\d+-\d{8}-[0-9a-f]{12}$", t)]


def channel(registry: LocalRegistry, image: str, name: str = "candidate") -> str | None:
    found = Registry(str(registry.address)).resolve(f"kiln/{image}", name)
    return found.digest if found else None


def writes(registry: LocalRegistry) -> int:
    """Requests that change the registry, from its access log."""
    return sum(bool(re.search(r'"(PUT|POST|PATCH|DELETE) ', line))
               for line in registry.log.read_text().splitlines() if line.startswith("127.0.0.1"))


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_a_package_update_rebuilds_that_image_and_its_child_only(
        make_project, kiln_ctx, engine, apt_repo, published_env, tmp_path):
    registry = published_env
    project = setup_project(make_project(debian_files(apt_repo)))
    root = project.root
    (root / ".gitignore").write_text(".kiln/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "definitions")

    # First night: every image is new; it is built, verified, published, candidate set.
    first = night(kiln_ctx, root)
    assert statuses(first) == {"repo": "rebuilt", "other": "rebuilt", "hello": "rebuilt",
                               "hello-child": "rebuilt"}, first.report.to_markdown()
    assert all(o.channels == ("candidate",) and o.tag for o in first.report.outcomes)
    assert (root / "images/hello.lock").read_text().count('"kiln-hello", version: "1.0"') == 1
    git(root, "add", "-A")
    git(root, "commit", "-qm", "locks")
    before = {image: tags(registry, image) for image in statuses(first)}
    candidates = {image: channel(registry, image) for image in statuses(first)}

    # Nothing new: nothing built, no new tag, nothing pushed -- nothing written at all.
    written = writes(registry)
    quiet = night(kiln_ctx, root, tmp_path / "quiet")
    assert set(statuses(quiet).values()) == {"unchanged"}
    assert not quiet.report.changed and not quiet.commit_message
    assert quiet.report.headline().startswith("nothing changed: 4 images unchanged")
    assert writes(registry) == written
    assert {image: tags(registry, image) for image in before} == before

    # kiln-hello 1.1 reaches the security archive: hello and hello-child only.
    apt_repo.security.add("kiln-hello", "1.1")
    update = night(kiln_ctx, root, tmp_path / "update", commit=True)
    assert statuses(update) == {"repo": "unchanged", "other": "unchanged", "hello": "rebuilt",
                                "hello-child": "rebuilt"}
    by_image = {o.image: o for o in update.report.outcomes}
    assert by_image["hello"].packages == (PackageChange("kiln-hello", "1.0", "1.1", True),)
    assert str(by_image["hello"].packages[0]) == "kiln-hello: 1.0 -> 1.1 [security]"
    assert by_image["hello-child"].reason == "its base image 'hello' was rebuilt"
    for image in ("hello", "hello-child"):
        assert len(tags(registry, image)) == 2
        assert channel(registry, image) == by_image[image].digest != candidates[image]
        assert by_image[image].channels == ("candidate",)
    for image in ("repo", "other"):
        assert tags(registry, image) == before[image]
        assert channel(registry, image) == candidates[image]
    markdown = (tmp_path / "update" / "nightly.md").read_text()
    assert "- **security** `kiln-hello`: 1.0 -> 1.1" in markdown
    message = (tmp_path / "update" / "commit-message.txt").read_text()
    assert message.startswith("locks: 1 package update for hello (1 security)\n")
    assert "images/hello.lock:\n  kiln-hello: 1.0 -> 1.1 [security]" in message
    assert update.committed
    assert git(root, "log", "-1", "--format=%B").strip() == message.strip()
    assert git(root, "status", "--porcelain", "images") == ""

    # kiln-hello 1.2 fails hello's verification; other changes too. hello fails, its child
    # is skipped, both keep their channels; other is still published.
    apt_repo.main.add("kiln-hello", "1.2")
    (root / "layers/hello/tests/test_hello.py").write_text(HELLO_FAILS_AT_1_2)
    for rel, text in busybox_files("two").items():
        (root / rel).write_text(text.replace("{busybox}\n", _busybox_base(root)))
    hello_at = channel(registry, "hello")
    child_at = channel(registry, "hello-child")
    broken = night(kiln_ctx, root, tmp_path / "broken")
    assert statuses(broken) == {"repo": "unchanged", "other": "rebuilt", "hello": "failed",
                                "hello-child": "skipped"}
    by_image = {o.image: o for o in broken.report.outcomes}
    assert "failed verification" in by_image["hello"].reason
    assert by_image["hello-child"].reason == "its base image 'hello' failed"
    assert broken.report.failed
    assert channel(registry, "hello") == hello_at and channel(registry, "hello-child") == child_at
    assert len(tags(registry, "hello")) == 2
    assert channel(registry, "other") == by_image["other"].digest != candidates["other"]
    assert broken.lock_files == () and broken.commit_message == ""  # hello.lock: not committed


def _busybox_base(root: Path) -> str:
    sha = hashlib.sha256((root / "rootfs/busybox.tar").read_bytes()).hexdigest()
    return f"base:\n  rootfs:\n    path: rootfs/busybox.tar\n    sha256: {sha}\n"


def test_an_interrupted_night_finishes_on_the_rerun_without_new_tags(
        make_project, kiln_ctx, engine, published_env, monkeypatch):
    registry = published_env
    project = setup_project(make_project({**busybox_files("a", "aa"),
                                          **busybox_files("b", "bb")}))
    real = publishing.publish

    def dies_after_publishing_bb(s: Any, name: str, tag: str | None = None) -> Any:
        result = real(s, name, tag)
        if name == "bb":
            raise KeyboardInterrupt  # killed after the tag was put, before candidate moved
        return result

    monkeypatch.setattr(nightly.publish, "publish", dies_after_publishing_bb)
    with pytest.raises(KeyboardInterrupt):
        night(kiln_ctx, project.root)
    assert len(tags(registry, "bb")) == 1 and channel(registry, "bb") is None
    monkeypatch.setattr(nightly.publish, "publish", real)

    rerun = night(kiln_ctx, project.root)
    assert statuses(rerun) == {"aa": "unchanged", "bb": "rebuilt"}
    (bb,) = [o for o in rerun.report.outcomes if o.image == "bb"]
    assert bb.reason.startswith("built by an earlier run")
    assert bb.channels == ("candidate",)
    assert len(tags(registry, "bb")) == 1 and len(tags(registry, "aa")) == 1
    assert channel(registry, "bb") == bb.digest
    again = night(kiln_ctx, project.root)
    assert set(statuses(again).values()) == {"unchanged"}


def test_a_build_failure_skips_children_and_spares_unrelated_images(
        make_project, kiln_ctx, engine, published_env):
    registry = published_env
    files = {**busybox_files("ok", "fine"), **busybox_files("x", "broken"),
             "layers/broken/layer.yaml": "run:\n  - exit 3\n",
             "layers/kid/layer.yaml": "run:\n  - touch /kid\n",
             "layers/kid/tests/test_kid.py": "def test_kid(host):\n    assert True\n",
             "images/kid.yaml": 'base:\n  image: broken\nversion: "1"\nlayers: [kid]\n'}
    project = setup_project(make_project(files))
    result = night(kiln_ctx, project.root)
    assert statuses(result) == {"broken": "failed", "fine": "rebuilt", "kid": "skipped"}
    assert channel(registry, "fine") is not None and channel(registry, "broken") is None
    session = open_session(Project(project.root), UI(quiet=True), engine)
    assert session.registry.tags("kiln/kid") == []
