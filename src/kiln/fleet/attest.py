"""The file manifest beside its image in the registry, and the one check of what may be judged.

Stored like kiln's other attestations: an OCI artifact tagged `sha256-<hex>.files` whose
`subject` is the image manifest, holding one DSSE envelope (cosign's attestation media type)
around the in-toto statement. i11-release's src/kiln/release/ replaces the storage; the
statement and its predicate stay.
"""

from __future__ import annotations

from kiln.errors import KilnError
from kiln.fleet.manifest import (
    FileManifest,
    from_statement,
    mutable_paths,
    of_image,
    open_envelope,
    sign_envelope,
    statement,
)
from kiln.pipeline import prepare
from kiln.publish import (
    Session,
    Trust,
    TrustError,
    _artifact_blobs,
    _put_artifact,
    check_kind,
    check_trust,
    now_iso,
    sidecar,
)
from kiln.registry import Manifest, RegistryError
from kiln.signing import SignatureError, load_private, load_public

FILES_ARTIFACT = "application/vnd.dev.kiln.file-manifest.v1+json"
DSSE_TYPE = "application/vnd.dsse.envelope.v1+json"


def trusted(s: Session, repo: str, digest: str) -> Trust:
    """The one gate: signed by the project key, verified, not revoked -- or TrustError."""
    return check_kind(check_trust(s, repo, digest), "container")


def attach(s: Session, name: str, repo: str, image: Manifest, image_id: str) -> str:
    """Record and sign the file manifest of published `image` (kept when a valid one exists)."""
    tag = sidecar(image.digest, "files")
    if s.registry.resolve(repo, tag) is not None:
        try:
            signed_manifest(s, repo, image.digest)
            return tag
        except (TrustError, SignatureError, KilnError):
            pass  # replace a broken or foreign one with ours
    plan = prepare(s.project, name).plan
    files = of_image(s.need_engine(), image_id, mutable_paths(plan))
    envelope = sign_envelope(load_private(s.config.signing_key),
                             statement(files, repo, image.digest))
    _put_artifact(s, repo, tag, FILES_ARTIFACT, image, [(DSSE_TYPE, envelope)],
                  {"org.opencontainers.image.created": now_iso(),
                   "dev.kiln.files": str(len(files.entries))})
    return tag


def signed_manifest(s: Session, repo: str, digest: str) -> FileManifest:
    """The file manifest of `repo@digest`, its signature checked against the project key."""
    where = f"{s.registry.host}/{repo}@{digest[:19]}"
    try:
        got = _artifact_blobs(s, repo, sidecar(digest, "files"), FILES_ARTIFACT)
    except RegistryError as exc:
        raise TrustError(f"{where}: its file manifest is unreadable ({exc})") from None
    if got is None:
        raise TrustError(f"{where} has no file manifest (published before kiln recorded "
                         "them); publish a new build of it")
    found, blobs = got
    if (found.json.get("subject") or {}).get("digest") != digest or DSSE_TYPE not in blobs:
        raise TrustError(f"{where}: its file manifest is attached to another image or "
                         "malformed (tampered)")
    try:
        body = open_envelope(load_public(s.config.public_key), blobs[DSSE_TYPE])
        return from_statement(body, digest)
    except SignatureError as exc:
        raise TrustError(f"{where}: bad file manifest: {exc}") from None
