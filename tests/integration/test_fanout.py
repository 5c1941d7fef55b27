"""The nightly fan-out on one machine: each "runner" is a state folder of its own
(KILN_STATE_DIR) and starts from an engine without the images earlier runners made (removed
between levels), as a fresh CI runner would; the registry (Debian's docker-registry on
loopback) is the only thing they share. `kid` is built on `mid`, `mid` on `top` (busybox):
levels 2, 1 and 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from enginescope import named_images, remove_orphans, remove_refs, session_refs

import kiln.release.lease as lease_mod
from kiln.context import prepare
from kiln.embedded import LocalRegistry
from kiln.engine import Engine
from kiln.load import Project
from kiln.nightly import Options, run_nightly
from kiln.registry import Registry
from kiln.report import ImageOutcome
from kiln.signing import keygen

FILES = {
    "layers/top/layer.yaml": "run:\n  - echo up > /top\n",
    "layers/top/tests/test_top.py": (
        "def test_top(host):\n    assert host.file('/top').content_string.strip() == 'up'\n"),
    "images/top.yaml": '{busybox}\nversion: "1"\nlayers: [top]\n',
    "layers/mid/layer.yaml": "run:\n  - cp /top /mid\n",
    "layers/mid/tests/test_mid.py": (
        "def test_mid(host):\n    assert host.file('/mid').content_string.strip() == 'up'\n"),
    "images/mid.yaml": 'base:\n  image: top\nversion: "1"\nlayers: [mid]\n',
    "layers/kid/layer.yaml": "run:\n  - cp /mid /kid\n",
    "layers/kid/tests/test_kid.py": (
        "def test_kid(host):\n    assert host.file('/kid').content_string.strip() == 'up'\n"),
    "images/kid.yaml": 'base:\n  image: mid\nversion: "1"\nlayers: [kid]\n',
}


def test_a_level_2_runner_pulls_its_published_parent_and_builds_one_only_when_unpublished(
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
    refs = {name: prepare(project, name).ref for name in ("top", "mid")}
    ours, started = session_refs(engine), time.time()

    def runner(state: str, only: str) -> ImageOutcome:
        # A fresh runner's engine: without the images earlier runners made, named or not.
        remove_refs(engine, session_refs(engine) - ours)
        remove_orphans(engine, named_images(engine, started))
        monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / state))
        (outcome,) = run_nightly(kiln_ctx(Project(project.root)),
                                 Options(only=(only,), pull_parents=True)).report.outcomes
        return outcome

    # Level 1 before level 0 published: its parent is built here (and not published).
    unpublished = runner("a", "mid")
    assert unpublished.status == "rebuilt", unpublished.reason
    assert [(p.image, p.action) for p in unpublished.parents] == [("top", "built")]
    assert engine.image_id(rootfs) is not None
    assert channel(registry, "top") is None

    # Level 0 publishes top; level 1, on another runner, pulls it and publishes mid: the same
    # bytes as mid built on a local top.
    assert runner("b", "top").status == "rebuilt"
    level1 = runner("c", "mid")
    assert [(p.image, p.action, p.digest) for p in level1.parents] == [
        ("top", "pulled", channel(registry, "top"))]
    assert level1.digest == unpublished.digest

    # Level 2 pulls mid, and nothing of top's but what mid is made of.
    level2 = runner("d", "kid")
    assert level2.status == "rebuilt", level2.reason
    (pulled,) = level2.parents
    mid_at = channel(registry, "mid")
    assert pulled.action == "pulled" and pulled.digest == mid_at and pulled.bytes > 0
    assert mid_at is not None and engine.image_id(refs["mid"]) == config_of(registry, "mid",
                                                                             mid_at)
    assert engine.image_id(refs["top"]) is None and engine.image_id(rootfs) is None
    assert channel(registry, "kid") == level2.digest

    # Published, but not signed by the key this runner trusts: refused loudly, never rebuilt.
    keygen(tmp_path / "other.key", tmp_path / "other.pub")
    monkeypatch.setenv("KILN_PUBLIC_KEY", str(tmp_path / "other.pub"))
    refused = runner("e", "kid")
    assert refused.status == "failed" and refused.parents == ()
    assert "kiln/mid" in refused.reason and "sign" in refused.reason.lower(), refused.reason
    assert all(engine.image_id(ref) is None for ref in (rootfs, *refs.values()))


def channel(registry: LocalRegistry, image: str, name: str = "candidate") -> str | None:
    found = Registry(str(registry.address)).resolve(f"kiln/{image}", name)
    return found.digest if found else None


def config_of(registry: LocalRegistry, image: str, digest: str) -> str:
    found = Registry(str(registry.address)).manifest(f"kiln/{image}", digest)
    assert found is not None
    return str(found.json["config"]["digest"])
