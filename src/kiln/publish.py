"""Publish verified images; channels, history, revocation; pull only what is signed and verified.

The registry holds everything another machine needs, under these tags of `<namespace>/<image>`:

  <version>-<yyyymmdd>-<id12>  immutable: the image (OCI manifest; layers as docker saves them)
  stable, candidate, ...       channels: moving tags, only ever at a signed, verified version
  sha256-<hex>.sig             attestation of manifest <hex>: provenance + ed25519 signature,
                               an OCI artifact whose `subject` is the image (referrers-ready)
  sha256-<hex>.revoked         revocation of manifest <hex> (reason, who, when; signed)
  <channel>.history            every move of a channel (promote, rollback), appended
  <tag>.lease                  short-lived lease serializing writers of <tag> (see `lease`)
  <immutable>-vm, <channel>-vm a VM disk artifact and its channels (kiln.vm.publish): same
                               rules, same signature sidecar, same leases and histories

A registry has no compare-and-swap, so writers of one tag first take a lease recorded in the
registry: put `<tag>.lease` naming themselves, wait SETTLE seconds (longer than any contender
takes between reading "free" and writing its own claim), and read it back; whoever is still
named holds it. Under the lease, a writer checks the tag, puts it and reads it back. Content is
always pushed by digest first, so a tag never names a partial image.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import io
import json
import os
import random
import re
import socket
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kiln import __version__
from kiln.config import Config, load_config
from kiln.embedded import embedded
from kiln.engine import Engine
from kiln.errors import EngineError, KilnError
from kiln.fingerprint import canonical, image_repository
from kiln.load import Project
from kiln.model import ImageBase
from kiln.pipeline import prepare
from kiln.records import VerifyRecord, require_verified, state_dir
from kiln.registry import (
    DIGEST_RE,
    OCI_MANIFEST,
    Manifest,
    Registry,
    RegistryError,
    sha256_digest,
)
from kiln.signing import SignatureError, canonical_json, load_private, load_public, sign, verify
from kiln.ui import UI

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"  # uncompressed: digest = the diff_id
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
ATTESTATION_TYPE = "application/vnd.dev.kiln.attestation.v1+json"
PROVENANCE_TYPE = "application/vnd.dev.kiln.provenance.v1+json"
SIGNATURE_TYPE = "application/vnd.dev.kiln.signature.v1+json"
REVOCATION_TYPE = "application/vnd.dev.kiln.revocation.v1+json"
HISTORY_TYPE = "application/vnd.dev.kiln.channel-history.v1+json"
LEASE_TYPE = "application/vnd.dev.kiln.lease.v1+json"
VM_ARTIFACT_TYPE = "application/vnd.kiln.vm.disk.v1"
VM_SUFFIX = "-vm"  # VM disks' immutable tags and channel tags end with it; containers' never do
TARGETS = ("container", "vm")

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SIDECAR_RE = re.compile(r"^sha256-[0-9a-f]{64}\.(sig|revoked)$")
SUFFIXES = (".sig", ".revoked", ".history", ".lease")
SETTLE = 1.0  # seconds a lease claim must survive before it counts
LEASE_TTL = 120.0  # a holder that died frees its lease after this long
LEASE_WAIT = 180.0  # how long a writer waits for a busy lease before giving up


class PublishError(KilnError):
    """Publishing, promoting or rolling back was refused."""


class ImmutableTagError(PublishError):
    """An immutable tag already names other content."""


class TrustError(KilnError):
    """An image is unsigned, tampered, unverified or revoked: pull and promote refuse it."""


@dataclass
class Session:
    """One run against the registry: the project, its config, the client, the engine."""

    project: Project
    config: Config
    registry: Registry
    ui: UI
    engine: Engine | None = None
    who: str = field(default_factory=lambda: f"{getpass.getuser()}@{socket.gethostname()}")

    @property
    def root(self) -> Path:
        return self.project.root

    def need_engine(self) -> Engine:
        if self.engine is None:
            self.engine = Engine.connect()
        return self.engine


def open_session(project: Project, ui: UI, engine: Engine | None = None,
                 config: Config | None = None) -> Session:
    """Resolve the registry (starting the embedded one when none is set) and check it answers."""
    config = config or load_config(project.root)
    if config.embedded:
        local = embedded(project.root)
        if not local.healthy():
            ui.info(f"starting kiln's embedded registry ({local.folder})")
        address = local.start()
    else:
        address = config.registry
    registry = Registry(address)
    registry.ping()
    return Session(project, config, registry, ui, engine)


# names ---------------------------------------------------------------------------------------
def immutable_tag(version: str, created: str, image_id: str) -> str:
    """<version>-<yyyymmdd>-<id12>: a pure function of the image (its build date and ID), so
    republishing the same image names the same tag, and other content never does."""
    day = created[:10].replace("-", "")
    safe = re.sub(r"[^A-Za-z0-9_.]+", "-", version).strip("-.") or "0"
    return f"{safe}-{day}-{image_id.removeprefix('sha256:')[:12]}"


def sidecar(digest: str, kind: str) -> str:
    return f"sha256-{digest.removeprefix('sha256:')}.{kind}"


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise KilnError(f"--target {target}: use container or vm")
    return target


def channel_tag(channel: str, target: str = "container") -> str:
    """The tag a channel moves for a target: `stable` for containers, `stable-vm` for disks."""
    return channel + VM_SUFFIX if check_target(target) == "vm" else channel


def target_of(tag: str) -> str:
    return "vm" if tag.endswith(VM_SUFFIX) else "container"


def is_version_tag(tag: str, config: Config) -> bool:
    return tag not in config.channels and not tag.endswith(SUFFIXES) and \
        not tag.startswith("sha256-") and tag not in {c + VM_SUFFIX for c in config.channels}


def check_tag(tag: str, config: Config, target: str = "container") -> str:
    if not TAG_RE.match(tag):
        raise PublishError(f"{tag!r} is not a valid tag (letters, digits, _ . -; up to 128)")
    if not is_version_tag(tag, config):
        raise PublishError(f"{tag!r} is reserved (channels, <channel>-vm, sha256-*, *.sig, "
                           "*.revoked, *.history, *.lease are kiln's); choose another "
                           "immutable tag")
    if target_of(tag) != target:
        raise PublishError(f"{tag!r}: tags ending in {VM_SUFFIX} are for VM disks and only for "
                           "them; choose another immutable tag")
    return tag


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'base' | 'base:stable' | 'base@sha256:...' -> (image, ref or None)."""
    if "@" in spec:
        name, _, digest = spec.partition("@")
        if not DIGEST_RE.match(digest):
            raise KilnError(f"{spec}: expected <image>@sha256:<64 hex digits>")
        return name, digest
    name, _, ref = spec.partition(":")
    return name, ref or None


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishResult:
    image: str
    repository: str
    tag: str
    digest: str
    image_id: str
    action: str  # "published" | "up to date"
    bytes_uploaded: int
    blobs_uploaded: int
    seconds: float
    reference: str

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Trust:
    """Why an image may be used: its signature and provenance checked out."""

    repository: str
    digest: str
    image_id: str
    provenance: dict[str, Any]
    key: str
    signed_at: str
    artifact_type: str = ""  # "" for a container image, VM_ARTIFACT_TYPE for a disk


@dataclass(frozen=True)
class Move:
    repository: str
    channel: str
    action: str
    digest: str
    previous: str | None
    tag: str

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# publish -------------------------------------------------------------------------------------
def publish(s: Session, name: str, tag: str | None = None) -> PublishResult:
    started = time.monotonic()
    engine = s.need_engine()
    sent_before = (s.registry.counters.bytes_uploaded, s.registry.counters.blobs_uploaded)
    prepared = prepare(s.project, name)
    image_id = engine.image_id(prepared.ref)
    if image_id is None:
        raise PublishError(f"{prepared.plan.image.path}: {name} is not built for the current "
                           f"definitions ({prepared.ref}); run `invoke build {name}`")
    record = require_verified(s.root, name, image_id)
    info = engine.inspect_image(image_id)
    repo = s.config.repository(name)
    tag = check_tag(tag or immutable_tag(prepared.plan.image.version, str(info["Created"]),
                                         image_id), s.config, "container")

    def result(action: str, digest: str) -> PublishResult:
        c = s.registry.counters
        return PublishResult(name, repo, tag, digest, image_id, action,
                             c.bytes_uploaded - sent_before[0], c.blobs_uploaded - sent_before[1],
                             time.monotonic() - started,
                             f"{s.registry.host}/{repo}@{digest}")

    # Ask first: an existing tag is either this very image (nothing to do) or a refusal.
    existing = s.registry.manifest(repo, tag)
    if existing is not None:
        refuse_other(repo, tag, existing, image_id, s)
        attest(s, repo, existing, record, prepared_name=name)  # an earlier run may have died
        attach_file_manifest(s, name, repo, existing, image_id)
        return result("up to date", existing.digest)

    with s.ui.task(f"publish {name} -> {s.registry.host}/{repo}:{tag}"):
        body = push_content(s, name, repo, image_id, info)
        digest = sha256_digest(body)
        s.ui.step(f"manifest {digest[:19]} pushed by digest")
        refuse_revoked(s, repo, digest)
        manifest = Manifest(digest, OCI_MANIFEST, body)
        attest(s, repo, manifest, record, prepared_name=name)
        s.ui.step("provenance and signature attached")
        attach_file_manifest(s, name, repo, manifest, image_id)
        s.ui.step("file manifest attached (signed in-toto statement)")
        tag_immutably(s, repo, tag, body, image_id)
    out = result("published", digest)
    if s.config.auto_promote:
        promote(s, f"{name}:{tag}", s.config.auto_promote)
    return out


def attach_file_manifest(s: Session, name: str, repo: str, image: Manifest,
                         image_id: str) -> None:
    """The hook of issue 15: every file of the image, signed, beside it (kiln.fleet)."""
    from kiln.fleet.attest import attach  # fleet builds on publish: imported late, no cycle
    attach(s, name, repo, image, image_id)


def tag_immutably(s: Session, repo: str, tag: str, body: bytes, content_id: str) -> None:
    """Put immutable `tag` on manifest `body` (pushed by digest already) under the tag's lease:
    refused when the tag names other content (config digest other than `content_id`), read
    back afterwards."""
    digest = sha256_digest(body)

    def refuse_if_taken() -> None:
        current = s.registry.manifest(repo, tag)
        if current is not None and current.digest != digest:
            refuse_other(repo, tag, current, content_id, s, digest)

    with lease(s, repo, tag, refuse_if_taken) as held:
        refuse_if_taken()
        current = s.registry.resolve(repo, tag)
        held.check()
        if current is None:
            s.registry.put_manifest(repo, tag, body, OCI_MANIFEST)
        _read_back(s, repo, tag, digest)
    s.ui.step(f"tagged {tag}, read back {digest[:19]}")


def refuse_other(repo: str, tag: str, found: Manifest, image_id: str, s: Session,
                  digest: str | None = None) -> None:
    body = found.body or (s.registry.manifest(repo, found.digest) or found).body
    config_digest = (json.loads(body).get("config") or {}).get("digest") if body else None
    if digest is None and config_digest == image_id:
        return
    raise ImmutableTagError(
        f"{s.registry.host}/{repo}:{tag} already names {found.digest} (image "
        f"{str(config_digest)[:19]}), not this image ({image_id[:19]}): immutable tags are never "
        "reused for other content; the tag was left untouched (publish under a new tag)")


def _read_back(s: Session, repo: str, tag: str, digest: str) -> None:
    back = s.registry.resolve(repo, tag)
    if back is None or back.digest != digest:
        got = back.digest if back else "nothing"
        raise PublishError(f"{repo}:{tag} reads back as {got}, not {digest}: another writer "
                           "ignored kiln's lease; check the tag's history before using it")


def push_content(s: Session, name: str, repo: str, image_id: str, info: dict[str, Any]) -> bytes:
    """Blobs, then the manifest by digest; returns the manifest bytes. Blobs the registry has
    are skipped (HEAD), blobs a parent image's repository has are mounted, the rest are read
    from `docker save` on disk and streamed."""
    reg = s.registry
    diff_ids: list[str] = list(info["RootFS"]["Layers"])
    wanted = list(dict.fromkeys([image_id, *diff_ids]))
    sizes: dict[str, int | None] = {d: reg.blob_size(repo, d) for d in wanted}
    sources = [s.config.repository(p) for p in _parents(s, name)]
    for d in [d for d in wanted if sizes[d] is None]:
        for source in sources:
            if reg.mount_blob(repo, d, source):
                sizes[d] = reg.blob_size(repo, d)
                break
    missing = {d for d in wanted if sizes[d] is None}
    if missing:
        engine = s.need_engine()
        with tempfile.TemporaryDirectory(prefix="kiln-push-", dir=_tmp_parent(s)) as tmp:
            files = _export(engine, image_id, missing, Path(tmp))
            lost = missing - set(files)
            if lost:
                raise PublishError(f"docker save of {image_id[:19]} lacks blobs "
                                   f"{', '.join(sorted(d[:19] for d in lost))}")
            for d in wanted:  # config last-but-not-least: order does not matter to the registry
                if d in missing:
                    s.ui.step(f"upload {d[:19]} ({files[d].stat().st_size >> 10} KiB)")
                    reg.upload_blob(repo, d, files[d])
                    sizes[d] = files[d].stat().st_size
    labels = (info.get("Config") or {}).get("Labels") or {}
    annotations = {"org.opencontainers.image.created": str(info["Created"])}
    for key in ("dev.kiln.image", "dev.kiln.fingerprint", "org.opencontainers.image.version"):
        if key in labels:
            annotations[key] = str(labels[key])
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "digest": image_id, "size": sizes[image_id]},
        "layers": [{"mediaType": LAYER_TYPE, "digest": d, "size": sizes[d]} for d in diff_ids],
        "annotations": annotations,
    }
    body = canonical_json(manifest)
    reg.put_manifest(repo, sha256_digest(body), body, OCI_MANIFEST)
    return body


def _tmp_parent(s: Session) -> Path:
    path = state_dir(s.root) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _parents(s: Session, name: str) -> list[str]:
    out: list[str] = []
    plan = prepare(s.project, name).plan
    while isinstance(plan.image.base, ImageBase) and plan.parent is not None:
        out.append(plan.image.base.image)
        plan = plan.parent
    return out


def _export(engine: Engine, image_id: str, wanted: set[str], folder: Path) -> dict[str, Path]:
    """Stream `docker save` and keep, on disk, only the blobs in `wanted` (by sha256)."""
    found: dict[str, Path] = {}
    stream = io.BufferedReader(_IterReader(engine.save(image_id)), 1 << 20)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for n, member in enumerate(tar):
            if not member.isfile() or not (member.name.endswith("/layer.tar")
                                           or member.name.endswith(".json")):
                continue
            src = tar.extractfile(member)
            if src is None:
                continue
            path = folder / f"blob-{n}"
            h = hashlib.sha256()
            with path.open("wb") as out:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            digest = "sha256:" + h.hexdigest()
            if digest in wanted and digest not in found:
                found[digest] = path
            else:
                path.unlink()
    return found


class _IterReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buf = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.buf:
            try:
                self.buf = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


# provenance and signature --------------------------------------------------------------------
def provenance(s: Session, name: str, repo: str, manifest: Manifest,
               record: VerifyRecord) -> dict[str, Any]:
    prepared = prepare(s.project, name)
    plan = prepared.plan
    config_digest = manifest.json["config"]["digest"]
    base: dict[str, Any] = {"kind": type(plan.image.base).__name__, "ref": prepared.base_ref,
                            **canonical(plan.image.base)}
    engine = s.need_engine()
    base_id = engine.image_id(prepared.base_ref)
    if base_id:
        base["image_id"] = base_id
    return {
        "type": "dev.kiln.provenance.v1",
        "image": name,
        "repository": repo,
        "manifest": manifest.digest,
        "image_id": config_digest,
        "version": plan.image.version,
        "fingerprint": prepared.fingerprint,
        "layers": [layer.name for layer in plan.all_layers],
        "base": base,
        "packages": _packages(engine, config_digest, record),
        "verification": {
            "target": record.target, "suite": record.suite, "passed": record.passed,
            "counts": record.counts, "started": record.started, "seconds": record.seconds,
            "checks": [{"layer": c.layer, "test": c.test, "outcome": c.outcome}
                       for c in record.checks],
        },
        "kiln": __version__,
    }


def _packages(engine: Engine, image_id: str, record: VerifyRecord) -> list[str] | None:
    """`dpkg-query -W` of the image: from the verification record, or from a container."""
    if isinstance(record.extra.get("packages"), list):
        return [str(p) for p in record.extra["packages"]]
    script = ("command -v dpkg-query >/dev/null || exit 3; "
              "exec dpkg-query -W -f='${Package}=${Version}\\n'")
    try:
        code, text = engine.run_output(image_id, ["/bin/sh", "-c", script])
    except EngineError:
        return None  # no shell in this image: its packages are unknown
    return sorted(line for line in text.splitlines() if line) if code == 0 else None


def attest(s: Session, repo: str, manifest: Manifest, record: VerifyRecord,
           prepared_name: str) -> str:
    """Attach provenance and signature to `manifest` (unless a valid one is there already)."""
    return sign_and_attach(s, repo, manifest,
                           lambda m: provenance(s, prepared_name, repo, m, record))


def sign_and_attach(s: Session, repo: str, manifest: Manifest,
                    make_provenance: Callable[[Manifest], dict[str, Any]]) -> str:
    """The `sha256-<hex>.sig` artifact: provenance plus an ed25519 signature over the manifest
    digest and the provenance digest. Kept when a valid one is there already."""
    tag = sidecar(manifest.digest, "sig")
    if s.registry.resolve(repo, tag) is not None:
        try:
            check_trust(s, repo, manifest.digest)
            return tag
        except TrustError:
            pass  # replace a broken or foreign attestation with ours
    if manifest.body == b"":
        got = s.registry.manifest(repo, manifest.digest)
        assert got is not None
        manifest = got
    key = load_private(s.config.signing_key)
    prov = canonical_json(make_provenance(manifest))
    prov_digest = sha256_digest(prov)
    signature = sign(key, {"repository": repo, "manifest": manifest.digest,
                           "provenance": prov_digest})
    _put_artifact(s, repo, tag, ATTESTATION_TYPE, manifest,
                  [(PROVENANCE_TYPE, prov), (SIGNATURE_TYPE, signature)],
                  {"org.opencontainers.image.created": now_iso(), "dev.kiln.signed-by": s.who})
    return tag


def _put_artifact(s: Session, repo: str, tag: str, artifact_type: str,
                  subject: Manifest | None, blobs: list[tuple[str, bytes]],
                  annotations: dict[str, str]) -> str:
    reg = s.registry
    reg.upload_blob(repo, sha256_digest(EMPTY), EMPTY)
    layers = []
    for media_type, data in blobs:
        digest = sha256_digest(data)
        reg.upload_blob(repo, digest, data)
        layers.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY), "size": len(EMPTY)},
        "layers": layers, "annotations": annotations,
    }
    if subject is not None:
        size = len(subject.body) if subject.body else len(
            (reg.manifest(repo, subject.digest) or subject).body)
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": size}
    body = canonical_json(doc)
    return reg.put_manifest(repo, tag, body, OCI_MANIFEST)


def _artifact_blobs(s: Session, repo: str, ref: str,
                    artifact_type: str) -> tuple[Manifest, dict[str, bytes]] | None:
    found = s.registry.manifest(repo, ref)
    if found is None:
        return None
    doc = found.json
    if doc.get("artifactType") != artifact_type:
        raise TrustError(f"{repo}:{ref} is not a kiln artifact ({doc.get('artifactType')})")
    blobs = {}
    for layer in doc.get("layers") or []:
        blobs[str(layer.get("mediaType"))] = s.registry.blob(repo, str(layer["digest"]))
    return found, blobs


def check_trust(s: Session, repo: str, digest: str) -> Trust:
    """Signed with the project key, provenance intact, verified, not revoked -- or why not."""
    where = f"{s.registry.host}/{repo}@{digest[:19]}"
    image = s.registry.manifest(repo, digest)
    if image is None:
        raise TrustError(f"{where}: no such manifest in the registry")
    if image.media_type != OCI_MANIFEST and "config" not in image.json:
        raise TrustError(f"{where} is a {image.media_type}, not a single image kiln published")
    revoked = revocation(s, repo, digest)
    if revoked is not None:
        raise TrustError(f"{where} was revoked on {revoked.get('at')} by {revoked.get('by')}: "
                         f"{revoked.get('reason') or 'no reason given'}")
    try:
        artifact = _artifact_blobs(s, repo, sidecar(digest, "sig"), ATTESTATION_TYPE)
        if artifact is None:
            artifact = _from_referrers(s, repo, digest)
    except RegistryError as exc:
        raise TrustError(f"{where}: its signature artifact is unreadable ({exc})") from None
    if artifact is None:
        raise TrustError(f"{where} is unsigned: it has no kiln signature (no "
                         f"{sidecar(digest, 'sig')} tag); publish it with `invoke publish`")
    found, blobs = artifact
    if (found.json.get("subject") or {}).get("digest") != digest:
        raise TrustError(f"{where}: its signature artifact is attached to another manifest "
                         "(tampered)")
    if SIGNATURE_TYPE not in blobs or PROVENANCE_TYPE not in blobs:
        raise TrustError(f"{where}: its signature artifact lacks the signature or the "
                         "provenance (tampered)")
    try:
        signed = verify(load_public(s.config.public_key), blobs[SIGNATURE_TYPE])
    except SignatureError as exc:
        raise TrustError(f"{where}: bad signature: {exc}") from None
    prov_bytes = blobs[PROVENANCE_TYPE]
    payload = signed.payload
    if payload.get("manifest") != digest or payload.get("repository") != repo:
        raise TrustError(f"{where}: the signature is for {payload.get('repository')}@"
                         f"{str(payload.get('manifest'))[:19]}, not this image (tampered)")
    if payload.get("provenance") != sha256_digest(prov_bytes):
        raise TrustError(f"{where}: the provenance was modified after signing (its digest is "
                         f"not the signed one): tampered")
    prov = json.loads(prov_bytes)
    config_digest = image.json["config"]["digest"]
    if prov.get("manifest") != digest or prov.get("image_id") != config_digest:
        raise TrustError(f"{where}: the provenance describes another image (tampered)")
    verification = prov.get("verification") or {}
    if verification.get("passed") is not True:
        raise TrustError(f"{where} was not verified (its provenance records no passing "
                         "verification)")
    signed_at = str((found.json.get("annotations") or {}).get(
        "org.opencontainers.image.created", ""))
    return Trust(repo, digest, config_digest, prov, signed.key, signed_at,
                 str(image.json.get("artifactType") or ""))


def check_kind(trust: Trust, target: str) -> Trust:
    """A container channel never names a disk, nor a disk channel a container."""
    is_vm = trust.artifact_type == VM_ARTIFACT_TYPE
    if is_vm != (target == "vm"):
        what = "a VM disk" if is_vm else "a container image"
        raise TrustError(f"{trust.repository}@{trust.digest[:19]} is {what}, not a {target} "
                         f"(use --target {'vm' if is_vm else 'container'})")
    return trust


def _from_referrers(s: Session, repo: str,
                    digest: str) -> tuple[Manifest, dict[str, bytes]] | None:
    referrers = s.registry.referrers(repo, digest)
    for ref in referrers or []:
        if ref.get("artifactType") == ATTESTATION_TYPE:
            return _artifact_blobs(s, repo, str(ref["digest"]), ATTESTATION_TYPE)
    return None


# revocation ----------------------------------------------------------------------------------
def revocation(s: Session, repo: str, digest: str) -> dict[str, Any] | None:
    tag = sidecar(digest, "revoked")
    if s.registry.resolve(repo, tag) is None:
        return None
    try:
        got = _artifact_blobs(s, repo, tag, REVOCATION_TYPE)
    except (RegistryError, TrustError):
        return {"reason": "(unreadable revocation record: treated as revoked)"}
    if got is None:
        return None
    data: dict[str, Any] = json.loads(got[1].get(REVOCATION_TYPE, b"{}"))
    return data


def refuse_revoked(s: Session, repo: str, digest: str) -> None:
    """A revoked digest is never published again, whatever tag it would get."""
    revoked = revocation(s, repo, digest)
    if revoked is not None:
        raise PublishError(f"{repo}@{digest} was revoked on {revoked.get('at')} "
                           f"({revoked.get('reason')}); it cannot be published again")


def revoke(s: Session, spec: str, reason: str) -> list[Move]:
    """Mark a digest bad in the registry; channels naming it roll back to their previous good."""
    name, ref = parse_spec(spec)
    if ref is None or not DIGEST_RE.match(ref):
        raise KilnError(f"{spec}: revoke takes <image>@sha256:<digest> (see `invoke catalog`)")
    repo = s.config.repository(name)
    image = s.registry.manifest(repo, ref)
    if image is None:
        raise KilnError(f"{s.registry.host}/{repo}@{ref}: no such manifest")
    record = canonical_json({"type": "dev.kiln.revocation.v1", "repository": repo,
                             "manifest": ref, "reason": reason, "at": now_iso(), "by": s.who})
    signature = sign(load_private(s.config.signing_key),
                     {"repository": repo, "manifest": ref, "revocation": sha256_digest(record)})
    _put_artifact(s, repo, sidecar(ref, "revoked"), REVOCATION_TYPE, image,
                  [(REVOCATION_TYPE, record), (SIGNATURE_TYPE, signature)],
                  {"org.opencontainers.image.created": now_iso()})
    moves = []
    for channel in s.config.channels:
        for target in TARGETS:
            current = s.registry.resolve(repo, channel_tag(channel, target))
            if current is None or current.digest != ref:
                continue
            try:
                moves.append(rollback(s, name, channel, target))
            except PublishError as exc:
                s.ui.warn(f"{repo}:{channel_tag(channel, target)} still names the revoked "
                          f"digest ({exc}); pull refuses it until a good image is promoted")
    return moves


# leases --------------------------------------------------------------------------------------
@dataclass
class Lease:
    s: Session
    repo: str
    tag: str
    owner: str
    digest: str
    expires: float

    def check(self) -> None:
        """Still ours, with time to spare: otherwise stop before writing anything."""
        holder = _lease_holder(self.s, self.repo, self.tag)
        if holder is None or holder[0] != self.owner or time.time() > self.expires - SETTLE:
            raise PublishError(f"lost the lease on {self.repo}:{self.tag.removesuffix('.lease')}"
                               " (took too long); nothing was changed, re-run")


def _lease_holder(s: Session, repo: str, tag: str) -> tuple[str, float, str] | None:
    found = s.registry.manifest(repo, tag)
    if found is None:
        return None
    notes = found.json.get("annotations") or {}
    try:
        return (str(notes["dev.kiln.lease.owner"]), float(notes["dev.kiln.lease.expires"]),
                str(notes.get("dev.kiln.lease.holder", "?")))
    except (KeyError, ValueError):
        return None


@contextmanager
def lease(s: Session, repo: str, name: str,
          precheck: Callable[[], None] | None = None) -> Iterator[Lease]:
    """Exclusive right to write tag `name` of `repo`, recorded in the registry as <name>.lease.

    While another writer holds it, `precheck` runs before each new try: it raises as soon as
    the outcome is known (the tag now names other content), so losers fail fast."""
    tag = f"{name}.lease"
    owner = uuid.uuid4().hex
    waited_for = ""
    deadline = time.monotonic() + LEASE_WAIT
    s.registry.upload_blob(repo, sha256_digest(EMPTY), EMPTY)
    while True:
        holder = _lease_holder(s, repo, tag)
        if holder is None or holder[1] < time.time():
            expires = time.time() + LEASE_TTL
            body = canonical_json({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": LEASE_TYPE,
                "config": {"mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY),
                           "size": len(EMPTY)},
                "layers": [],
                "annotations": {"dev.kiln.lease.owner": owner,
                                "dev.kiln.lease.expires": f"{expires:.3f}",
                                "dev.kiln.lease.holder": f"{s.who} pid {os.getpid()}"}})
            digest = s.registry.put_manifest(repo, tag, body, OCI_MANIFEST)
            time.sleep(SETTLE)
            holder = _lease_holder(s, repo, tag)
            if holder is not None and holder[0] == owner:
                break
        else:
            waited_for = holder[2]
        if precheck is not None:
            precheck()
        if time.monotonic() > deadline:
            raise PublishError(f"{repo}:{name} is being written by {waited_for or 'another'} "
                               f"kiln (lease {tag}); waited {LEASE_WAIT:.0f}s, try again later")
        time.sleep(random.uniform(0.1, 0.5))
    held = Lease(s, repo, tag, owner, digest, expires)
    try:
        yield held
    finally:
        with contextlib.suppress(RegistryError):  # else it expires on its own
            s.registry.delete_manifest(repo, digest)


# channels ------------------------------------------------------------------------------------
def history(s: Session, repo: str, channel: str) -> list[dict[str, Any]]:
    got = _artifact_blobs(s, repo, f"{channel}.history", HISTORY_TYPE)
    if got is None:
        return []
    data = json.loads(got[1].get(HISTORY_TYPE, b"{}"))
    return list(data.get("entries") or [])


def _write_history(s: Session, repo: str, channel: str, entries: list[dict[str, Any]]) -> None:
    blob = canonical_json({"type": "dev.kiln.channel-history.v1", "repository": repo,
                           "channel": channel, "entries": entries})
    _put_artifact(s, repo, f"{channel}.history", HISTORY_TYPE, None, [(HISTORY_TYPE, blob)],
                  {"org.opencontainers.image.created": now_iso()})


def _version_tag_of(s: Session, repo: str, digest: str) -> str | None:
    for tag in s.registry.tags(repo):
        if is_version_tag(tag, s.config):
            found = s.registry.resolve(repo, tag)
            if found is not None and found.digest == digest:
                return tag
    return None


def resolve_source(s: Session, name: str, ref: str | None,
                   target: str = "container") -> tuple[str, str]:
    """What `promote <spec>` names -> (digest, immutable tag that names it). A channel name
    means that channel of the target (`stable` -> `stable-vm` for a disk)."""
    repo = s.config.repository(name)
    if ref in s.config.channels:
        ref = channel_tag(ref, target)
    if ref is None and target == "vm":
        from kiln.vm.publish import local_tag
        ref = local_tag(s, name)
    if ref is None:
        engine = s.need_engine()
        prepared = prepare(s.project, name)
        image_id = engine.image_id(prepared.ref)
        if image_id is None:
            raise KilnError(f"{name} is not built here; name the version to promote "
                            f"(`invoke promote {name}:<tag> <channel>`, see `invoke catalog`)")
        info = engine.inspect_image(image_id)
        ref = immutable_tag(prepared.plan.image.version, str(info["Created"]), image_id)
    found = s.registry.resolve(repo, ref)
    if found is None:
        raise KilnError(f"{s.registry.host}/{repo}:{ref} does not exist (publish it first: "
                        f"`invoke publish {name}`; see `invoke catalog`)")
    tag = ref if is_version_tag(ref, s.config) and not DIGEST_RE.match(ref) else \
        _version_tag_of(s, repo, found.digest)
    if tag is None:
        raise PublishError(f"{repo}@{found.digest[:19]} has no immutable tag: channels only "
                           "point at published versions")
    return found.digest, tag


def promote(s: Session, spec: str, channel: str, target: str = "container") -> Move:
    name, ref = parse_spec(spec)
    channel = channel_tag(s.config.check_channel(channel), target)
    repo = s.config.repository(name)
    before = s.registry.resolve(repo, channel)  # what this command expects to move
    expected = before.digest if before else None
    digest, tag = resolve_source(s, name, ref, target)
    check_kind(check_trust(s, repo, digest), target)

    def refuse_if_moved() -> None:
        now = s.registry.resolve(repo, channel)
        if (now.digest if now else None) != expected:
            raise PublishError(
                f"{repo}:{channel} moved to {now.digest[:19] if now else 'nothing'} while this "
                f"promote of {digest[:19]} ran (another promote won); nothing was changed, "
                "re-run to promote over it")

    with lease(s, repo, channel, refuse_if_moved) as held:
        refuse_if_moved()
        if expected == digest:
            return Move(repo, channel, "unchanged", digest, expected, tag)
        confirm = s.registry.resolve(repo, tag)
        if confirm is None or confirm.digest != digest:
            raise PublishError(f"{repo}:{tag} no longer names {digest[:19]}")
        return _move(s, held, repo, channel, "promote", digest, expected, tag)


def _move(s: Session, held: Lease, repo: str, channel: str, action: str, digest: str,
          previous: str | None, tag: str) -> Move:
    entries = history(s, repo, channel)
    entries.append({"action": action, "digest": digest, "tag": tag, "from": previous,
                    "at": now_iso(), "by": s.who})
    held.check()
    _write_history(s, repo, channel, entries)  # first: a move is never unrecorded
    image = s.registry.manifest(repo, digest)
    assert image is not None
    s.registry.put_manifest(repo, channel, image.body, image.media_type or OCI_MANIFEST)
    _read_back(s, repo, channel, digest)
    return Move(repo, channel, action, digest, previous, tag)


def rollback(s: Session, name: str, channel: str, target: str = "container") -> Move:
    """Return `channel` to the most recent digest it held that was never rolled back from,
    is not revoked, and still checks out."""
    channel = channel_tag(s.config.check_channel(channel), target)
    repo = s.config.repository(name)
    with lease(s, repo, channel) as held:
        now = s.registry.resolve(repo, channel)
        current = now.digest if now else None
        entries = history(s, repo, channel)
        bad = {e.get("from") for e in entries if e.get("action") == "rollback"} | {current}
        why: list[str] = []
        for entry in reversed(entries):
            digest = str(entry.get("digest"))
            if digest in bad:
                continue
            bad.add(digest)
            try:
                check_kind(check_trust(s, repo, digest), target)
            except TrustError as exc:
                why.append(str(exc))
                continue
            return _move(s, held, repo, channel, "rollback", digest, current,
                         str(entry.get("tag")))
        detail = ("; skipped: " + "; ".join(why)) if why else ""
        raise PublishError(f"{repo}:{channel} has no earlier known-good digest in its history "
                           f"({len(entries)} moves){detail}")


# pull ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullResult:
    reference: str
    digest: str
    image_id: str
    local: tuple[str, ...]
    verified: str

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in ((k, getattr(self, k)) for k in self.__dataclass_fields__)}


def pull(s: Session, spec: str) -> PullResult:
    name, ref = parse_spec(spec)
    ref = ref or (s.config.channels[0])
    repo = s.config.repository(name)
    found = s.registry.resolve(repo, ref)
    if found is None:
        raise KilnError(f"{s.registry.host}/{repo}:{ref} does not exist in the registry "
                        "(see `invoke catalog`)")
    digest = found.digest
    trust = check_kind(check_trust(s, repo, digest), "container")
    remote = f"{s.registry.host}/{repo}"
    engine = s.need_engine()
    with s.ui.task(f"pull {remote}@{digest[:19]} (signature and verification checked)"):
        image_id = engine.pull_stream(remote, digest)
    if image_id != trust.image_id:
        raise TrustError(f"{remote}@{digest}: the engine pulled {image_id[:19]}, but the signed "
                         f"provenance names {trust.image_id[:19]}")
    local = [] if DIGEST_RE.match(ref) else [f"{remote}:{ref}", f"{image_repository(name)}:{ref}"]
    for target in local:
        engine.tag(image_id, target)
    v = trust.provenance.get("verification") or {}
    summary = (f"suite {str(v.get('suite'))[:12]}, {(v.get('counts') or {}).get('passed', 0)} "
               f"checks passed, {v.get('started')}")
    return PullResult(f"{remote}@{digest}", digest, image_id, tuple(local), summary)


# catalog -------------------------------------------------------------------------------------
def catalog(s: Session) -> list[dict[str, Any]]:
    prefix = s.config.namespace + "/"
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for repo in s.registry.repositories():
        if not repo.startswith(prefix):
            continue
        tags = s.registry.tags(repo)
        channel_tags = [channel_tag(c, t) for c in s.config.channels for t in TARGETS]
        digests = {t: s.registry.resolve(repo, t) for t in tags
                   if is_version_tag(t, s.config) or t in channel_tags}
        channels_at: dict[str, list[str]] = {}
        for channel in channel_tags:
            if digests.get(channel):
                channels_at.setdefault(digests[channel].digest, []).append(  # type: ignore[union-attr]
                    channel)
        for tag in tags:
            if not is_version_tag(tag, s.config) or digests.get(tag) is None:
                continue
            digest = digests[tag].digest  # type: ignore[union-attr]
            signed, verified, revoked, age, why = "no", "no", "no", "", ""
            try:
                trust = check_trust(s, repo, digest)
                signed = verified = "yes"
                age = _age(now, trust.signed_at)
            except TrustError as exc:
                why = str(exc)
                if " was revoked on " in why:
                    revoked = "yes"
                    signed = "yes" if s.registry.resolve(repo, sidecar(digest, "sig")) else "no"
                elif "unsigned" not in why:
                    signed = "bad" if "signature" in why or "tampered" in why else "yes"
            except KilnError as exc:
                why = str(exc)
            rows.append({"image": repo.removeprefix(prefix), "repository": repo, "tag": tag,
                         "target": target_of(tag),
                         "digest": digest, "channels": sorted(channels_at.get(digest, [])),
                         "signed": signed, "verified": verified, "revoked": revoked,
                         "age": age, "problem": why})
    return rows


def _age(now: datetime, stamp: str) -> str:
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    delta: timedelta = now - then
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
