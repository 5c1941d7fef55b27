"""The file manifest beside its image in the registry, and the one check of what may be judged.

Stored like kiln's other attestations (kiln.release.cosign): one more DSSE-signed in-toto
statement, predicateType PREDICATE_TYPE, in the image's `sha256-<hex>.att`. Only statements
signed by the project key and about this very manifest digest count; the image itself must
pass kiln.release's whole trust check (signed, verified, not revoked) first.
"""

from __future__ import annotations

from kiln.context import Context
from kiln.fleet.manifest import PREDICATE_TYPE, FileManifest, mutable_paths, of_image
from kiln.registry import Manifest, RegistryError
from kiln.release import cosign
from kiln.release.errors import TrustError
from kiln.release.names import sidecar
from kiln.release.trust import Trust, check_kind, check_trust
from kiln.signing import load_private, load_public


def trusted(s: Context, repo: str, digest: str) -> Trust:
    """The one gate: signed by the project key, verified, not revoked -- or TrustError."""
    return check_kind(check_trust(s, repo, digest), "container")


def attach(s: Context, name: str, repo: str, image: Manifest, image_id: str) -> bool:
    """Record and sign the file manifest of published `image`, unless a valid one by the
    project key is there already (an earlier run). True when one was written."""
    public = load_public(s.config.public_key)
    if PREDICATE_TYPE in cosign.attestations(s.registry, repo, image.digest, public):
        return False
    plan = s.prepared(name).plan
    files = of_image(s.engine, image_id, mutable_paths(plan))
    cosign.attest(s.registry, repo, image.digest, load_private(s.config.signing_key),
                  {PREDICATE_TYPE: files.predicate()})
    return True


def signed_manifest(s: Context, repo: str, digest: str) -> FileManifest:
    """The file manifest of `repo@digest`, its signature checked against the project key."""
    where = f"{s.registry.host}/{repo}@{digest[:19]}"
    try:
        found = cosign.attestations(s.registry, repo, digest, load_public(s.config.public_key))
    except RegistryError as exc:
        raise TrustError(f"{where}: its file manifest is unreadable ({exc})") from None
    predicate = found.get(PREDICATE_TYPE)
    if predicate is None:
        raise TrustError(f"{where} has no file manifest signed by the project key in "
                         f"{sidecar(digest, 'att')} (published before kiln recorded them, or "
                         "removed); publish a new build of it")
    return FileManifest.from_predicate(predicate)
