"""A channel's history as a chain of signed documents, in the artifact `<channel>.history`.

Each move of a channel is two documents, each a DSSE envelope signed with the project key and
appended as one layer: `pending` (written before the channel tag is put) and `confirmed`
(after the tag reads back). A document names the repository, the channel, the digest, the
previous digest, a sequence number that grows by one, the time, and the sha256 of the
document before it, so the chain cannot be reordered or cut without breaking a signature.

A reader accepts the channel tag only where the latest signed document puts it, and only when
that document's sequence is not below the highest one this machine has seen: a registry writer
can neither move a channel (to any digest, signed or not) nor put back an older history.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from kiln.context import Context
from kiln.registry import OCI_MANIFEST, RegistryError
from kiln.release import cosign, revocations, seen
from kiln.release.errors import RevocationsMissing, RolledBack, Tampered
from kiln.release.lease import Lease
from kiln.release.names import now_iso
from kiln.release.oci import EMPTY, EMPTY_TYPE, Layer, layers_of, manifest_doc, put_blob, read_back
from kiln.signing import canonical_json, load_private, load_public

HISTORY_TYPE = "application/vnd.dev.kiln.channel-history.v2"
MOVE_TYPE = "application/vnd.dev.kiln.channel-move.v1+json"


@dataclass(frozen=True)
class Entry:
    repository: str
    channel: str
    sequence: int
    state: str  # "pending" | "confirmed"
    action: str  # "promote" | "rollback"
    digest: str
    previous: str | None
    tag: str
    at: str
    by: str
    parent: str  # sha256 of the envelope before this one ("" for the first)
    revocations: int  # the revocation list's version when the move was made

    def to_json(self) -> dict[str, Any]:
        return {"type": "dev.kiln.channel-move.v1", **asdict(self)}

    def as_history(self) -> dict[str, Any]:
        return {"action": self.action, "digest": self.digest, "tag": self.tag,
                "from": self.previous, "at": self.at, "by": self.by,
                "sequence": self.sequence}


def _tag(channel: str) -> str:
    return f"{channel}.history"


def read(s: Context, repo: str, channel: str) -> tuple[list[Entry], list[Layer]]:
    """The verified chain (and its layers). Any break is Tampered, never skipped."""
    where = f"{s.registry.host}/{repo}:{_tag(channel)}"
    found = s.registry.manifest(repo, _tag(channel))
    if found is None:
        return [], []
    public = load_public(s.config.public_key)
    entries: list[Entry] = []
    layers = [x for x in layers_of(found) if x.media_type == MOVE_TYPE]
    parent = ""
    for n, layer in enumerate(layers, 1):
        try:
            data = s.registry.blob(repo, layer.digest)
        except RegistryError as exc:
            raise Tampered(f"{where}: move {n} is unreadable ({exc})") from None
        doc = cosign.unseal(public, data, MOVE_TYPE)
        if doc is None:
            raise Tampered(f"{where}: move {n} is not signed by the project key: the history "
                           "was rewritten; refused")
        try:
            doc.pop("type", None)
            entry = Entry(**doc)
        except TypeError:
            raise Tampered(f"{where}: move {n} is not a channel move document") from None
        if (entry.sequence, entry.parent, entry.repository, entry.channel) != \
                (n, parent, repo, channel):
            raise Tampered(f"{where}: move {n} does not follow move {n - 1} (sequence "
                           f"{entry.sequence}): the history was cut, reordered or spliced")
        entries.append(entry)
        parent = "sha256:" + hashlib.sha256(data).hexdigest()
    return entries, layers


def append(s: Context, held: Lease, repo: str, channel: str, state: str, action: str,
           digest: str, previous: str | None, tag: str, revocations: int) -> Entry:
    """Sign and append one document (under the channel's lease); read back."""
    entries, layers = read(s, repo, channel)
    parent = ""
    if layers:
        parent = "sha256:" + hashlib.sha256(s.registry.blob(repo, layers[-1].digest)).hexdigest()
    entry = Entry(repo, channel, len(entries) + 1, state, action, digest, previous, tag,
                  now_iso(), s.who, parent, revocations)
    data = cosign.envelope(load_private(s.config.signing_key), entry.to_json(), MOVE_TYPE)
    blob = put_blob(s.registry, repo, data)
    put_blob(s.registry, repo, EMPTY)
    body = canonical_json(manifest_doc(
        (EMPTY_TYPE, EMPTY), [*layers, Layer(MOVE_TYPE, blob.digest, blob.size, {})],
        artifact_type=HISTORY_TYPE, annotations={"org.opencontainers.image.created": entry.at}))
    held.check()
    put = s.registry.put_manifest(repo, _tag(channel), body, OCI_MANIFEST)
    read_back(s.registry, repo, _tag(channel), put)
    seen.raise_to(s, f"{repo}:{channel}", entry.sequence)
    return entry


def confirmed(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if e.state == "confirmed"]


def check(s: Context, repo: str, channel: str, digest: str) -> Entry:
    """The channel tag names `digest`: accept it only where the signed chain puts it."""
    where = f"{s.registry.host}/{repo}:{channel}"
    entries, _ = read(s, repo, channel)
    if not entries:
        raise Tampered(f"{where} has no signed history: it was not moved by kiln (or its "
                       f"history {_tag(channel)} was deleted); refused")
    last = entries[-1]
    known = seen.high(s, f"{repo}:{channel}")
    if last.sequence < known:
        raise RolledBack(f"{where}: its signed history ends at move {last.sequence}, but move "
                         f"{known} was seen here: an older history was put back; refused")
    done = confirmed(entries)
    allowed = {last.digest}
    if last.state == "pending" and done:
        allowed.add(done[-1].digest)  # a move interrupted before its tag was put
    if digest not in allowed:
        raise RolledBack(f"{where} names {digest[:19]}, but its latest signed move "
                         f"({last.sequence}, {last.action} at {last.at}) puts it at "
                         f"{last.digest[:19]}: moved outside kiln; refused")
    listed = revocations.read(s, repo).version
    if listed < last.revocations:
        raise RevocationsMissing(f"{where} was moved when the revocation list was at version "
                                 f"{last.revocations}; the registry serves version {listed}: an "
                                 "older or deleted list; refused (fail closed)")
    seen.raise_to(s, f"{repo}:{channel}", last.sequence)
    return last
