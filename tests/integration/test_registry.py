"""The registry client against a real registry (Debian's docker-registry on loopback) behind a
fault-injecting proxy (faultproxy.py), Docker's credential helpers, and the embedded
registry's credential and lock. Every server here is a loopback listener started and stopped
by the test.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from faultproxy import Fault, Forwarder
from released import record_verified

import kiln.registry as registry_mod
import kiln.release.container as container_mod
import kiln.release.lease as lease_mod
from kiln import blobs, records
from kiln.config import load_config
from kiln.context import Context, prepare
from kiln.credentials import CredentialsError, docker_credentials
from kiln.embedded import LocalRegistry
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.registry import (
    RETRIES,
    Registry,
    RegistryAuthError,
    RegistryProtocolError,
    RegistryUnavailable,
    sha256_digest,
)
from kiln.registry_http import _basic
from kiln.release.api import open_session, publish
from kiln.release.provenance import SLSA
from kiln.release.trust import check_trust
from kiln.signing import keygen
from kiln.ui import UI
from kiln.verify import find_suite

FILES = {
    "layers/hello/layer.yaml": "run:\n  - echo faults > /hello\n",
    "images/small.yaml": '{busybox}\nversion: "1.0"\nlayers: [hello]\n',
}


@pytest.fixture
def auth_local(tmp_path: Path) -> Iterator[LocalRegistry]:
    """A registry with the embedded registry's own random credential (htpasswd, bcrypt)."""
    local = LocalRegistry(tmp_path / "registry", auth=True)
    local.start()
    yield local
    local.stop()


@pytest.fixture
def proxies(auth_local: LocalRegistry) -> Iterator[tuple[Forwarder, Forwarder]]:
    """(proxy in front of the registry, a foreign origin that records what reaches it)."""
    creds = auth_local.credentials()
    assert creds is not None
    foreign = Forwarder(str(auth_local.address), auth=_basic(creds))
    foreign_address = foreign.start()
    proxy = Forwarder(str(auth_local.address), foreign=foreign_address)
    proxy.start()
    yield proxy, foreign
    proxy.close()
    foreign.close()


def _path(part: str) -> Callable[[str], bool]:
    return lambda path: part in path


def _path_end(end: str) -> Callable[[str], bool]:
    return lambda path: path.split("?")[0].endswith(end)


def test_faults_are_retried_credentials_stay_home_nothing_half_published(
        make_project, kiln_ctx, engine, auth_local, proxies, docker_config, monkeypatch):
    proxy, foreign = proxies
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    project = make_project(FILES)
    config = load_config(project.root)
    keygen(config.signing_key, config.public_key)
    built = build_image(kiln_ctx(project, verify=False), "small")
    record_verified(project.root, built)
    registry = Registry(proxy.address, timeout=1.0, credentials=auth_local.credentials())
    s = Context(Project(project.root), engine, UI(quiet=True), config=config, registry=registry)
    manifests, uploads = _path("/manifests/"), _path("/blobs/uploads/")
    proxy.faults = [
        Fault("GET", _path("/v2/"), "status", status=503),  # ping: 503 then fine
        Fault("HEAD", manifests, "status", status=429),
        Fault("GET", manifests, "status", times=2, status=500),
        Fault("HEAD", _path("/blobs/sha256:"), "timeout", hold=1.5),
        Fault("GET", manifests, "cut"),  # half a manifest, then the connection is cut
        Fault("POST", uploads, "location"),  # an upload session on another origin
        Fault("PUT", uploads, "drop"),  # the end of an upload lost: a new session
        Fault("GET", _path("/blobs/sha256:"), "redirect", times=3),  # blobs from "storage"
        Fault("GET", _path("/tags/list"), "link"),  # the next page on another origin
        Fault("PUT", manifests, "status", status=502),
    ]
    registry.ping()
    done = publish(s, "small")
    assert done.action == "published"
    assert registry.tags("kiln/small")  # follows the foreign Link (without credentials)
    check_trust(s, "kiln/small", done.digest)  # reads blobs via the redirect

    unfired = [(f.method, f.action) for f in proxy.faults if f.fired == 0]
    assert unfired == [], unfired
    # every retry was caused by an injected fault, and bounded
    transient = sum(f.fired for f in proxy.faults
                    if f.action in ("status", "timeout", "cut", "drop"))
    assert registry.counters.retries == transient  # one retry per fault, none more
    assert registry.counters.uploads_cancelled >= 1  # the dropped upload's session...
    assert proxy.count("DELETE", uploads) == registry.counters.uploads_cancelled
    # Every upload session still on the registry's disk is one kiln cancelled (distribution
    # 2.8 answers 204 to the DELETE but leaves the cancelled session's hash state behind).
    left = {p.name for p in auth_local.data.rglob("_uploads/*")}
    cancelled = {urlsplit(s.path).path.rsplit("/", 1)[-1] for s in proxy.seen
                 if s.method == "DELETE" and "/blobs/uploads/" in s.path}
    assert left <= cancelled, (left, cancelled)
    # the foreign origin was used (redirected blobs, the upload, the Link) and never got a
    # credential; the registry itself did
    assert {s.method for s in foreign.seen} >= {"GET", "PUT"}
    assert [s for s in foreign.seen if "Authorization" in s.headers] == []
    assert any("Authorization" in s.headers for s in proxy.seen)
    _assert_whole(Registry(str(auth_local.address), credentials=auth_local.credentials()))

    # A registry that keeps failing: RETRIES attempts, then a clear error; no tag written.
    down = _path_end("/manifests/1.0-down")
    before = proxy.count("PUT", down)
    proxy.faults = [Fault("PUT", down, "status", times=-1, status=503)]
    with pytest.raises(RegistryUnavailable, match=rf"server error 503 .*{RETRIES} attempts"):
        publish(s, "small", tag="1.0-down")
    assert proxy.count("PUT", down) - before == RETRIES
    direct = Registry(str(auth_local.address), credentials=auth_local.credentials())
    assert direct.resolve("kiln/small", "1.0-down") is None
    _assert_whole(direct)


def _assert_whole(reg: Registry) -> None:
    """Nothing half-published: every tag names a manifest whose blobs are all there."""
    for repo in reg.repositories():
        for tag in reg.tags(repo):
            found = reg.manifest(repo, tag)
            assert found is not None, f"{repo}:{tag} names nothing"
            doc = found.json
            for d in [doc.get("config") or {}, *(doc.get("layers") or [])]:
                if d:
                    assert reg.blob_size(repo, d["digest"]) is not None, (repo, tag, d)


def test_credentials_never_follow_a_redirect_or_a_plain_http_realm(auth_local, proxies):
    proxy, foreign = proxies
    creds = auth_local.credentials()
    reg = Registry(proxy.address, credentials=creds)
    data = b'{"hello": "storage"}'
    reg.upload_blob("kiln/x", sha256_digest(data), data)
    proxy.faults = [Fault("GET", _path("/blobs/"), "redirect")]
    assert reg.blob("kiln/x", sha256_digest(data)) == data
    assert foreign.seen and all("Authorization" not in s.headers for s in foreign.seen)
    # a Bearer challenge naming a plain-http token server that is not the loopback registry
    https_reg = Registry("https://registry.invalid", credentials=("u", "p"))
    resp = requests.Response()
    resp.status_code, resp.headers["WWW-Authenticate"] = 401, \
        'Bearer realm="http://auth.invalid/token",service="x"'
    with pytest.raises(RegistryAuthError, match="not https; kiln sends credentials only over"):
        https_reg._authenticate(resp, "repository:x:pull")


def test_caps_apply_to_bodies_not_to_what_a_head_describes(auth_local, monkeypatch):
    reg = auth_local.client()
    blob = os.urandom(5 << 20)  # over JSON_MAX: a HEAD's Content-Length is not a body
    reg.upload_blob("kiln/x", sha256_digest(blob), blob)
    assert reg.blob_size("kiln/x", sha256_digest(blob)) == len(blob)
    with pytest.raises(RegistryProtocolError, match="over 4096 KiB; refused"):
        reg.blob("kiln/x", sha256_digest(blob), limit=4 << 20)
    empty = b"{}"
    reg.upload_blob("kiln/x", sha256_digest(empty), empty)
    big = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": sha256_digest(empty), "size": 2},
        "layers": [], "annotations": {"pad": "x" * (4 << 20)}}).encode()
    with pytest.raises(RegistryProtocolError, match="over the 4 MiB"):
        reg.put_manifest("kiln/x", "big", big, "application/vnd.oci.image.manifest.v1+json")
    # distribution refuses such a manifest itself; a hostile server would not: kiln's reading
    # cap, shown at a smaller size
    doc = json.loads(big)
    doc["annotations"]["pad"] = "x" * 3000
    reg.put_manifest("kiln/x", "3k", json.dumps(doc).encode(), doc["mediaType"])
    monkeypatch.setattr(registry_mod, "MANIFEST_MAX", 2048)
    with pytest.raises(RegistryProtocolError, match="over 2 KiB; refused"):
        reg.manifest("kiln/x", "3k")


# Docker's credential helpers -------------------------------------------------------------
def test_credential_helpers_as_docker_calls_them(auth_local, docker_config, tmp_path,
                                                 monkeypatch):
    """A real helper program on PATH: credHelpers for this host wins over credsStore, its
    answer logs kiln in; "credentials not found" is anonymous; a broken helper is an error
    that does not print what it said on stdout."""
    user, password = auth_local.credentials() or ("", "")
    host = str(auth_local.address)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    for name, body in {
        "kiln-test": f'''
            read -r server
            echo "$1 $server" >> {log}
            if [ "$server" != "{host}" ]; then
                echo "credentials not found in native keychain"; exit 1
            fi
            printf '{{"ServerURL": "%s", "Username": "{user}", "Secret": "{password}"}}' "$server"
        ''',
        "nothing": 'echo "credentials not found in native keychain"; exit 1',
        "broken": 'echo "keychain locked"; exit 3',
    }.items():
        helper = bin_dir / f"docker-credential-{name}"
        helper.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    config = docker_config / "config.json"
    config.write_text(json.dumps({"credsStore": "nothing", "credHelpers": {host: "kiln-test"},
                                  "auths": {host: {}}}))
    assert docker_credentials(host) == (user, password)
    assert log.read_text() == f"get {host}\n"
    Registry(host).ping()  # logged in through the helper
    assert docker_credentials("other.example:5000") is None  # credsStore: not found
    config.write_text(json.dumps({"credsStore": "broken"}))
    with pytest.raises(CredentialsError, match=r"exit code 3 \(keychain locked\)"):
        docker_credentials(host)
    with pytest.raises(RegistryAuthError, match="keychain locked"):  # one error family
        Registry(host)
    config.write_text(json.dumps({"credsStore": "missing-helper"}))
    with pytest.raises(CredentialsError, match="docker-credential-missing-helper"):
        docker_credentials(host)


# the embedded registry -------------------------------------------------------------------
def test_embedded_registry_has_a_private_credential_and_one_instance(tmp_path):
    folder = tmp_path / "state" / "registry"
    code = ("import sys; from pathlib import Path; from kiln.embedded import LocalRegistry; "
            "print(LocalRegistry(Path(sys.argv[1]), auth=True).start())")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder)],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    local = LocalRegistry(folder)
    try:
        addresses = {p.communicate(timeout=60)[0].strip() for p in procs}
        assert [p.returncode for p in procs] == [0, 0, 0]
        assert len(addresses) == 1  # three racing starts, one registry
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()
                if str(local.config).encode() in _cmdline(int(p))]
        assert len(pids) == 1, pids
        for secret in (local.credential_file, folder / "htpasswd"):
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        user, password = local.credentials() or ("", "")
        assert password not in (folder / "htpasswd").read_text()
        url = f"http://{addresses.pop()}/v2/"
        assert requests.get(url, timeout=5).status_code == 401  # anonymous: refused
        assert requests.get(url, auth=(user, "wrong"), timeout=5).status_code == 401
        reg = local.client()
        reg.ping()
        data = b"{}"
        reg.upload_blob("kiln/x", sha256_digest(data), data)
        digest = reg.put_manifest("kiln/x", "t", json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": sha256_digest(data), "size": 2}, "layers": []}).encode(),
            "application/vnd.oci.image.manifest.v1+json")
        anonymous = requests.delete(f"{url}kiln/x/manifests/{digest}", timeout=5)
        assert anonymous.status_code == 401  # delete (kiln's leases need it) is behind auth
        reg.delete_manifest("kiln/x", digest)
        assert reg.resolve("kiln/x", "t") is None
    finally:
        local.stop()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# compressed, reproducible pushes -----------------------------------------------------------
def test_compressed_digests_are_the_same_from_two_checkouts_and_republish_sends_nothing(
        make_project, kiln_ctx, engine, registry, docker_config, tmp_path, monkeypatch):
    """Two checkouts, each with its own state folder (no shared cache: two machines), build
    the same image and publish it to one registry: the same gzip layers, so the second
    uploads no layer; a third publish under a new tag reads the cache: no export, no gzip."""
    monkeypatch.setattr(lease_mod, "SETTLE", 0.3)
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    keys = tmp_path / "keys"
    keygen(keys / "signing.key", keys / "kiln.pub")
    monkeypatch.setenv("KILN_SIGNING_KEY", str(keys / "signing.key"))
    monkeypatch.setenv("KILN_PUBLIC_KEY", str(keys / "kiln.pub"))
    layers, results = [], []
    for i in range(2):
        monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / f"state{i}"))
        root = tmp_path / f"checkout{i}"
        make_project(FILES).root.rename(root)
        built = build_image(kiln_ctx(Project(root), verify=False), "small")
        suite = find_suite(root, prepare(Project(root), "small").plan).digest
        records.save(root, records.VerifyRecord(
            image="small", image_id=built.image_id, fingerprint=built.fingerprint,
            target="container", suite=suite, passed=True, started="2026-01-01T00:00:00Z"))
        s = open_session(Project(root), UI(quiet=True), engine)
        results.append(publish(s, "small", tag=f"1.0-machine{i}"))
        doc = s.registry.manifest("kiln/small", results[-1].digest).json  # type: ignore[union-attr]
        layers.append(doc["layers"])
        assert {d["mediaType"] for d in doc["layers"]} == {blobs.LAYER_GZIP}
        trust = check_trust(s, "kiln/small", results[-1].digest)
        internal = trust.attestations[SLSA]["buildDefinition"]["internalParameters"]
        assert internal["compression"] == blobs.COMPRESSION
    assert layers[0] == layers[1]  # same compressed digests and sizes
    assert results[0].digest == results[1].digest
    # the second checkout sent its signature and provenance, not one layer
    assert results[1].bytes_uploaded < min(d["size"] for d in layers[0])
    # the cache: a new tag from checkout1 neither saves the image nor compresses anything
    monkeypatch.setattr(container_mod, "export", _forbidden)
    monkeypatch.setattr(blobs, "gzip_file", _forbidden)
    again = publish(open_session(Project(tmp_path / "checkout1"), UI(quiet=True),
                                            engine), "small", tag="1.0-again")
    assert again.digest == results[0].digest


def _forbidden(*args: object, **kwargs: object) -> None:
    raise AssertionError("a cached layer was exported or compressed again")


def test_an_open_embedded_registry_from_before_gets_its_credential(tmp_path):
    folder = tmp_path / "registry"
    old = LocalRegistry(folder)  # as kiln started it before the credential existed
    address = old.start()
    try:
        assert requests.get(f"http://{address}/v2/", timeout=5).status_code == 200
        assert LocalRegistry(folder, auth=True).start() == address  # same port, restarted
        assert requests.get(f"http://{address}/v2/", timeout=5).status_code == 401
        LocalRegistry(folder).client().ping()  # the folder's credential, whoever opens it
    finally:
        old.stop()
