"""Whether an artifact may be used: signed by the project key (cosign format), attested
(provenance, SBOM, verification record, each signed), verified, not revoked -- or a typed
refusal saying why. Remote state is read and checked here, never asserted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiln.context import Context
from kiln.errors import KilnError
from kiln.registry import RegistryAuthError, RegistryError, RegistryUnavailable
from kiln.release import cosign, revocations
from kiln.release.errors import (
    NotFound,
    NotVerified,
    Revoked,
    SignatureRefused,
    Tampered,
    TrustError,
    WrongKind,
)
from kiln.release.names import sidecar
from kiln.release.provenance import PREDICATES, VERIFICATION
from kiln.signing import key_id, load_public

VM_ARTIFACT_TYPE = "application/vnd.kiln.vm.disk.v1"


@dataclass(frozen=True)
class Trust:
    """Why an artifact may be used: its signature and attestations checked out."""

    repository: str
    digest: str
    image_id: str  # the artifact's config digest
    provenance: dict[str, Any]  # the signed verification record predicate
    attestations: dict[str, dict[str, Any]]  # predicateType -> predicate
    key: str
    signed_at: str
    artifact_type: str = ""  # "" for a container image, VM_ARTIFACT_TYPE for a disk


def published_digest(s: Context, repo: str, ref: str) -> str:
    """The digest `ref` (a tag or a channel's tag) names in `repo`; an error saying so when it
    names nothing."""
    found = s.registry.resolve(repo, ref)
    if found is None:
        raise KilnError(f"{s.registry.host}/{repo}:{ref} does not exist in the registry "
                        "(see `kiln catalog`)")
    return found.digest


def check_trust(s: Context, repo: str, digest: str) -> Trust:
    where = f"{s.registry.host}/{repo}@{digest[:19]}"
    pin, have = s.config.key_id, key_id(load_public(s.config.public_key))
    if pin and have != pin:
        raise SignatureRefused(f"{s.config.public_key} is key {have}, but the project pins key "
                               f"{pin} (key_id in kiln.toml): restore the committed kiln.pub")
    try:
        image = s.registry.manifest(repo, digest)
    except (RegistryUnavailable, RegistryAuthError):
        raise  # the registry is down or refuses us: say so, not "tampered"
    except RegistryError as exc:  # it served other bytes than the digest names
        raise Tampered(f"{where}: {exc}") from None
    if image is None:
        raise NotFound(f"{where}: no such manifest in the registry")
    try:
        doc = image.json
        config_digest = str(doc["config"]["digest"])
    except (ValueError, KeyError, TypeError):
        raise WrongKind(f"{where} is a {image.media_type or 'document'}, not a single image "
                        "kiln published") from None
    revoked = revocation(s, repo, digest)
    if revoked is not None:
        raise Revoked(f"{where} was revoked on {revoked.get('at')} by {revoked.get('by')}: "
                      f"{revoked.get('reason') or 'no reason given'}",
                      str(revoked.get("reason") or ""))
    public = load_public(s.config.public_key)
    signature = cosign.verify(s.registry, repo, digest, public)
    found = cosign.attestations(s.registry, repo, digest, public)
    record = found.get(VERIFICATION)
    if record is None:
        raise NotVerified(f"{where} has no verification record signed by the project key "
                          f"{signature.key} ({sidecar(digest, 'att')})")
    missing = [p for p in PREDICATES if p not in found]
    if missing:
        raise Tampered(f"{where}: its signed attestation(s) {', '.join(missing)} are missing "
                       f"from {sidecar(digest, 'att')} (deleted or replaced)")
    if record.get("manifest") != digest or record.get("image_id") != config_digest:
        raise Tampered(f"{where}: the signed verification record describes another image")
    if (record.get("verification") or {}).get("passed") is not True:
        raise NotVerified(f"{where} was not verified (its signed record shows no passing run)")
    return Trust(repo, digest, config_digest, record, found, signature.key,
                 str(record.get("signed_at", "")), str(doc.get("artifactType") or ""))


def check_kind(trust: Trust, target: str) -> Trust:
    """A container channel never names a disk, nor a disk channel a container."""
    is_vm = trust.artifact_type == VM_ARTIFACT_TYPE
    if is_vm != (target == "vm"):
        what = "a VM disk" if is_vm else "a container image"
        raise WrongKind(f"{trust.repository}@{trust.digest[:19]} is {what}, not a {target} "
                        f"(use --target {'vm' if is_vm else 'container'})")
    return trust


def revocation(s: Context, repo: str, digest: str) -> dict[str, Any] | None:
    """The entry of `digest` in the signed revocation list, or None (the list must read)."""
    return revocations.read(s, repo).entries.get(digest)


def refuse_revoked(s: Context, repo: str, digest: str) -> None:
    """A revoked digest is never published again, whatever tag it would get."""
    revoked = revocation(s, repo, digest)
    if revoked is not None:
        raise Revoked(f"{repo}@{digest} was revoked on {revoked.get('at')} "
                      f"({revoked.get('reason')}); it cannot be published again",
                      str(revoked.get("reason") or ""))


__all__ = ["Trust", "TrustError", "check_kind", "check_trust", "refuse_revoked", "revocation"]
