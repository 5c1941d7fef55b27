"""Parent images from the registry instead of built again: the nightly fan-out's runners.

A runner of level n builds an image whose parent a runner of level n-1 has just published. It
computes the parent's fingerprint from the definitions and locks (no build), finds the channel
whose manifest is annotated with that fingerprint, and takes it only after the checks `kiln
pull` makes (signature by the project key, the three signed attestations, a passing signed
verification record, not revoked, the channel's signed history) and one more: the fingerprint
in the signed verification record is the local one. The annotation only says where to look;
the signed record decides. Then the engine pulls it by digest, and the image ID it got must be
the signed one.

Not published (no channel names these definitions): None, and the pipeline builds the parent.
Published but refused (a bad signature, tampering, revoked, not verified): a TrustError, and
the image fails loudly: a runner never silently rebuilds what the registry says it published.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from kiln.context import Context, ParentSource, Prepared, PulledParent
from kiln.registry import Manifest
from kiln.release import chain
from kiln.release.container import pull_trusted
from kiln.release.errors import Tampered
from kiln.release.trust import Trust, check_kind, check_trust
from kiln.report import ParentOutcome

FINGERPRINT = "dev.kiln.fingerprint"  # the manifest annotation kiln publishes (container.push)


def source(s: Context, channels: Iterable[str]) -> ParentSource:
    """The pipeline's parent source (Context.parents): the registry is opened on the first
    parent looked up (Context.registry), so a run that needs none opens none."""
    looked_at = tuple(channels)

    def pull(prepared: Prepared) -> PulledParent | None:
        return fetch(s, prepared, looked_at)

    return pull


def outcomes(ctx: Context, name: str,
             parents: Mapping[str, str | None]) -> tuple[ParentOutcome, ...]:
    """How this run had each of `name`'s parents, nearest first: pulled, built or there."""
    out = []
    parent = parents.get(name)
    while parent is not None and parent in ctx.results:
        done, pulled = ctx.results[parent], ctx.pulled.get(parent)
        out.append(ParentOutcome(parent, done.action, round(done.seconds, 2),
                                 pulled.bytes if pulled else 0, pulled.digest if pulled else ""))
        parent = parents.get(parent)
    return tuple(out)


def fetch(s: Context, prepared: Prepared, channels: Iterable[str]) -> PulledParent | None:
    """The published image of `prepared`'s definitions, pulled and checked, or None."""
    name, fp = prepared.plan.image.name, prepared.fingerprint
    repo = s.config.repository(name)
    started = time.monotonic()
    found = published(s, repo, fp, channels)
    if found is None:
        return None
    channel, manifest = found
    trust = check_kind(check_trust(s, repo, manifest.digest), "container")
    check_fingerprint(trust, fp, f"{s.registry.host}/{repo}:{channel}")
    chain.check(s, repo, channel, manifest.digest)
    image_id = pull_trusted(s, repo, trust)
    # Named as `kiln pull <image>:<channel>` names it: removing this tag also drops the
    # engine's digest reference, so the pulled image is never left unnamed.
    s.engine.tag(image_id, f"{s.registry.host}/{repo}:{channel}")
    return PulledParent(name, f"{s.registry.host}/{repo}@{manifest.digest}", manifest.digest,
                        image_id, size(manifest), time.monotonic() - started, channel)


def published(s: Context, repo: str, fp: str,
              channels: Iterable[str]) -> tuple[str, Manifest] | None:
    """The first channel whose manifest is annotated with fingerprint `fp` (one GET each)."""
    for channel in dict.fromkeys(channels):
        manifest = s.registry.manifest(repo, channel)
        if manifest is not None and annotated(manifest) == fp:
            return channel, manifest
    return None


def annotated(manifest: Manifest) -> str | None:
    try:
        value = (manifest.json.get("annotations") or {}).get(FINGERPRINT)
    except (ValueError, AttributeError):
        return None  # not a kiln image manifest: not this parent
    return str(value) if value else None


def check_fingerprint(trust: Trust, fp: str, where: str) -> None:
    """The signed verification record is of these very definitions."""
    signed = trust.provenance.get("fingerprint")
    if signed != fp:
        raise Tampered(f"{where} is annotated with fingerprint {fp[:16]}, but its signed "
                       f"verification record says {str(signed)[:16]}: the two disagree, so it "
                       "is not known to be these definitions; refused (nothing was pulled)")


def size(manifest: Manifest) -> int:
    """What the registry serves for the image: its layers and config, compressed."""
    doc = manifest.json
    blobs = [doc.get("config") or {}, *(doc.get("layers") or [])]
    return sum(int(b.get("size") or 0) for b in blobs if isinstance(b, dict))
