"""The one publish skeleton, for any artifact (a container image, a VM disk, what comes next).

  1. the gate: the artifact is built for the current definitions and verified (its class)
  2. ask first: an existing tag is this very content (sign what is missing) or a refusal
  3. push the content by digest (its class), so a tag never names a partial artifact
  4. refuse a revoked digest; sign (cosign) and attest (DSSE) it, with its signed file manifest
     (what `kiln drift` judges instances against: kiln.fleet exports a container image's; a VM
     disk's is among its predicates, recorded when the disk was made)
  5. put the immutable tag under its lease, and read it back
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from kiln.context import Context
from kiln.registry import OCI_MANIFEST, Manifest, sha256_digest
from kiln.release import cosign
from kiln.release.errors import ImmutableTagError
from kiln.release.lease import lease
from kiln.release.names import check_tag
from kiln.release.oci import config_digest, full, read_back
from kiln.release.session import checkpoint
from kiln.release.trust import refuse_revoked
from kiln.signing import load_private


class Artifact(Protocol):
    """What the skeleton needs from one kind of artifact."""

    @property
    def name(self) -> str: ...

    @property
    def target(self) -> str:
        """"container" | "vm": which tags and channels it uses."""

    @property
    def content_id(self) -> str:
        """Its config's digest: what decides "the same content"."""

    @property
    def default_tag(self) -> str: ...

    def push(self, s: Context, repo: str) -> bytes:
        """Push every blob, then the manifest by digest; return the manifest's bytes."""

    def predicates(self, s: Context, repo: str, manifest: Manifest) -> dict[str, dict[str, Any]]:
        """predicateType -> predicate, for the attestations of the pushed manifest."""


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


def publish(s: Context, artifact: Artifact, tag: str | None = None) -> PublishResult:
    started = time.monotonic()
    sent_before = (s.registry.counters.bytes_uploaded, s.registry.counters.blobs_uploaded)
    repo = s.config.repository(artifact.name)
    tag = check_tag(tag or artifact.default_tag, s.config, artifact.target)

    def result(action: str, digest: str) -> PublishResult:
        c = s.registry.counters
        return PublishResult(artifact.name, repo, tag, digest, artifact.content_id, action,
                             c.bytes_uploaded - sent_before[0], c.blobs_uploaded - sent_before[1],
                             time.monotonic() - started, f"{s.registry.host}/{repo}@{digest}")

    existing = s.registry.manifest(repo, tag)
    if existing is not None:
        refuse_other(s, repo, tag, existing, artifact.content_id)
        refuse_revoked(s, repo, existing.digest)
        attach(s, repo, existing, artifact)  # an earlier run may have died before signing
        return result("up to date", existing.digest)

    kind = "" if artifact.target == "container" else f" ({artifact.target})"
    with s.ui.task(f"publish {artifact.name}{kind} -> {s.registry.host}/{repo}:{tag}"):
        body = artifact.push(s, repo)
        digest = sha256_digest(body)
        s.ui.step(f"manifest {digest[:19]} pushed by digest")
        checkpoint("pushed")
        refuse_revoked(s, repo, digest)
        attach(s, repo, Manifest(digest, OCI_MANIFEST, body), artifact)
        s.ui.step("signed (cosign) and attested (SLSA provenance, CycloneDX SBOM, verification)")
        tag_immutably(s, repo, tag, body, artifact.content_id)
    return result("published", digest)


def attach(s: Context, repo: str, manifest: Manifest, artifact: Artifact) -> None:
    """Sign and attest `manifest`; what is there already (by this key) is kept as is."""
    manifest = full(s.registry, repo, manifest)
    key = load_private(s.config.signing_key)
    cosign.sign(s.registry, repo, manifest.digest, key, {"dev.kiln.signed-by": s.who})
    cosign.attest(s.registry, repo, manifest.digest, key, artifact.predicates(s, repo, manifest))
    if artifact.target == "container":
        attach_file_manifest(s, artifact, repo, manifest)


def attach_file_manifest(s: Context, artifact: Artifact, repo: str, manifest: Manifest) -> None:
    """The hook of issue 15: every file of the image, as one more signed attestation. Kept
    apart from `predicates` because it exports the image: only done when it is missing."""
    from kiln.fleet.attest import attach  # the fleet builds on the release: imported late

    if attach(s, artifact.name, repo, manifest, artifact.content_id):
        s.ui.step("file manifest attested (kiln drift)")


def tag_immutably(s: Context, repo: str, tag: str, body: bytes, content_id: str) -> None:
    """Put immutable `tag` on manifest `body` (pushed by digest already) under the tag's lease:
    refused when the tag names other content, read back afterwards."""
    digest = sha256_digest(body)

    def refuse_if_taken() -> None:
        current = s.registry.manifest(repo, tag)
        if current is not None and current.digest != digest:
            refuse_other(s, repo, tag, current, content_id, strict=True)

    with lease(s, repo, tag, refuse_if_taken) as held:
        checkpoint("tag-leased")
        refuse_if_taken()
        current = s.registry.resolve(repo, tag)
        held.check()
        if current is None:
            s.registry.put_manifest(repo, tag, body, OCI_MANIFEST)
        read_back(s.registry, repo, tag, digest)
    s.ui.step(f"tagged {tag}, read back {digest[:19]}")


def refuse_other(s: Context, repo: str, tag: str, found: Manifest, content_id: str,
                 strict: bool = False) -> None:
    """The tag names this content (fine, unless `strict`: another manifest of it) or a refusal."""
    named = config_digest(full(s.registry, repo, found))
    if not strict and named == content_id:
        return
    raise ImmutableTagError(
        f"{s.registry.host}/{repo}:{tag} already names {found.digest} (content "
        f"{str(named)[:19]}), not this one ({content_id[:19]}): immutable tags are never "
        "reused for other content; the tag was left untouched (publish under a new tag)")
