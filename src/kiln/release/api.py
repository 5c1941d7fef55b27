"""The release as commands and nightly use it: one call per task, by image name."""

from __future__ import annotations

from typing import Any

from kiln.context import Context
from kiln.release import chain, container, vmdisk
from kiln.release.catalog import catalog
from kiln.release.channels import Move, history, promote, revoke, rollback
from kiln.release.container import PullResult, local_tag, pull
from kiln.release.names import VM_SUFFIX, channel_tag, check_target, immutable_tag, parse_spec
from kiln.release.provenance import CYCLONEDX
from kiln.release.publish import PublishResult
from kiln.release.publish import publish as publish_artifact
from kiln.release.session import open_session
from kiln.release.trust import check_kind, check_trust, published_digest
from kiln.release.vmdisk import DiskPull, pull_disk

__all__ = ["DiskPull", "Move", "PublishResult", "PullResult", "catalog",
           "check_target", "history", "immutable_tag", "local_tag", "open_session", "promote",
           "publish", "pull", "pull_disk", "revoke", "rollback", "sbom"]


def publish(s: Context, name: str, tag: str | None = None,
            target: str = "container") -> PublishResult:
    """Publish the local, verified build of `name` (its container, or its VM disk); then move
    the auto-promote channel, when one is set."""
    s.sweep()  # what a killed run left on this host
    artifact: container.ContainerImage | vmdisk.VmDisk = (
        vmdisk.VmDisk.local(s, name) if check_target(target) == "vm"
        else container.ContainerImage.local(s, name))
    done = publish_artifact(s, artifact, tag)
    if s.config.auto_promote:
        promote(s, f"{name}:{done.tag}", s.config.auto_promote, target)
    return done


def sbom(s: Context, spec: str, target: str = "container") -> dict[str, Any]:
    """The signed CycloneDX SBOM of a published image, after the whole trust check."""
    name, ref = parse_spec(spec)
    repo = s.config.repository(name)
    ref = ref or s.config.channels[0]
    if ref in s.config.channels and target == "vm":
        ref += VM_SUFFIX
    digest = published_digest(s, repo, ref)
    trust = check_kind(check_trust(s, repo, digest), check_target(target))
    if ref in {channel_tag(c, target) for c in s.config.channels}:
        chain.check(s, repo, ref, digest)
    return trust.attestations[CYCLONEDX]
