"""Publishing against a real registry: Debian's docker-registry on a loopback port, per test.

Each test starts its own registry process (own config, filesystem storage in tmp, delete
enabled) and stops it afterwards; images come from the busybox test base, so they are tiny.
"""

from __future__ import annotations

import base64
import crypt
import json
import os
import shutil
import subprocess
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from released import build_verified, session

import kiln.registry as registry_mod
import kiln.release.lease as lease_mod
from kiln import records
from kiln.config import load_config
from kiln.embedded import LocalRegistry
from kiln.errors import KilnError
from kiln.fingerprint import image_repository
from kiln.load import Project
from kiln.registry import (
    OCI_MANIFEST,
    Registry,
    RegistryAuthError,
    RegistryUnavailable,
    sha256_digest,
)
from kiln.release import cosign
from kiln.release.api import (
    catalog,
    history,
    promote,
    publish,
    pull,
    revoke,
    rollback,
    sbom,
)
from kiln.release.errors import (
    ImmutableTagError,
    PublishError,
    Revoked,
    SignatureRefused,
    Tampered,
    TrustError,
    Unsigned,
)
from kiln.release.names import sidecar
from kiln.release.provenance import SLSA, VERIFICATION
from kiln.release.trust import check_trust
from kiln.run import free_port
from kiln.signing import canonical_json, keygen
from kilncli import KilnCLI

warnings.filterwarnings("ignore", category=DeprecationWarning, module="crypt")


def files(text: str = "one") -> dict[str, str]:
    return {
        "layers/hello/layer.yaml": f"run:\n  - echo {text} > /hello\n",
        "images/small.yaml": '{busybox}\nversion: "1.0"\nlayers: [hello]\n',
    }


@pytest.fixture
def project(make_project: Callable[..., Project], registry: LocalRegistry, docker_config: Path,
            monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    p = make_project(files())
    config = load_config(p.root)
    keygen(config.signing_key, config.public_key)
    return p




def access_log_count(local: LocalRegistry, needle: str) -> int:
    return sum(needle in line for line in local.log.read_text().splitlines()
               if line.startswith("127.0.0.1 - "))


# publish -----------------------------------------------------------------------------------
def test_publish_signs_reads_back_and_republish_uploads_nothing(project, kiln_ctx, engine,
                                                                registry):
    built = build_verified(project.root, kiln_ctx)
    s = session(project.root, engine)
    first = publish(s, "small")
    assert first.action == "published"
    day = records.first_built(project.root, built.fingerprint)[:10].replace("-", "")
    assert first.tag == f"1.0-{day}-{built.image_id[7:19]}"  # when first built, not 19800101
    assert day != "19800101"
    assert first.bytes_uploaded > 0
    reg = Registry(str(registry.address))
    assert reg.resolve("kiln/small", first.tag).digest == first.digest
    assert sidecar(first.digest, "sig") in reg.tags("kiln/small")
    trust = check_trust(s, "kiln/small", first.digest)
    assert trust.image_id == built.image_id
    assert trust.provenance["fingerprint"] == built.fingerprint
    assert trust.provenance["layers"] == ["hello"]
    assert trust.provenance["verification"]["passed"] is True

    uploads = access_log_count(registry, "/blobs/uploads/")
    again = publish(session(project.root, engine), "small")
    assert again.action == "up to date"
    assert (again.digest, again.tag) == (first.digest, first.tag)
    assert (again.bytes_uploaded, again.blobs_uploaded) == (0, 0)
    assert access_log_count(registry, "/blobs/uploads/") == uploads  # not one upload started


def test_only_verified_images_are_published(project, kiln_ctx, engine, registry):
    built = build_verified(project.root, kiln_ctx, passed=False)
    with pytest.raises(KilnError, match="failed verification"):
        publish(session(project.root, engine), "small")
    (records.state_dir(project.root) / "verified" / "container" /
     f"{built.image_id[7:]}.json").unlink()
    with pytest.raises(KilnError, match="never verified"):
        publish(session(project.root, engine), "small")
    # verified, then a test was added: not publishable until verified again
    build_verified(project.root, kiln_ctx)
    tests = project.root / "layers/hello/tests"
    tests.mkdir()
    (tests / "test_new.py").write_text("def test_new(host):\n    assert host.file('/hello')\n")
    with pytest.raises(PublishError, match="another test suite"):
        publish(session(project.root, engine), "small")
    assert Registry(str(registry.address)).tags("kiln/small") == []


def test_an_immutable_tag_never_names_other_content(project, kiln_ctx, engine, registry):
    build_verified(project.root, kiln_ctx, "one")
    first = publish(session(project.root, engine), "small", tag="1.0-pinned")
    build_verified(project.root, kiln_ctx, "two")
    with pytest.raises(ImmutableTagError) as err:
        publish(session(project.root, engine), "small", tag="1.0-pinned")
    assert "already names " + first.digest in str(err.value)
    assert "left untouched" in str(err.value)
    reg = Registry(str(registry.address))
    assert reg.resolve("kiln/small", "1.0-pinned").digest == first.digest
    # the new content gets its own immutable tag
    second = publish(session(project.root, engine), "small")
    assert second.digest != first.digest and second.tag != "1.0-pinned"


def test_reserved_tags_are_refused(project, kiln_ctx, engine):
    build_verified(project.root, kiln_ctx)
    for tag in ("stable", "x.sig", "sha256-abc", "bad tag"):
        with pytest.raises(PublishError):
            publish(session(project.root, engine), "small", tag=tag)


# channels ----------------------------------------------------------------------------------
def test_promote_rollback_and_history(project, kiln_ctx, engine, registry):
    build_verified(project.root, kiln_ctx, "one")
    a = publish(session(project.root, engine), "small")
    assert promote(session(project.root, engine), "small", "stable").digest == a.digest
    build_verified(project.root, kiln_ctx, "two")
    b = publish(session(project.root, engine), "small")
    move = promote(session(project.root, engine), f"small:{b.tag}", "stable")
    assert (move.previous, move.digest) == (a.digest, b.digest)
    assert promote(session(project.root, engine), "small", "stable").action == "unchanged"

    s = session(project.root, engine)
    back = rollback(s, "small", "stable")
    assert (back.previous, back.digest, back.tag) == (b.digest, a.digest, a.tag)
    reg = Registry(str(registry.address))
    assert reg.resolve("kiln/small", "stable").digest == a.digest
    entries = history(s, "kiln/small", "stable")
    assert [(e["action"], e["digest"]) for e in entries] == [
        ("promote", a.digest), ("promote", b.digest), ("rollback", a.digest)]
    assert all(e["at"] and e["by"] for e in entries)
    with pytest.raises(PublishError, match="no earlier known-good digest"):
        rollback(s, "small", "stable")
    with pytest.raises(KilnError, match="not a channel"):
        promote(s, "small", "nightly")
    # a channel can be promoted from another channel
    assert promote(s, "small:stable", "candidate").digest == a.digest


def test_pull_checks_signature_then_pulls_by_digest(project, kiln_ctx, engine, registry):
    built = build_verified(project.root, kiln_ctx)
    published = publish(session(project.root, engine), "small")
    promote(session(project.root, engine), "small", "stable")
    engine.remove_image(built.image_id)  # the pull must really come from the registry
    assert engine.image_id(built.image_id) is None
    got = pull(session(project.root, engine), "small:stable")
    assert got.digest == published.digest and got.image_id == built.image_id
    assert engine.image_id(f"{registry.address}/kiln/small:stable") == built.image_id
    assert engine.image_id(f"{image_repository('small')}:stable") == built.image_id
    by_digest = pull(session(project.root, engine), f"small@{published.digest}")
    assert by_digest.image_id == built.image_id


def _tamper(reg: Registry, tag: str, change: Callable[[dict, bytes], bytes | None]) -> None:
    """Rewrite the layers of a signature/attestation image as a registry writer could."""
    doc = reg.manifest("kiln/small", tag).json
    for layer in doc["layers"]:
        data = change(layer, reg.blob("kiln/small", layer["digest"]))
        if data is not None:
            reg.upload_blob("kiln/small", sha256_digest(data), data)
            layer["digest"], layer["size"] = sha256_digest(data), len(data)
    reg.put_manifest("kiln/small", tag, canonical_json(doc), OCI_MANIFEST)


def test_pull_refuses_tampered_unsigned_and_revoked(project, kiln_ctx, engine, registry):
    built = build_verified(project.root, kiln_ctx)
    published = publish(session(project.root, engine), "small")
    reg = Registry(str(registry.address))
    digest = published.digest
    before = {t: reg.resolve("kiln/small", t).digest
              for t in (sidecar(digest, "sig"), sidecar(digest, "att"))}

    def record_says_more(layer: dict, data: bytes) -> bytes | None:
        if (layer.get("annotations") or {}).get("predicateType") != VERIFICATION:
            return None
        env = json.loads(data)
        statement = json.loads(base64.b64decode(env["payload"]))
        statement["predicate"]["packages"] = ["openssl=0-backdoored"]
        env["payload"] = base64.b64encode(canonical_json(statement)).decode()
        return canonical_json(env)

    _tamper(reg, sidecar(digest, "att"), record_says_more)
    with pytest.raises(TrustError, match="no verification record signed") as err:
        pull(session(project.root, engine), f"small:{published.tag}")
    assert type(err.value).__name__ == "NotVerified"

    def forged(layer: dict, data: bytes) -> bytes | None:
        sig = layer["annotations"][cosign.SIGNATURE_NOTE]
        layer["annotations"][cosign.SIGNATURE_NOTE] = sig[:8] + ("A" if sig[8] != "A" else "B") \
            + sig[9:]
        return None

    _tamper(reg, sidecar(digest, "sig"), forged)
    with pytest.raises(SignatureRefused, match="none of its 1 signature"):
        pull(session(project.root, engine), f"small:{published.tag}")
    with pytest.raises(SignatureRefused):
        promote(session(project.root, engine), f"small:{published.tag}", "stable")

    # the signature index replaced by one without kiln's layer: refused, not "unsigned image"
    reg.put_manifest("kiln/small", sidecar(digest, "sig"),
                     reg.manifest("kiln/small", before[sidecar(digest, "sig")]).body,
                     OCI_MANIFEST)
    reg.put_manifest("kiln/small", sidecar(digest, "att"),
                     reg.manifest("kiln/small", before[sidecar(digest, "att")]).body,
                     OCI_MANIFEST)
    check_trust(session(project.root, engine), "kiln/small", digest)  # restored: fine again

    # an attestation deleted: the SLSA provenance is required
    att = reg.manifest("kiln/small", sidecar(digest, "att")).json
    att["layers"] = [x for x in att["layers"] if x["annotations"]["predicateType"] != SLSA]
    reg.put_manifest("kiln/small", sidecar(digest, "att"), canonical_json(att), OCI_MANIFEST)
    with pytest.raises(Tampered, match=r"slsa\.dev/provenance/v1 are missing"):
        pull(session(project.root, engine), f"small:{published.tag}")
    reg.put_manifest("kiln/small", sidecar(digest, "att"),
                     reg.manifest("kiln/small", before[sidecar(digest, "att")]).body,
                     OCI_MANIFEST)

    # another key: a signature that is valid, but not the project's
    other = project.root / "other"
    keygen(other / "k", other / "k.pub")
    os.environ["KILN_PUBLIC_KEY"] = str(other / "k.pub")
    try:
        with pytest.raises(SignatureRefused, match="by the project key"):
            pull(session(project.root, engine), f"small:{published.tag}")
    finally:
        del os.environ["KILN_PUBLIC_KEY"]

    # unsigned: pushed around kiln, with docker push
    ref = f"{registry.address}/kiln/small:unsigned"
    engine.tag(built.image_id, ref)
    engine.push(ref)
    with pytest.raises(Unsigned, match="is unsigned"):
        pull(session(project.root, engine), "small:unsigned")
    with pytest.raises(Unsigned, match="is unsigned"):
        promote(session(project.root, engine), "small:unsigned", "stable")


def test_revoked_digest_is_refused_and_channels_leave_it(project, kiln_ctx, engine, registry):
    build_verified(project.root, kiln_ctx, "one")
    a = publish(session(project.root, engine), "small")
    promote(session(project.root, engine), "small", "stable")
    build_verified(project.root, kiln_ctx, "two")
    b = publish(session(project.root, engine), "small")
    promote(session(project.root, engine), "small", "stable")

    moves = revoke(session(project.root, engine), f"small@{b.digest}", "CVE-2026-0001")
    assert [(m.channel, m.digest) for m in moves] == [("stable", a.digest)]
    with pytest.raises(TrustError, match=r"revoked .*CVE-2026-0001"):
        pull(session(project.root, engine), f"small@{b.digest}")
    with pytest.raises(TrustError, match="revoked"):
        promote(session(project.root, engine), f"small:{b.tag}", "candidate")
    rows = {r["tag"]: r for r in catalog(session(project.root, engine))}
    assert rows[b.tag]["revoked"] == "yes" and rows[b.tag]["channels"] == []
    assert rows[a.tag]["channels"] == ["stable"]
    assert (rows[a.tag]["signed"], rows[a.tag]["verified"]) == ("yes", "yes")
    with pytest.raises(Revoked, match="revoked"):
        publish(session(project.root, engine), "small", tag="1.0-again")
    with pytest.raises(Revoked, match="cannot be published again"):
        publish(session(project.root, engine), "small", tag=b.tag)  # not "up to date"


# reliability -------------------------------------------------------------------------------
def test_interrupted_push_leaves_no_tag_and_rerun_completes(project, kiln_ctx, engine, registry,
                                                            monkeypatch):
    build_verified(project.root, kiln_ctx)
    # Chunked uploads of 256 KiB: the registry is killed in the middle of the busybox layer.
    monkeypatch.setattr(registry_mod, "MONOLITHIC_MAX", 256 << 10)
    monkeypatch.setattr(registry_mod, "CHUNK", 64 << 10)
    original = registry_mod._Window.__iter__
    killed = []

    def dying(self):  # type: ignore[no-untyped-def]
        if self.offset >= 512 << 10 and not killed:
            killed.append(True)
            registry.kill()
        yield from original(self)

    monkeypatch.setattr(registry_mod._Window, "__iter__", dying)
    with pytest.raises(RegistryUnavailable) as err:
        publish(session(project.root, engine), "small")
    assert killed
    assert "nothing was tagged, re-run to resume" in str(err.value)

    registry.start()  # same folder, same port: what was stored survives
    reg = Registry(str(registry.address))
    assert [t for t in reg.tags("kiln/small") if t.startswith("1.0-")] == []
    done = publish(session(project.root, engine), "small")
    assert done.action == "published"
    assert reg.resolve("kiln/small", done.tag).digest == done.digest
    check_trust(session(project.root, engine), "kiln/small", done.digest)


def _kiln(kiln_cli: KilnCLI, *args: str, root: Path, address: str, extra: dict[str, str],
          gate: Path | None = None) -> subprocess.Popen[str]:
    """`kiln <args>` in a checkout. With a `gate` folder the racer imports first, says it is
    ready (ready-<pid>) and starts when the test opens the gate (a `go` file): racers really
    start together, however slow the machine."""
    env = {"KILN_PROJECT": str(root), "KILN_REGISTRY": address, **extra}
    code = "import kiln.cli, kiln.release.api; kiln.cli.main()"
    if gate is not None:
        code = textwrap.dedent(f"""\
            import os, pathlib, time
            import kiln.cli, kiln.release.api
            gate = pathlib.Path({str(gate)!r})
            (gate / f"ready-{{os.getpid()}}").touch()
            while not (gate / "go").exists():
                time.sleep(0.005)
            kiln.cli.main()
            """)
    return kiln_cli.start(root, *args, env=env, code=code, merged=True)


def _race(procs: list[subprocess.Popen[str]], gate: Path) -> None:
    """Open the gate once every racer is ready (each has imported kiln and waits)."""
    deadline = time.monotonic() + 300
    while len(list(gate.glob("ready-*"))) < len(procs):
        assert all(p.poll() is None for p in procs), "a racer exited before the start"
        assert time.monotonic() < deadline, "the racers never got ready"
        time.sleep(0.01)
    (gate / "go").touch()


class Watcher(threading.Thread):
    """Polls a tag while writers race; every distinct digest it ever names, in order."""

    def __init__(self, address: str, repo: str, tag: str) -> None:
        super().__init__(daemon=True)
        self.reg, self.repo, self.tag = Registry(address), repo, tag
        self.seen: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            got = self.reg.resolve(self.repo, self.tag)
            if got is not None and (not self.seen or self.seen[-1] != got.digest):
                self.seen.append(got.digest)
            time.sleep(0.01)

    def finish(self) -> list[str]:
        self.stop.set()
        self.join()
        return self.seen


def test_eight_concurrent_publishers_and_promoters(make_project, kiln_ctx, engine, registry,
                                                   docker_config, tmp_path, monkeypatch,
                                                   kiln_cli):
    """Eight checkouts of one image with different content race for one tag, then for one
    channel: one wins each race, the others exit non-zero, and no tag is ever overwritten."""
    address = str(registry.address)
    keys = tmp_path / "keys"
    keygen(keys / "signing.key", keys / "kiln.pub")
    extra = {"KILN_SIGNING_KEY": str(keys / "signing.key"),
             "KILN_PUBLIC_KEY": str(keys / "kiln.pub"), "DOCKER_CONFIG": str(docker_config)}
    monkeypatch.setenv("KILN_REGISTRY", address)
    roots = []
    for i in range(8):
        root = tmp_path / f"checkout{i}"
        make_project(files(f"writer{i}")).root.rename(root)
        build_verified(root, kiln_ctx)
        roots.append(root)

    watcher = Watcher(address, "kiln/small", "1.0-race")
    watcher.start()
    gate = tmp_path / "gate-publish"
    gate.mkdir()
    procs = [_kiln(kiln_cli, "publish", "small", "--tag", "1.0-race", root=r, address=address,
                   extra=extra, gate=gate) for r in roots]
    _race(procs, gate)
    outputs = [(p.wait(timeout=300), p.stdout.read()) for p in procs]  # type: ignore[union-attr]
    seen = watcher.finish()
    winners = [out for code, out in outputs if code == 0]
    losers = [out for code, out in outputs if code != 0]
    assert len(winners) == 1, outputs
    assert len(losers) == 7
    for out in losers:
        assert "already names" in out and "immutable tags are never reused" in out, out
    final = Registry(address).resolve("kiln/small", "1.0-race").digest
    assert seen == [final]  # 0 overwrites: the tag named one digest, ever
    assert final in winners[0]
    assert access_log_count(registry, 'PUT /v2/kiln/small/manifests/1.0-race ') == 1

    # every checkout publishes its own version, then all race to promote it to stable
    for r in roots:
        code = _kiln(kiln_cli, "publish", "small", root=r, address=address,
                     extra=extra).wait(timeout=120)
        assert code == 0
    watcher = Watcher(address, "kiln/small", "stable")
    watcher.start()
    gate = tmp_path / "gate-promote"
    gate.mkdir()
    procs = [_kiln(kiln_cli, "promote", "small", "stable", root=r, address=address,
                   extra=extra, gate=gate) for r in roots]
    _race(procs, gate)
    outputs = [(p.wait(timeout=300), p.stdout.read()) for p in procs]  # type: ignore[union-attr]
    seen = watcher.finish()
    winners = [out for code, out in outputs if code == 0]
    assert winners, outputs
    for code, out in outputs:
        if code != 0:
            assert "another promote won" in out, out
    # A promote succeeds only if the channel still names what it saw when it started: every
    # move in the history starts where the previous one ended (0 overwrites), and the
    # watcher saw nothing else.
    monkeypatch.setenv("KILN_PUBLIC_KEY", str(keys / "kiln.pub"))
    entries = history(session(roots[0], engine), "kiln/small", "stable")
    assert len(entries) == len(winners)
    overwrites = sum(e["from"] != (entries[i - 1]["digest"] if i else None)
                     for i, e in enumerate(entries))
    assert overwrites == 0, entries
    moves = [e["digest"] for e in entries]
    assert seen[-1] == moves[-1] and all(d in moves for d in seen)
    assert access_log_count(registry, 'PUT /v2/kiln/small/manifests/stable ') == len(winners)
    print(f"promote race: {len(winners)} winner(s), {8 - len(winners)} refused, 0 overwrites")


def test_registry_down_is_a_clear_error_and_loses_nothing(project, kiln_ctx, engine,
                                                          monkeypatch):
    built = build_verified(project.root, kiln_ctx)
    monkeypatch.setenv("KILN_REGISTRY", f"127.0.0.1:{free_port()}")
    with pytest.raises(RegistryUnavailable, match=r"is not reachable .*is it running"):
        session(project.root, engine)
    assert engine.image_id(built.ref) == built.image_id
    assert records.load(project.root, built.image_id).passed


# auth --------------------------------------------------------------------------------------
@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    htpasswd = tmp_path / "htpasswd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hashed = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    htpasswd.write_text(f"kiln:{hashed}\n")  # bcrypt, the only scheme distribution accepts
    local = LocalRegistry(tmp_path / "auth-registry", htpasswd=htpasswd)
    local.start()
    yield local
    local.stop()


def _login(docker_config: Path, host: str, password: str) -> None:
    auth = base64.b64encode(f"kiln:{password}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def test_basic_auth_registry_uses_docker_credentials(project, kiln_ctx, engine, auth_registry,
                                                     docker_config, monkeypatch):
    host = str(auth_registry.address)
    monkeypatch.setenv("KILN_REGISTRY", host)
    built = build_verified(project.root, kiln_ctx)
    with pytest.raises(RegistryAuthError, match=r"wants credentials .*docker login"):
        session(project.root, engine)
    _login(docker_config, host, "wrong")
    with pytest.raises(RegistryAuthError, match="refused the credentials"):
        session(project.root, engine)
    _login(docker_config, host, "s3cret")
    done = publish(session(project.root, engine), "small")
    promote(session(project.root, engine), "small", "stable")
    engine.remove_image(built.image_id)
    got = pull(session(project.root, engine), "small:stable")
    assert got.digest == done.digest and got.image_id == built.image_id


# config and the embedded registry ------------------------------------------------------------
def test_config_file_then_environment(tmp_path, monkeypatch):
    for name in ("KILN_REGISTRY", "KILN_NAMESPACE", "KILN_CHANNELS", "KILN_AUTO_PROMOTE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "kiln.toml").write_text(
        '[publish]\nregistry = "registry.example.com"\nnamespace = "team/images"\n'
        'channels = ["stable", "candidate", "edge"]\nauto_promote = "edge"\n')
    config = load_config(tmp_path)
    assert (config.registry, config.namespace, config.auto_promote) == (
        "registry.example.com", "team/images", "edge")
    assert config.repository("base") == "team/images/base"
    monkeypatch.setenv("KILN_REGISTRY", "127.0.0.1:5000")
    monkeypatch.setenv("KILN_CHANNELS", "stable,edge")
    config = load_config(tmp_path)
    assert (config.registry, config.channels, config.source) == (
        "127.0.0.1:5000", ("stable", "edge"), "KILN_REGISTRY")
    (tmp_path / "kiln.toml").write_text('[publish]\nregistri = "x"\n')
    with pytest.raises(KilnError, match=r"kiln.toml: unknown key publish.registri"):
        load_config(tmp_path)


def test_embedded_registry_up_status_down(tmp_path, monkeypatch, make_project, engine,
                                          kiln_ctx, docker_config):
    monkeypatch.delenv("KILN_REGISTRY", raising=False)
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    p = make_project(files())
    config = load_config(p.root)
    assert config.embedded and config.signing_key == tmp_path / "state" / "signing.key"
    keygen(config.signing_key, config.public_key)
    build_verified(p.root, kiln_ctx)
    s = session(p.root, engine)  # starts it
    local = LocalRegistry(tmp_path / "state" / "registry")
    try:
        status = local.status()
        assert status.running and status.address == s.registry.host
        assert "delete:\n    enabled: true" in local.config.read_text()
        assert publish(s, "small").action == "published"
        port = local.port
        assert local.stop()
        assert not local.status().running
        assert local.start() == f"127.0.0.1:{port}"  # same port, same content
        assert publish(session(p.root, engine), "small").action == "up to date"
    finally:
        local.stop()


# cosign interoperability -------------------------------------------------------------------
def _cosign(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cosign_bin = shutil.which("cosign")
    assert cosign_bin, "cosign is not installed (scripts/setup installs it)"
    env = {**os.environ, "COSIGN_PASSWORD": "", "COSIGN_YES": "true"}
    return subprocess.run([cosign_bin, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_cosign_verifies_kiln_and_a_second_signer_breaks_nothing(project, kiln_ctx, engine,
                                                                  registry, tmp_path):
    built = build_verified(project.root, kiln_ctx)
    published = publish(session(project.root, engine), "small")
    pub = str(load_config(project.root).public_key)
    ref = f"{registry.address}/kiln/small@{published.digest}"
    insecure = ("--insecure-ignore-tlog", "--allow-insecure-registry")
    got = _cosign("verify", "--key", pub, *insecure, ref, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert published.digest in got.stdout
    for kind in ("slsaprovenance1", "cyclonedx"):
        got = _cosign("verify-attestation", "--key", pub, "--type", kind, *insecure, ref,
                      cwd=tmp_path)
        assert got.returncode == 0, (kind, got.stderr)

    # a second team signs with cosign and its own, unrelated key: both signatures stay
    assert _cosign("generate-key-pair", cwd=tmp_path).returncode == 0
    got = _cosign("sign", "--key", "cosign.key", "--tlog-upload=false",
                  "--allow-insecure-registry", ref, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    reg = Registry(str(registry.address))
    layers = reg.manifest("kiln/small", sidecar(published.digest, "sig")).json["layers"]
    assert len(layers) == 2
    for key in (pub, "cosign.pub"):
        got = _cosign("verify", "--key", key, *insecure, ref, cwd=tmp_path)
        assert got.returncode == 0, (key, got.stderr)
    # kiln signing again (a republish) appends nothing and drops nothing
    assert publish(session(project.root, engine), "small").action == "up to date"
    assert len(reg.manifest("kiln/small", sidecar(published.digest, "sig")).json["layers"]) == 2
    engine.remove_image(built.image_id)
    assert pull(session(project.root, engine), f"small:{published.tag}").image_id == \
        built.image_id
    rows = {r["tag"]: r for r in catalog(session(project.root, engine))}
    assert (rows[published.tag]["signed"], rows[published.tag]["verified"]) == ("yes", "yes")
    bom = sbom(session(project.root, engine), f"small:{published.tag}")  # `kiln sbom`
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.5")
    assert bom["metadata"]["component"]["hashes"][0]["content"] == published.digest[7:]
