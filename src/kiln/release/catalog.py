"""What the registry holds, and in what state: decided by the type of each refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kiln.context import Context
from kiln.errors import KilnError
from kiln.registry import Manifest
from kiln.release import cosign
from kiln.release.errors import (
    NotVerified,
    Revoked,
    SignatureRefused,
    Tampered,
    TrustError,
    Unsigned,
)
from kiln.release.names import TARGETS, channel_tag, is_version_tag, target_of
from kiln.release.trust import check_trust
from kiln.signing import load_public


def _signed(s: Context, repo: str, digest: str) -> str:
    try:
        cosign.verify(s.registry, repo, digest, load_public(s.config.public_key))
    except Unsigned:
        return "no"
    except SignatureRefused:
        return "bad"
    return "yes"


def state(s: Context, repo: str, digest: str) -> tuple[str, str, str, str, str]:
    """(signed, verified, revoked, age, problem) of one digest."""
    try:
        trust = check_trust(s, repo, digest)
    except Revoked as exc:
        return _signed(s, repo, digest), "no", "yes", "", str(exc)
    except Unsigned as exc:
        return "no", "no", "no", "", str(exc)
    except SignatureRefused as exc:
        return "bad", "no", "no", "", str(exc)
    except NotVerified as exc:
        return "yes", "no", "no", "", str(exc)
    except Tampered as exc:
        return "yes", "bad", "no", "", str(exc)
    except TrustError as exc:
        return "no", "no", "no", "", str(exc)
    except KilnError as exc:
        return "?", "?", "?", "", str(exc)
    return "yes", "yes", "no", _age(datetime.now(UTC), trust.signed_at), ""


def catalog(s: Context) -> list[dict[str, Any]]:
    prefix = s.config.namespace + "/"
    rows: list[dict[str, Any]] = []
    for repo in s.registry.repositories():
        if not repo.startswith(prefix):
            continue
        tags = s.registry.tags(repo)
        channel_tags = [channel_tag(c, t) for c in s.config.channels for t in TARGETS]
        digests: dict[str, Manifest] = {}
        for t in tags:
            if is_version_tag(t, s.config) or t in channel_tags:
                found = s.registry.resolve(repo, t)
                if found is not None:
                    digests[t] = found
        channels_at: dict[str, list[str]] = {}
        for channel in channel_tags:
            if channel in digests:
                channels_at.setdefault(digests[channel].digest, []).append(channel)
        for tag in tags:
            if not is_version_tag(tag, s.config) or tag not in digests:
                continue
            digest = digests[tag].digest
            signed, verified, revoked, age, why = state(s, repo, digest)
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
