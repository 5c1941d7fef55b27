"""Tag names and image specs: pure functions, no I/O.

Under `<namespace>/<image>` the registry holds:

  <version>-<yyyymmdd>-<id12>  immutable: the image (OCI manifest)
  <...>-vm                     immutable: a VM disk artifact made from that image
  stable, candidate, ...       channels (containers); <channel>-vm for disks
  sha256-<hex>.sig             cosign signatures of manifest <hex> (every signer's, appended)
  sha256-<hex>.att             DSSE attestations of <hex>: provenance, SBOM, verification
  revocations                  the signed, versioned revocation list
  <channel>.history            the signed chain of a channel's moves
  <tag>.lease                  short-lived lease serializing writers of <tag>
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from kiln.config import Config
from kiln.errors import KilnError
from kiln.registry import DIGEST_RE
from kiln.release.errors import PublishError, TagMismatch

VM_SUFFIX = "-vm"  # VM disks' immutable tags and channel tags end with it; containers' never do
TARGETS = ("container", "vm")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SUFFIXES = (".sig", ".att", ".revoked", ".history", ".lease")
REVOCATIONS = "revocations"  # the tag of the signed revocation list


def immutable_tag(version: str, created: str, image_id: str) -> str:
    """<version>-<yyyymmdd>-<id12>: a pure function of the image (its date and ID), so
    republishing the same image names the same tag, and other content never does."""
    day = created[:10].replace("-", "")
    safe = re.sub(r"[^A-Za-z0-9_.]+", "-", version).strip("-.") or "0"
    return f"{safe}-{day}-{image_id.removeprefix('sha256:')[:12]}"


def sidecar(digest: str, kind: str) -> str:
    return f"sha256-{digest.removeprefix('sha256:')}.{kind}"


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise KilnError(f"--target {target}: use container or vm")
    return target


def channel_tag(channel: str, target: str = "container") -> str:
    """The tag a channel moves for a target: `stable` for containers, `stable-vm` for disks."""
    return channel + VM_SUFFIX if check_target(target) == "vm" else channel


def target_of(tag: str) -> str:
    return "vm" if tag.endswith(VM_SUFFIX) else "container"


def is_version_tag(tag: str, config: Config) -> bool:
    return tag not in config.channels and tag != REVOCATIONS and not tag.endswith(SUFFIXES) and \
        not tag.startswith("sha256-") and tag not in {c + VM_SUFFIX for c in config.channels}


def check_tag(tag: str, config: Config, target: str = "container") -> str:
    if not TAG_RE.match(tag):
        raise PublishError(f"{tag!r} is not a valid tag (letters, digits, _ . -; up to 128)")
    if not is_version_tag(tag, config):
        raise PublishError(f"{tag!r} is reserved (channels, <channel>-vm, sha256-*, *.sig, "
                           "*.att, revocations, *.history, *.lease are kiln's); choose another "
                           "immutable tag")
    if target_of(tag) != target:
        raise PublishError(f"{tag!r}: tags ending in {VM_SUFFIX} are for VM disks and only for "
                           "them; choose another immutable tag")
    return tag


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'base' | 'base:stable' | 'base@sha256:...' -> (image, ref or None)."""
    if "@" in spec:
        name, _, digest = spec.partition("@")
        if not DIGEST_RE.match(digest):
            raise KilnError(f"{spec}: expected <image>@sha256:<64 hex digits>")
        return name, digest
    name, _, ref = spec.partition(":")
    return name, ref or None


ID12_RE = re.compile(r"-([0-9a-f]{12})(?:-vm)?$")


def check_names(host: str, repo: str, ref: str, content_id: str) -> None:
    """A default immutable tag ends in the id12 of what it names: a tag repointed at other
    (even signed) content is refused."""
    found = ID12_RE.search(ref)
    if found and not DIGEST_RE.match(ref) and found.group(1) != content_id[7:19]:
        raise TagMismatch(f"{host}/{repo}:{ref} names content {content_id[:19]}, not the "
                          f"{found.group(1)} its name says: the tag was repointed (tampered)")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
