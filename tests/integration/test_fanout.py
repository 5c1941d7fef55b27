"""The nightly fan-out on one machine: each "runner" is a state folder of its own
(KILN_STATE_DIR) and starts from an engine without the images earlier runners made (removed
between levels), as a fresh CI runner would; the registry (Debian's docker-registry on
loopback) is the only thing they share. `kid` is built on `top` (busybox).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from enginescope import remove_refs, session_refs

import kiln.release.lease as lease_mod
from kiln.embedded import LocalRegistry
from kiln.engine import Engine
from kiln.load import Project
from kiln.nightly import Options, Result, run_nightly
from kiln.pipeline import prepare
from kiln.registry import Registry
from kiln.signing import keygen

FILES = {
    "layers/top/layer.yaml": "run:\n  - echo up > /top\n",
    "layers/top/tests/test_top.py": (
        "def test_top(host):\n    assert host.file('/top').content_string.strip() == 'up'\n"),
    "images/top.yaml": '{busybox}\nversion: "1"\nlayers: [top]\n',
    "layers/kid/layer.yaml": "run:\n  - cp /top /kid\n",
    "layers/kid/tests/test_kid.py": (
        "def test_kid(host):\n    assert host.file('/kid').content_string.strip() == 'up'\n"),
    "images/kid.yaml": 'base:\n  image: top\nversion: "1"\nlayers: [kid]\n',
}


def test_a_level_1_runner_pulls_its_published_parent_and_builds_it_only_when_unpublished(
        make_project: Callable[..., Project], kiln_ctx: Callable[..., Any], engine: Engine,
        registry: LocalRegistry, docker_config: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KILN_SIGNING_KEY", str(tmp_path / "signing.key"))  # CI's secret
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    project = make_project(FILES)
    keygen(tmp_path / "signing.key", project.root / "kiln.pub")
    rootfs = prepare(project, "top").base_ref  # imported only when top is built
    top_ref = prepare(project, "top").ref
    ours = session_refs(engine)

    def runner(state: str, only: str) -> Result:
        remove_refs(engine, session_refs(engine) - ours)  # a fresh runner's empty engine
        monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / state))
        return run_nightly(kiln_ctx(Project(project.root)),
                           Options(only=(only,), pull_parents=True))

    # Nothing published yet: the kid's runner builds its parent (and does not publish it).
    first = runner("a", "kid").report.outcomes[0]
    assert first.status == "rebuilt", first.reason
    assert [(p.image, p.action) for p in first.parents] == [("top", "built")]
    assert engine.image_id(rootfs) is not None
    assert channel(registry, "top") is None

    # Level 0 publishes top; level 1, on another runner, pulls it.
    assert runner("b", "top").report.outcomes[0].status == "rebuilt"
    top_at = channel(registry, "top")
    assert top_at is not None
    second = runner("c", "kid").report.outcomes[0]
    assert second.status == "rebuilt", second.reason
    (pulled,) = second.parents
    assert pulled.action == "pulled" and pulled.digest == top_at and pulled.bytes > 0
    assert engine.image_id(top_ref) == config_of(registry, "top", top_at)
    assert engine.image_id(rootfs) is None  # top was not built: its base was never imported
    # The kid built on the pulled parent is the kid built on a local one, bit for bit.
    assert second.digest == first.digest

    # Published, but not by the key this runner trusts: refused loudly, never rebuilt.
    keygen(tmp_path / "other.key", tmp_path / "other.pub")
    monkeypatch.setenv("KILN_PUBLIC_KEY", str(tmp_path / "other.pub"))
    third = runner("d", "kid").report.outcomes[0]
    assert third.status == "failed"
    assert "kiln/top" in third.reason and "sign" in third.reason.lower(), third.reason
    assert third.parents == ()
    assert engine.image_id(rootfs) is None and engine.image_id(top_ref) is None


def channel(registry: LocalRegistry, image: str, name: str = "candidate") -> str | None:
    found = Registry(str(registry.address)).resolve(f"kiln/{image}", name)
    return found.digest if found else None


def config_of(registry: LocalRegistry, image: str, digest: str) -> str:
    found = Registry(str(registry.address)).manifest(f"kiln/{image}", digest)
    assert found is not None
    return str(found.json["config"]["digest"])
