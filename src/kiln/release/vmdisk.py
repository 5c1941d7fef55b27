"""The VM disk artifact: a boot-verified disk as an OCI artifact, and pull.

In the image's own repository (`<namespace>/<image>`), beside its container:

  <container tag>-vm    OCI image manifest, artifactType application/vnd.kiln.vm.disk.v1
                          config  disk.json, byte for byte as `kiln build --target vm` wrote it
                          layers  the qcow2 (streamed from disk), the VM verification record
                          subject the container's manifest, when that is published here too
  <channel>-vm          the disk channels (promote/rollback/revoke with --target vm)

Signatures, attestations, tags and leases are the release package's, as for containers; among
the attestations is the disk's file manifest (files.json, kiln.vm.files: every file of its root
filesystem), which `kiln drift --ssh` judges a machine made from the disk against. The
disk's content id (what decides "same content") is the digest of disk.json, which pins the
qcow2's and the raw disk's sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.context import Context
from kiln.errors import KilnError
from kiln.fingerprint import file_sha256
from kiln.fleet.manifest import PREDICATE_TYPE as FILE_MANIFEST
from kiln.records import VerifyRecord, first_built, require_verified
from kiln.registry import DIGEST_RE, OCI_MANIFEST, Manifest, RegistryError, sha256_digest
from kiln.release import chain
from kiln.release.errors import DigestMismatch, NotVerified, PublishError, Tampered, TrustError
from kiln.release.names import (
    VM_SUFFIX,
    channel_tag,
    check_names,
    immutable_tag,
    now_iso,
    parse_spec,
)
from kiln.release.provenance import CYCLONEDX, SLSA, VERIFICATION, cyclonedx, slsa
from kiln.release.provenance import verification as verification_predicate
from kiln.release.trust import VM_ARTIFACT_TYPE, check_kind, check_trust, published_digest
from kiln.signing import canonical_json
from kiln.vm import files
from kiln.vm.build import MANIFEST, built_disk

DISK_CONFIG_TYPE = "application/vnd.kiln.vm.disk.config.v1+json"
QCOW2_TYPE = "application/vnd.kiln.vm.disk.qcow2.v1"
RECORD_TYPE = "application/vnd.kiln.vm.verification.v1+json"


@dataclass(frozen=True)
class VmDisk:
    """The disk built for an image's current definition, verified: the artifact publish takes."""

    name: str
    folder: Path
    config: bytes  # disk.json's exact bytes: their digest is the artifact's identity
    created: str  # when the definition was first built: the tag's date, as for containers
    record: VerifyRecord | None = None
    target: str = "vm"

    @property
    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.config)
        return data

    @property
    def qcow2(self) -> Path:
        return self.folder / "disk.qcow2"

    @property
    def content_id(self) -> str:
        return sha256_digest(self.config)

    @property
    def image_id(self) -> str:
        return str(self.manifest["image_id"])

    @property
    def default_tag(self) -> str:
        """`<container's immutable tag>-vm`: the disk made from container tag X is X-vm."""
        return immutable_tag(str(self.manifest["version"]), self.created,
                             self.image_id) + VM_SUFFIX

    @classmethod
    def local(cls, s: Context, name: str) -> VmDisk:
        """The local disk, if it passed boot verification (the publish gate)."""
        disk = local_disk(s, name)
        record = require_verified(s.root, name, disk.image_id, target="vm")
        files.load(disk.folder)  # refused before anything is pushed, not after
        try:
            check_record(record, disk.manifest, f"{name} ({disk.folder})")
        except TrustError as exc:
            raise PublishError(str(exc)) from None
        return cls(disk.name, disk.folder, disk.config, disk.created, record)

    def push(self, s: Context, repo: str) -> bytes:
        if self.record is None:
            raise PublishError(f"{self.name}: the disk's verification was not checked (use "
                               "VmDisk.local)")
        return push_disk(s, self.name, repo, self, self.record)

    def predicates(self, s: Context, repo: str, manifest: Manifest) -> dict[str, dict[str, Any]]:
        """From the artifact itself (its disk.json and record), plus the build's provenance."""
        doc = manifest.json
        config_digest = str(doc["config"]["digest"])
        disk = json.loads(s.registry.blob(repo, config_digest))
        record_layer = _layer(doc, RECORD_TYPE)
        record = VerifyRecord.from_json(json.loads(s.registry.blob(repo, record_layer["digest"])))
        prepared = s.prepared(self.name)
        plan = prepared.plan
        base_id = s.engine.image_id(prepared.base_ref)
        packages = record.extra.get("packages")
        listed = files.load(self.folder)
        if listed.image_id != disk["image_id"]:
            raise PublishError(f"{self.folder / files.FILES}: lists the files of image "
                               f"{listed.image_id[:19]}, the disk is {str(disk['image_id'])[:19]}"
                               f" (build it again with --force)")
        return {
            SLSA: slsa(s.root, plan, prepared.fingerprint, prepared.base_ref, base_id,
                       record.started),
            CYCLONEDX: cyclonedx(repo, str(disk["version"]), manifest.digest,
                                 [str(p) for p in packages] if isinstance(packages, list)
                                 else None),
            VERIFICATION: {
                **verification_predicate(
                    record, target="vm", image=self.name, repository=repo,
                    manifest=manifest.digest, image_id=config_digest,
                    container_image_id=disk["image_id"],
                    subject=(doc.get("subject") or {}).get("digest"), version=disk["version"],
                    fingerprint=disk["fingerprint"], layers=[x.name for x in plan.all_layers],
                    disk={k: disk.get(k) for k in ("boot", "size", "kernel", "filesystem",
                                                   "sha256", "recipe", "disk_version",
                                                   "qcow2_compressed")},
                    signed_at=now_iso()),
            } | {"record": record_layer["digest"], "boots": record.extra.get("boots")},
            FILE_MANIFEST: listed.predicate(),
        }


def local_disk(s: Context, name: str) -> VmDisk:
    prepared = s.prepared(name)
    built = built_disk(s.root, name, prepared.fingerprint)
    if built is None or not built.qcow2.is_file():
        raise KilnError(f"{prepared.plan.image.path}: no disk built for the current definition "
                        f"of '{name}' (run `kiln build {name} --target vm`)")
    config = (built.folder / MANIFEST).read_bytes()
    # the container's tag date: the disk made from container tag X is X-vm
    return VmDisk(name, built.folder, config, first_built(s.root, prepared.fingerprint))


def local_tag(s: Context, name: str) -> str:
    """The immutable tag of the locally built disk (what `promote <image> --target vm` means)."""
    return local_disk(s, name).default_tag


def check_record(record: VerifyRecord, disk: dict[str, Any], where: str) -> None:
    """The record passed, for this disk's container, for this disk's bytes, in every boot mode."""
    if not record.passed or record.target != "vm":
        raise NotVerified(f"{where}: its VM verification record is not a passing one "
                         f"({record.target}, {record.reason or 'failed'})")
    if record.image_id != disk.get("image_id"):
        raise NotVerified(f"{where}: the VM verification record is for image "
                         f"{record.image_id[:19]}, the disk was made from "
                         f"{str(disk.get('image_id'))[:19]}")
    verified_sha = record.extra.get("disk_sha256")
    if verified_sha is not None and verified_sha != disk.get("sha256"):
        raise NotVerified(f"{where}: the disk was remade after it was verified (the record's "
                         "disk sha256 differs); verify it again")
    boots = record.extra.get("boots")
    if isinstance(boots, list):
        ok = {str(b.get("mode")) for b in boots if isinstance(b, dict) and not b.get("error")}
        missing = [m for m in disk.get("boot") or [] if m not in ok]
        if missing:
            raise NotVerified(f"{where}: boot mode(s) {', '.join(missing)} of the disk were not "
                             f"verified (verified: {', '.join(sorted(ok)) or 'none'}); run "
                             "`invoke verify <image> --target vm` without --boot")


# publish -------------------------------------------------------------------------------------
def push_disk(s: Context, name: str, repo: str, disk: VmDisk, record: VerifyRecord) -> bytes:
    """disk.json, the qcow2 (streamed from disk; the registry checks its digest), the record;
    then the manifest by digest. Returns the manifest bytes."""
    reg = s.registry
    info = disk.manifest
    qcow2_digest = "sha256:" + str(info["sha256"]["qcow2"])
    record_blob = canonical_json(record.to_json())
    reg.upload_blob(repo, disk.content_id, disk.config)
    if reg.blob_size(repo, qcow2_digest) is None:
        s.ui.step(f"upload {qcow2_digest[:19]} ({disk.qcow2.stat().st_size >> 20} MiB qcow2)")
        reg.upload_blob(repo, qcow2_digest, disk.qcow2)
    reg.upload_blob(repo, sha256_digest(record_blob), record_blob)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": VM_ARTIFACT_TYPE,
        "config": {"mediaType": DISK_CONFIG_TYPE, "digest": disk.content_id,
                   "size": len(disk.config)},
        "layers": [
            {"mediaType": QCOW2_TYPE, "digest": qcow2_digest, "size": disk.qcow2.stat().st_size,
             "annotations": {"org.opencontainers.image.title": f"{name}.qcow2"}},
            {"mediaType": RECORD_TYPE, "digest": sha256_digest(record_blob),
             "size": len(record_blob)},
        ],
        "annotations": {
            "org.opencontainers.image.created": disk.created,
            "org.opencontainers.image.version": str(info["version"]),
            "dev.kiln.image": name,
            "dev.kiln.fingerprint": str(info["fingerprint"]),
            "dev.kiln.vm.kernel": str(info["kernel"]),
            "dev.kiln.vm.boot": "+".join(info["boot"]),
        },
    }
    subject = _container_manifest(s, repo, disk)
    if subject is not None:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject.digest,
                          "size": len(subject.body)}
    body = canonical_json(doc)
    reg.put_manifest(repo, sha256_digest(body), body, OCI_MANIFEST)
    return body


def _container_manifest(s: Context, repo: str, disk: VmDisk) -> Manifest | None:
    """The container the disk was made from, when it is published here under its default tag."""
    tag = immutable_tag(str(disk.manifest["version"]), disk.created, disk.image_id)
    found = s.registry.manifest(repo, tag)
    if found is None or (found.json.get("config") or {}).get("digest") != disk.image_id:
        return None
    return found


def _layer(doc: dict[str, Any], media_type: str) -> dict[str, Any]:
    for layer in doc.get("layers") or []:
        if layer.get("mediaType") == media_type:
            return dict(layer)
    raise TrustError(f"the disk artifact has no {media_type} layer (not a kiln VM disk, or "
                     "tampered)")


# pull ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiskPull:
    reference: str
    digest: str
    qcow2: Path
    disk_json: Path
    bytes: int
    action: str  # "downloaded" | "up to date"
    boot: tuple[str, ...]
    kernel: str
    verified: str

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest, "qcow2": str(self.qcow2),
                "disk_json": str(self.disk_json), "bytes": self.bytes, "action": self.action,
                "boot": list(self.boot), "kernel": self.kernel, "verified": self.verified}


def pull_disk(s: Context, spec: str, output: Path) -> DiskPull:
    """Resolve to a digest, check signature, provenance and the VM record, then download the
    qcow2 (streamed, checked against its digest and disk.json) to <output>/<image>.qcow2."""
    name, ref = parse_spec(spec)
    ref = ref or s.config.channels[0]
    if ref in s.config.channels:
        ref = channel_tag(ref, "vm")
    repo = s.config.repository(name)
    digest = published_digest(s, repo, ref)
    where = f"{s.registry.host}/{repo}@{digest[:19]}"
    trust = check_kind(check_trust(s, repo, digest), "vm")
    if ref in {channel_tag(c, "vm") for c in s.config.channels}:
        chain.check(s, repo, ref, digest)
    try:
        manifest = s.registry.manifest(repo, digest)
        if manifest is None:
            raise Tampered(f"{where}: deleted from the registry while it was being pulled")
        doc = manifest.json
        config = s.registry.blob(repo, str(doc["config"]["digest"]))
        qcow2_layer = _layer(doc, QCOW2_TYPE)
        record_layer = _layer(doc, RECORD_TYPE)
        record = VerifyRecord.from_json(json.loads(
            s.registry.blob(repo, str(record_layer["digest"]))))
    except RegistryError as exc:
        raise Tampered(f"{where}: {exc} (tampered in the registry?)") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise Tampered(f"{where}: unreadable disk metadata ({exc}): tampered") from None
    disk = json.loads(config)
    check_names(s.registry.host, repo, ref, str(disk.get("image_id")))
    _check_artifact(where, trust.provenance, disk, qcow2_layer, record_layer, record)
    output.mkdir(parents=True, exist_ok=True)
    qcow2 = output / f"{name}.qcow2"
    disk_json = output / f"{name}.disk.json"
    want = str(disk["sha256"]["qcow2"])
    action = "up to date"
    if not (qcow2.is_file() and qcow2.stat().st_size == qcow2_layer["size"]
            and file_sha256(qcow2) == want):
        action = "downloaded"
        with s.ui.task(f"pull {where} (vm disk, {qcow2_layer['size'] >> 20} MiB) -> {qcow2}"):
            try:
                s.registry.download_blob(repo, str(qcow2_layer["digest"]), qcow2)
            except RegistryError as exc:
                if "does not match its digest" in str(exc):
                    raise DigestMismatch(f"{where}: the qcow2 blob the registry served is not the "
                                     f"signed one: {exc}") from None
                raise
    disk_json.write_bytes(config)
    checks = record.counts
    summary = (f"suite {record.suite[:12]}, {checks['passed']} checks passed, booted "
               f"{'+'.join(disk['boot'])}, {record.started}")
    return DiskPull(f"{s.registry.host}/{repo}@{digest}", digest, qcow2, disk_json,
                    int(qcow2_layer["size"]), action, tuple(disk["boot"]), str(disk["kernel"]),
                    summary)


def _check_artifact(where: str, prov: dict[str, Any], disk: dict[str, Any],
                    qcow2_layer: dict[str, Any], record_layer: dict[str, Any],
                    record: VerifyRecord) -> None:
    """The signed provenance, disk.json, the layers and the record all describe one disk.
    (The signature pins the manifest, which pins every blob: these catch a signer's mistake
    or a forged provenance that check_trust's digests would not.)"""
    qcow2_digest = str(qcow2_layer.get("digest"))
    if not DIGEST_RE.match(qcow2_digest) or qcow2_digest != "sha256:" + str(
            (disk.get("sha256") or {}).get("qcow2")):
        raise Tampered(f"{where}: the qcow2 layer is not the disk disk.json describes "
                         "(tampered)")
    if prov.get("target") != "vm" or (prov.get("disk") or {}).get("sha256") != disk.get("sha256"):
        raise Tampered(f"{where}: the signed provenance describes another disk (tampered)")
    if prov.get("record") != record_layer.get("digest"):
        raise Tampered(f"{where}: the VM verification record is not the signed one "
                         "(tampered)")
    check_record(record, disk, where)
