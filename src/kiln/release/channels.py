"""Channels: promote, rollback, history, revoke. Each move happens under the channel's lease and
is recorded in the channel's signed chain (kiln.release.chain) around the tag's write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiln.context import Context
from kiln.errors import KilnError
from kiln.registry import DIGEST_RE, OCI_MANIFEST
from kiln.release import chain, container, revocations, vmdisk
from kiln.release.errors import PublishError, TrustError
from kiln.release.lease import Lease, lease
from kiln.release.names import (
    TARGETS,
    channel_tag,
    is_version_tag,
    parse_spec,
)
from kiln.release.oci import read_back
from kiln.release.session import checkpoint
from kiln.release.trust import check_kind, check_trust


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


def history(s: Context, repo: str, channel: str) -> list[dict[str, Any]]:
    """Every confirmed move of `channel`, oldest first, from its verified, signed chain."""
    entries, _ = chain.read(s, repo, channel)
    return [e.as_history() for e in chain.confirmed(entries)]


def _version_tag_of(s: Context, repo: str, digest: str) -> str | None:
    for tag in s.registry.tags(repo):
        if is_version_tag(tag, s.config):
            found = s.registry.resolve(repo, tag)
            if found is not None and found.digest == digest:
                return tag
    return None


def resolve_source(s: Context, name: str, ref: str | None,
                   target: str = "container") -> tuple[str, str]:
    """What `promote <spec>` names -> (digest, immutable tag that names it). A channel name
    means that channel of the target (`stable` -> `stable-vm` for a disk)."""
    repo = s.config.repository(name)
    if ref in s.config.channels:
        ref = channel_tag(ref, target)
    if ref is None:
        ref = vmdisk.local_tag(s, name) if target == "vm" else container.local_tag(s, name)
        if ref is None:
            raise KilnError(f"{name} is not built here; name the version to promote "
                            f"(`kiln promote {name}:<tag> <channel>`, see `kiln catalog`)")
    found = s.registry.resolve(repo, ref)
    if found is None:
        raise KilnError(f"{s.registry.host}/{repo}:{ref} does not exist (publish it first: "
                        f"`kiln publish {name}`; see `kiln catalog`)")
    tag = ref if is_version_tag(ref, s.config) and not DIGEST_RE.match(ref) else \
        _version_tag_of(s, repo, found.digest)
    if tag is None:
        raise PublishError(f"{repo}@{found.digest[:19]} has no immutable tag: channels only "
                           "point at published versions")
    return found.digest, tag


def promote(s: Context, spec: str, channel: str, target: str = "container") -> Move:
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


def _move(s: Context, held: Lease, repo: str, channel: str, action: str, digest: str,
          previous: str | None, tag: str) -> Move:
    """Pending (signed) -> the tag -> read back -> confirmed (signed). Interrupted anywhere,
    the channel is where the last confirmed move put it, or where this one was going: a
    reader accepts either, and rollback only ever considers confirmed moves."""
    image = s.registry.manifest(repo, digest)
    if image is None:
        raise PublishError(f"{repo}@{digest[:19]} vanished from the registry during the move; "
                           f"{channel} was left as it was")
    version = revocations.read(s, repo).version
    chain.append(s, held, repo, channel, "pending", action, digest, previous, tag, version)
    checkpoint(f"{action}-pending")
    held.check()
    s.registry.put_manifest(repo, channel, image.body, image.media_type or OCI_MANIFEST)
    read_back(s.registry, repo, channel, digest)
    chain.append(s, held, repo, channel, "confirmed", action, digest, previous, tag, version)
    return Move(repo, channel, action, digest, previous, tag)


def rollback(s: Context, name: str, channel: str, target: str = "container") -> Move:
    """Return `channel` to the most recent digest it held that was never rolled back from,
    is not revoked, and still checks out."""
    channel = channel_tag(s.config.check_channel(channel), target)
    repo = s.config.repository(name)
    with lease(s, repo, channel) as held:
        now = s.registry.resolve(repo, channel)
        current = now.digest if now else None
        entries = history(s, repo, channel)  # confirmed moves only
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


def revoke(s: Context, spec: str, reason: str) -> list[Move]:
    """Mark a digest bad in the registry; channels naming it roll back to their previous good."""
    name, ref = parse_spec(spec)
    if ref is None or not DIGEST_RE.match(ref):
        raise KilnError(f"{spec}: revoke takes <image>@sha256:<digest> (see `kiln catalog`)")
    repo = s.config.repository(name)
    image = s.registry.manifest(repo, ref)
    if image is None:
        raise KilnError(f"{s.registry.host}/{repo}@{ref}: no such manifest")
    revocations.add(s, repo, ref, reason)
    checkpoint("revoke-listed")
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
