"""One context per run (kiln.context): build, publish and a night prepare each image once.

A parent and its child on the busybox test base, a real registry on loopback: the images are
built and verified, published, one is promoted, and a nightly runs over them, all with one
Context; `prepare` (compose, hash every context file, render) is counted per image. A second
night in a fresh context (the next process) is a no-op: one `prepare` each, no registry opened.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import kiln.release.lease as lease_mod
from kiln.config import load_config
from kiln.context import Context
from kiln.embedded import LocalRegistry
from kiln.load import Project
from kiln.nightly import Options, run_nightly
from kiln.pipeline import build_all
from kiln.release.api import promote, publish
from kiln.signing import keygen
from kiln.ui import UI
from preparecount import count_prepare

FILES = {
    "layers/hello/layer.yaml": "run:\n  - echo one > /hello\n",
    "layers/hello/tests/test_hello.py": (
        "def test_hello(host):\n    assert host.file('/hello').content_string == 'one\\n'\n"),
    "layers/kid/layer.yaml": "run:\n  - echo kid > /kid\n",
    "layers/kid/tests/test_kid.py": (
        "def test_kid(host):\n    assert host.file('/kid').exists\n"),
    "images/small.yaml": '{busybox}\nversion: "1"\nlayers: [hello]\n',
    "images/kid.yaml": 'base:\n  image: small\nversion: "1"\nlayers: [kid]\n',
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    return count_prepare(monkeypatch)


def test_build_publish_and_night_prepare_each_image_once(
        make_project, engine, registry: LocalRegistry, docker_config: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, calls: Counter[str]) -> None:
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    project = make_project(FILES)
    config = load_config(project.root)
    keygen(config.signing_key, config.public_key)

    ctx = Context(project, engine, UI(quiet=True))
    assert [r.image for r in build_all(ctx)] == ["small", "kid"]
    assert all(record.passed for record in ctx.verified.values())
    done = {name: publish(ctx, name) for name in ("small", "kid")}
    assert promote(ctx, "small", "stable").tag == done["small"].tag  # the local build's tag
    night = run_nightly(ctx, Options(refresh=False))
    assert {o.image: o.status for o in night.report.outcomes} == {"small": "rebuilt",
                                                                  "kid": "rebuilt"}
    assert {o.image: o.tag for o in night.report.outcomes} == {n: d.tag for n, d in done.items()}
    assert calls == {"small": 1, "kid": 1}

    calls.clear()
    again = Context(Project(project.root), engine, UI(quiet=True))  # the next process
    noop = run_nightly(again, Options(refresh=False))
    assert {o.status for o in noop.report.outcomes} == {"unchanged"}
    assert calls == {"small": 1, "kid": 1}
    assert again._registry is None  # a no-op night asks the registry nothing
