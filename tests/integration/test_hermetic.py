"""Hermetic builds on the real engine: locked packages from fetched .debs, no network in any
build step, secrets that leave no trace, and images that come out bit for bit the same.

Package tests start from the bootstrapped Debian base the sample images use (made once by
mmdebstrap, then found in the engine) and install one tiny package, netbase.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from kiln import aptlock, lockfile, session
from kiln.context import prepare
from kiln.errors import KilnError
from kiln.imagediff import diff_images
from kiln.load import Project
from kiln.lockfile import LockError
from kiln.pipeline import build_image, ensure_base

DEBIAN = {
    "layers/net/layer.yaml": """\
        packages: [netbase]
        run:
          - test -s /etc/services
    """,
    "images/tiny.yaml": """\
        base:
          bootstrap:
            suite: bookworm
            variant: minbase
        layers: [net]
    """,
}


def lock_image(ctx, name: str, refresh: bool = False) -> aptlock.LockUpdate:
    prepared = prepare(ctx.project, name)

    def base() -> str:
        ensure_base(ctx, prepared)
        return prepared.base_ref

    return aptlock.update(ctx.engine, prepared.plan, base, ctx.project.root, refresh=refresh)


def saved_files(engine, ref: str) -> dict[str, bytes]:
    """Every file of `docker save`, layer tars opened: {"<layer>/<path>": content}."""
    out: dict[str, bytes] = {}
    blob = b"".join(engine.api.get_image(ref))
    with tarfile.open(fileobj=io.BytesIO(blob)) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()  # type: ignore[union-attr]
            out[member.name] = data
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for inner in layer.getmembers():
                        f = layer.extractfile(inner) if inner.isfile() else None
                        out[f"{member.name}:{inner.name}"] = f.read() if f else b""
    return out


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("KILN_CACHE_DIR", str(path))
    return path


def test_lock_then_build_installs_exactly_the_locked_debs(make_project, kiln_ctx, engine,
                                                         cache_dir):
    project = make_project(DEBIAN)
    ctx = kiln_ctx(project)
    update = lock_image(ctx, "tiny")
    assert update.changed and update.diff[0].startswith("+ netbase ")
    lock = lockfile.read(project.root, "tiny")
    assert lock is not None
    (pkg,) = lock.packages
    assert (pkg.name, pkg.arch, len(pkg.sha256)) == ("netbase", "all", 64)
    assert lock_image(ctx, "tiny").changed is False  # a fitting lock is left alone

    result = build_image(ctx, "tiny")
    out = engine.client.containers.run(result.ref, ["dpkg-query", "-W", "netbase"],
                                       remove=True, labels=session.labels()).decode()
    assert out.split() == ["netbase", pkg.version]
    assert (cache_dir / "debs" / "sha256" / pkg.sha256).is_file()
    files = saved_files(engine, result.ref)
    assert not [n for n in files if n.endswith(".deb") or "kiln-debs" in n]


def test_stale_lock_stops_the_build_naming_image_and_change(make_project, kiln_ctx):
    project = make_project(DEBIAN)
    ctx = kiln_ctx(project)
    lock_image(ctx, "tiny")
    path = project.root / "layers/net/layer.yaml"
    path.write_text(path.read_text().replace("[netbase]", "[netbase, mime-support]"))
    project = type(project)(project.root)
    with pytest.raises(LockError, match=r"images/tiny.lock is stale for image 'tiny': "
                                        r"layer 'net': added mime-support"):
        build_image(kiln_ctx(project), "tiny")


def test_missing_lock_stops_the_build(make_project, kiln_ctx):
    project = make_project(DEBIAN)
    with pytest.raises(LockError, match=r"images/tiny.lock: missing.*invoke lock tiny"):
        build_image(kiln_ctx(project), "tiny")


def test_version_gone_from_the_mirror_is_named(make_project, kiln_ctx, cache_dir):
    project = make_project(DEBIAN)
    ctx = kiln_ctx(project)
    lock_image(ctx, "tiny")
    path = lockfile.lock_path(project.root, "tiny")
    lock = path.read_text()
    (pkg,) = lockfile.parse(lock, "x").packages
    gone = pkg.url.replace(pkg.version.replace("+", "%2b"), "0.0.1")
    path.write_text(lock.replace(pkg.url, gone).replace(pkg.sha256, "0" * 64)
                    .replace(f'"{pkg.version}"', '"0.0.1"'))
    with pytest.raises(LockError, match=r"images/tiny.lock: netbase 0.0.1 \(all\) is gone from "
                                        r"the mirror .*answered 404.*--refresh tiny"):
        build_image(kiln_ctx(type(project)(project.root)), "tiny")


def test_refresh_prints_the_diff_package_by_package(make_project, kiln_ctx):
    project = make_project(DEBIAN)
    ctx = kiln_ctx(project)
    lock_image(ctx, "tiny")
    path = lockfile.lock_path(project.root, "tiny")
    (pkg,) = lockfile.parse(path.read_text(), "x").packages
    path.write_text(path.read_text().replace(f'"{pkg.version}"', '"6.0"'))
    update = lock_image(kiln_ctx(type(project)(project.root)), "tiny", refresh=True)
    assert update.changed
    assert update.diff == (f"~ netbase 6.0 -> {pkg.version}",)


NETWORK = {
    "layers/probe/layer.yaml": """\
        run:
          - cat /proc/net/dev > /netdev
          - >-
            if wget -q -T 3 -O /dev/null http://deb.debian.org/;
            then echo online; else echo offline; fi > /reach
    """,
    "images/probe.yaml": """\
        {busybox}
        layers: [probe]
    """,
}


def test_build_steps_have_no_network(make_project, kiln_ctx, engine):
    project = make_project(NETWORK)
    result = build_image(kiln_ctx(project), "probe")
    netdev = engine.client.containers.run(result.ref, ["cat", "/netdev", "/reach"],
                                          remove=True, labels=session.labels()).decode()
    interfaces = [line.split(":")[0].strip() for line in netdev.splitlines()[2:] if ":" in line]
    assert interfaces == ["lo"]
    assert netdev.splitlines()[-1] == "offline"
    history = json.dumps(engine.api.history(result.ref))
    assert "--network" not in history


SMALL = {
    "layers/hello/layer.yaml": """\
        files:
          - src: motd
            dest: /etc/motd
            mode: "0600"
          - src: bin/
            dest: /usr/local/bin/
            mode: "0755"
        run:
          - echo hello > /greeting && mkdir -p /var/lib/app && touch /var/lib/app/when
          - ln /greeting /var/lib/app/greeting-link
        cmd: ["cat", "/greeting"]
    """,
    "layers/hello/files/motd": "welcome\n",
    "layers/hello/files/bin/hello": "#!/bin/sh\necho hello\n",
    "images/small.yaml": """\
        {busybox}
        version: "1.0"
        layers: [hello]
    """,
}
# The busybox fixture image, built by kiln: guards against changes that break reproducibility.
# It depends on /bin/busybox (Debian's busybox-static); update it when that package changes.
GOLDEN = Path(__file__).with_name("golden_digests.json")


def _forget(engine, result) -> None:
    """Remove every tag of a built image, so that the next build cannot reuse it."""
    for tag in result.tags:
        engine.remove_image(tag)


def test_same_inputs_give_the_same_image_id(make_project, kiln_ctx, engine, tmp_path):
    """Second build: no cache, another clock time, another checkout path, with network."""
    project = make_project(SMALL)
    first = build_image(kiln_ctx(project), "small")
    built_at = int(time.time())
    _forget(engine, first)
    while int(time.time()) == built_at:  # another second on the clock: `date`, mtimes
        time.sleep(0.01)
    other = tmp_path / "another" / "checkout"
    shutil.copytree(project.root, other)
    second = build_image(kiln_ctx(type(project)(other), nocache=True, network="default"),
                         "small")
    assert second.fingerprint == first.fingerprint
    assert second.image_id == first.image_id


def test_golden_digest_of_the_busybox_fixture_image(make_project, kiln_ctx):
    result = build_image(kiln_ctx(make_project(SMALL)), "small")
    golden = json.loads(GOLDEN.read_text())
    if os.environ.get("KILN_UPDATE_GOLDEN"):
        golden["small"] = result.image_id
        GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    assert result.image_id == golden["small"], (
        "the busybox fixture image no longer builds to its golden digest: a change broke "
        "reproducibility, or changed the image on purpose (then KILN_UPDATE_GOLDEN=1)")


def test_diff_builds_names_the_file_that_records_the_build(make_project, kiln_ctx, engine):
    files = dict(SMALL)
    files["layers/hello/layer.yaml"] = files["layers/hello/layer.yaml"].replace(
        # random bytes, not the clock: two builds within one second must still differ
        "touch /var/lib/app/when", "head -c 16 /dev/urandom | od -An -tx1 > /var/lib/app/when")
    project = make_project(files)
    first = build_image(kiln_ctx(project, force=True), "small")
    engine.tag(first.image_id, f"{session.prefix()}kiln-test/small:first")
    _forget(engine, first)
    second = build_image(kiln_ctx(project, force=True, nocache=True), "small")
    assert second.image_id != first.image_id
    lines = list(diff_images(engine, f"{session.prefix()}kiln-test/small:first", second.ref))
    assert lines == ["layer 4: /var/lib/app/when: content"]


CANARY = "kiln-canary-7f3a9c1e-do-not-ship"
SECRET = {
    "layers/fetch/layer.yaml": """\
        secrets: [token]
        run:
          - wc -c < /run/secrets/token > /token-length && grep -q canary /run/secrets/token
    """,
    "images/secretive.yaml": """\
        {busybox}
        layers: [fetch]
    """,
}


def test_canary_secret_is_nowhere_in_the_image(make_project, kiln_ctx, engine, tmp_path,
                                               monkeypatch):
    project = make_project(SECRET)
    secret = tmp_path / "token"
    secret.write_text(CANARY)
    result = build_image(kiln_ctx(project, secrets={"token": secret}), "secretive")
    out = engine.client.containers.run(result.ref, ["cat", "/token-length"], remove=True,
                                    labels=session.labels())
    assert out.decode().strip() == str(len(CANARY))  # the step did read it
    files = saved_files(engine, result.ref)
    assert any(name.endswith(".json") for name in files)  # the config and manifest are in
    leaks = [name for name, data in files.items()
             if CANARY.encode() in data or CANARY.encode() in name.encode()]
    assert leaks == []
    assert not [n for n in files if n.endswith(":run/secrets/token")]
    history = json.dumps(engine.api.history(result.ref)) + json.dumps(
        engine.inspect_image(result.ref))
    assert CANARY not in history
    # From the environment instead of a file: same image (the value is not an input).
    monkeypatch.setenv("KILN_SECRET_TOKEN", CANARY)
    again = build_image(kiln_ctx(type(project)(project.root), force=True), "secretive")
    assert again.image_id == result.image_id


def test_missing_secret_is_a_clear_error(make_project, kiln_ctx, monkeypatch):
    monkeypatch.delenv("KILN_SECRET_TOKEN", raising=False)
    project = make_project(SECRET)
    with pytest.raises(KilnError, match=r"images/secretive.yaml: the build of 'secretive' needs "
                                        r"secrets that were not given: token \(--secret "
                                        r"token=FILE or KILN_SECRET_TOKEN\); declared by "
                                        r"layers fetch"):
        build_image(kiln_ctx(project), "secretive")


@pytest.mark.slow
@pytest.mark.parametrize("image", ["base", "nginx", "python", "base-vm"])
def test_sample_image_builds_to_the_same_digest_twice(kiln_ctx, engine, image):
    """From the committed locks, the second time without any cache. base-vm's packages make
    host keys and an initramfs in their maintainer scripts that later steps delete or make
    again: normalisation drops them from the earlier layers (kiln.normalize.shadowed)."""
    project = Project(Path(__file__).resolve().parents[2])
    first = build_image(kiln_ctx(project), image)
    kept = f"{session.prefix()}kiln-test/{image}:first"  # kept while the ref is rebuilt
    engine.tag(first.image_id, kept)
    second = build_image(kiln_ctx(project, force=True, nocache=True), image)
    assert second.image_id == first.image_id, list(
        diff_images(engine, kept, second.ref))
    engine.remove_image(kept)
