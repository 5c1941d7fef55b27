"""The revocation list: one signed, versioned document per repository, under the tag
`revocations`. Every revoke writes version n+1 with every entry so far. A reader remembers the
highest version it has seen; a list that is missing, older, or not signed by the project key
fails closed (nothing is pulled), so deleting or forging it does not un-revoke anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiln.context import Context
from kiln.registry import RegistryError
from kiln.release import cosign, seen
from kiln.release.errors import RevocationsMissing
from kiln.release.lease import lease
from kiln.release.names import REVOCATIONS, now_iso
from kiln.release.oci import layers_of, put_artifact, read_back
from kiln.signing import load_private, load_public

LIST_TYPE = "application/vnd.dev.kiln.revocations.v1+json"


@dataclass(frozen=True)
class Revocations:
    version: int
    entries: dict[str, dict[str, Any]]  # manifest digest -> {reason, at, by}


def read(s: Context, repo: str) -> Revocations:
    where = f"{s.registry.host}/{repo}:{REVOCATIONS}"
    known = seen.high(s, f"{repo}#revocations")
    try:
        found = s.registry.manifest(repo, REVOCATIONS)
    except RegistryError as exc:
        raise RevocationsMissing(f"{where}: unreadable ({exc}); nothing is trusted until it "
                                 "reads") from None
    if found is None:
        if known:
            raise RevocationsMissing(f"{where} is gone, but version {known} was seen here: "
                                     "deleted by a registry writer; refused (fail closed)")
        return Revocations(0, {})
    doc = None
    for layer in layers_of(found):
        if layer.media_type == LIST_TYPE:
            try:
                doc = cosign.unseal(load_public(s.config.public_key),
                                    s.registry.blob(repo, layer.digest), LIST_TYPE)
            except RegistryError:
                doc = None
            break
    if doc is None or doc.get("repository") != repo:
        raise RevocationsMissing(f"{where} is not signed by the project key (forged or "
                                 "damaged); refused (fail closed)")
    version = int(doc.get("version") or 0)
    if version < known:
        raise RevocationsMissing(f"{where} is version {version}, older than version {known} "
                                 "seen here: put back by a registry writer; refused")
    seen.raise_to(s, f"{repo}#revocations", version)
    entries = {str(e["digest"]): dict(e) for e in doc.get("entries") or []
               if isinstance(e, dict) and "digest" in e}
    return Revocations(version, entries)


def add(s: Context, repo: str, digest: str, reason: str) -> int:
    """Append `digest` to the list (under its lease); returns the new version."""
    key = load_private(s.config.signing_key)
    with lease(s, repo, REVOCATIONS) as held:
        current = read(s, repo)
        entries = dict(current.entries)
        entries.setdefault(digest, {"digest": digest, "reason": reason, "at": now_iso(),
                                    "by": s.who})
        version = current.version + 1
        doc = {"type": "dev.kiln.revocations.v1", "repository": repo, "version": version,
               "at": now_iso(), "entries": sorted(entries.values(), key=lambda e: e["at"])}
        held.check()
        digest_put = put_artifact(s.registry, repo, REVOCATIONS, LIST_TYPE,
                                  [(LIST_TYPE, cosign.envelope(key, doc, LIST_TYPE))],
                                  {"org.opencontainers.image.created": now_iso()})
        read_back(s.registry, repo, REVOCATIONS, digest_put)
    seen.raise_to(s, f"{repo}#revocations", version)
    return version
