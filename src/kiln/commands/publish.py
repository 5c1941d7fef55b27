"""Tasks about the registry: keygen, registry, publish, promote, rollback, revoke, pull, catalog."""

from __future__ import annotations

from pathlib import Path

from invoke import task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task
from kiln.config import load_config
from kiln.embedded import embedded
from kiln.errors import KilnError
from kiln.load import Project
from kiln.publish import Session, check_target, open_session
from kiln.publish import catalog as list_catalog
from kiln.publish import promote as promote_image
from kiln.publish import publish as publish_image
from kiln.publish import pull as pull_image
from kiln.publish import revoke as revoke_digest
from kiln.publish import rollback as rollback_channel
from kiln.signing import keygen as make_keys
from kiln.ui import UI
from kiln.vm.publish import publish_disk, pull_disk

TASKS = ("keygen", "registry", "publish", "promote", "rollback", "revoke", "pull", "catalog")


def _session(verbose: bool = False) -> Session:
    return open_session(Project.find(), UI(verbose=verbose))


@task(help={"force": "replace an existing key (images signed with the old one stop verifying)"})
@kiln_task
def keygen(c: InvokeContext, force: bool = False) -> None:
    """Write the project's ed25519 signing key (private: not committed) and kiln.pub."""
    config = load_config(Project.find().root)
    key = make_keys(config.signing_key, config.public_key, force=force)
    UI().result(f"key {key}: private {config.signing_key} (keep it out of git), "
                f"public {config.public_key} (commit it)")


@task(positional=["action"], help={"action": "up, down or status"})
@kiln_task
def registry(c: InvokeContext, action: str) -> None:
    """Start, stop or show kiln's embedded registry (used when no registry is configured)."""
    root = Project.find().root
    config = load_config(root)
    local = embedded(root)
    if action == "up":
        address = local.start()
        UI().result(f"embedded registry up at http://{address}/v2/ (storage {local.data})")
    elif action == "down":
        stopped = local.stop()
        UI().result("embedded registry stopped" if stopped else "embedded registry not running")
    elif action == "status":
        UI().result(local.status().describe())
    else:
        raise KilnError(f"registry {action}: expected up, down or status")
    if not config.embedded:
        UI().warn(f"a registry is configured ({config.registry}, from {config.source}): "
                  "publish uses it, not the embedded one")


@task(positional=["image"], help={
    "image": "image name; it must be built and verified",
    "tag": "immutable tag to use instead of <version>-<yyyymmdd>-<id12> (vm: ...-vm)",
    "target": "container (default), or vm: the boot-verified disk, as an OCI artifact",
    "json": "print the result as JSON"})
@kiln_task
def publish(c: InvokeContext, image: str, tag: str | None = None, target: str = "container",
            json: bool = False) -> None:
    """Push a verified image (or VM disk) under an immutable tag, signed, with its provenance."""
    s = _session()
    push = publish_disk if check_target(target) == "vm" else publish_image
    results = [push(s, name, tag) for name in image.split(",")]
    if json:
        s.ui.json([r.to_json() for r in results])
        return
    for r in results:
        s.ui.result(f"{r.image}: {r.action} {s.registry.host}/{r.repository}:{r.tag} "
                    f"{r.digest} ({r.bytes_uploaded} bytes in {r.blobs_uploaded} blobs uploaded, "
                    f"{r.seconds:.1f}s)")


@task(positional=["image", "channel"], help={
    "image": "image[:tag|@digest]; a bare name means the version of the local build",
    "channel": "channel to move (stable, candidate, ...)",
    "target": "container (default) or vm: move the disk channel (tag <channel>-vm)"})
@kiln_task
def promote(c: InvokeContext, image: str, channel: str, target: str = "container") -> None:
    """Move a channel to a signed, verified, published version (recorded in its history)."""
    move = promote_image(_session(), image, channel, check_target(target))
    verb = "already at" if move.action == "unchanged" else "now at"
    UI().result(f"{move.repository}:{move.channel} {verb} {move.tag} ({move.digest})")


@task(positional=["image", "channel"], help={
    "target": "container (default) or vm: roll back the disk channel (tag <channel>-vm)",
    "deploy": "then roll the Swarm services that follow the channel to it (kiln deploy)"})
@kiln_task
def rollback(c: InvokeContext, image: str, channel: str, target: str = "container",
             deploy: bool = False) -> None:
    """Return a channel to its previous known-good digest (--deploy: and its services)."""
    if deploy:
        if check_target(target) != "container":
            raise KilnError("--deploy rolls Swarm services, which run containers: drop "
                            "--target vm")
        from kiln.fleet.deploy import rollback_and_deploy  # the fleet, only when asked
        s = _session()
        move, done = rollback_and_deploy(s, image, channel)
        for d in done:
            s.ui.result(f"  {d.service}: {d.action} at {d.digest[:19]} ({d.seconds:.1f}s)")
    else:
        move = rollback_channel(_session(), image, channel, check_target(target))
    UI().result(f"{move.repository}:{move.channel} rolled back from "
                f"{(move.previous or 'nothing')[:19]} to {move.tag} ({move.digest})")


@task(positional=["image"], help={"image": "image@sha256:<digest>", "reason": "why (recorded)"})
@kiln_task
def revoke(c: InvokeContext, image: str, reason: str = "") -> None:
    """Mark a digest bad: pull refuses it, channels cannot point at it (they roll back)."""
    s = _session()
    moves = revoke_digest(s, image, reason)
    s.ui.result(f"revoked {image}")
    for move in moves:
        s.ui.result(f"  {move.channel} rolled back to {move.tag} ({move.digest[:19]})")


@task(positional=["image"], help={
    "image": "image[:channel|:tag|@digest] (default: the first channel, stable)",
    "target": "container (default), or vm: download the signed, boot-verified qcow2",
    "output": "vm: folder for <image>.qcow2 and <image>.disk.json (default: .)",
    "json": "print the result as JSON"})
@kiln_task
def pull(c: InvokeContext, image: str, target: str = "container", output: str = ".",
         json: bool = False) -> None:
    """Pull by digest after checking its signature, provenance and verification record."""
    s = _session()
    if check_target(target) == "vm":
        disk = pull_disk(s, image, Path(output))
        if json:
            s.ui.json(disk.to_json())
            return
        s.ui.result(f"{disk.action} {disk.reference} -> {disk.qcow2} ({disk.bytes >> 20} MiB, "
                    f"{'+'.join(disk.boot)}, kernel {disk.kernel}), signed and boot-verified "
                    f"({disk.verified})")
        return
    result = pull_image(s, image)
    if json:
        s.ui.json(result.to_json())
        return
    s.ui.result(f"pulled {result.reference} ({result.image_id[:19]}), signed and verified "
                f"({result.verified}); tagged {', '.join(result.local) or 'nothing'}")


@task(help={"json": "print as JSON"})
@kiln_task
def catalog(c: InvokeContext, json: bool = False) -> None:
    """List published images: versions, channels, digests, verified/signed state, age."""
    s = _session()
    rows = list_catalog(s)
    if json:
        s.ui.json(rows)
        return
    s.ui.table(f"kiln catalog ({s.registry.host})",
               ["image", "target", "tag", "channels", "digest", "verified", "signed", "revoked",
                "age"],
               [(r["image"], r["target"], r["tag"], ", ".join(r["channels"]), r["digest"][7:19],
                 r["verified"], r["signed"], r["revoked"], r["age"]) for r in rows])
