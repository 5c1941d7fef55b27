"""Tasks about the registry: keygen, registry, publish, promote, rollback, revoke, pull, catalog."""

from __future__ import annotations

from pathlib import Path

from invoke import task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task
from kiln.config import load_config
from kiln.context import Context
from kiln.errors import KilnError
from kiln.load import Project
from kiln.ui import UI

TASKS = ("keygen", "registry", "publish", "promote", "rollback", "revoke", "pull", "catalog",
         "sbom")


@task(help={"force": "replace an existing key (images signed with the old one stop verifying)",
            "json": "print the key and its files as JSON"})
@kiln_task
def keygen(c: InvokeContext, force: bool = False, json: bool = False) -> None:
    """Write the project's ed25519 signing key (private: not committed) and kiln.pub.

    Examples:
      kiln keygen
    """
    from kiln.release.keys import pin_key_id
    from kiln.signing import keygen as make_keys

    root = Project.find().root
    config = load_config(root)
    key = make_keys(config.signing_key, config.public_key, force=force)
    pinned = pin_key_id(root, key)
    if json:
        UI().json({"key": str(key), "private": str(config.signing_key),
                   "public": str(config.public_key), "pinned_in": str(pinned)})
        return
    UI().result(f"key {key}: private {config.signing_key} (keep it out of git), "
                f"public {config.public_key} and its pin in {pinned.name} (commit both)")


@task(positional=["action"], help={"action": "up, down or status",
                                   "json": "print the registry's state as JSON"})
@kiln_task
def registry(c: InvokeContext, action: str, json: bool = False) -> None:
    """Start, stop or show kiln's embedded registry (used when no registry is configured).

    Examples:
      kiln registry up
      kiln registry status --json
      kiln registry down
    """
    from kiln.embedded import embedded

    root = Project.find().root
    config = load_config(root)
    local = embedded(root)
    if action == "up":
        address = local.start()
        state = {"action": action, "running": True, "address": address,
                 "storage": str(local.data)}
        message = f"embedded registry up at http://{address}/v2/ (storage {local.data})"
    elif action == "down":
        stopped = local.stop()
        state = {"action": action, "running": False, "stopped": stopped}
        message = "embedded registry stopped" if stopped else "embedded registry not running"
    elif action == "status":
        status = local.status()
        state = {"action": action, "status": status.describe()}
        message = status.describe()
    else:
        raise KilnError(f"registry {action}: expected up, down or status")
    state["configured"] = None if config.embedded else config.registry
    if json:
        UI().json(state)
        return
    UI().result(message)
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
    """Push a verified image (or VM disk) under an immutable tag, signed, with its provenance.

    Examples:
      kiln publish nginx
      kiln publish base-vm --target vm
    """
    from kiln.release.api import check_target
    from kiln.release.api import publish as publish_image

    s = Context.for_command()
    results = [publish_image(s, name, tag, check_target(target)) for name in image.split(",")]
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
    "target": "container (default) or vm: move the disk channel (tag <channel>-vm)",
    "json": "print the channel's move as JSON"})
@kiln_task
def promote(c: InvokeContext, image: str, channel: str, target: str = "container",
            json: bool = False) -> None:
    """Move a channel to a signed, verified, published version (recorded in its history).

    Examples:
      kiln promote nginx stable
      kiln promote nginx:1.22-20261201-0123456789ab candidate
    """
    from kiln.release.api import check_target
    from kiln.release.api import promote as promote_image

    move = promote_image(Context.for_command(), image, channel, check_target(target))
    if json:
        UI().json(move.to_json())
        return
    verb = "already at" if move.action == "unchanged" else "now at"
    UI().result(f"{move.repository}:{move.channel} {verb} {move.tag} ({move.digest})")


@task(positional=["image", "channel"], help={
    "image": "image name",
    "channel": "channel to roll back (stable, candidate, ...)",
    "target": "container (default) or vm: roll back the disk channel (tag <channel>-vm)",
    "deploy": "then roll the Swarm services that follow the channel to it (kiln deploy)",
    "json": "print the channel's move (and, with --deploy, the services rolled) as JSON"})
@kiln_task
def rollback(c: InvokeContext, image: str, channel: str, target: str = "container",
             deploy: bool = False, json: bool = False) -> None:
    """Return a channel to its previous known-good digest (--deploy: and its services).

    Examples:
      kiln rollback nginx stable
      kiln rollback nginx stable --deploy
    """
    from kiln.release.api import check_target
    from kiln.release.api import rollback as rollback_channel

    if deploy:
        if check_target(target) != "container":
            raise KilnError("--deploy rolls Swarm services, which run containers: drop "
                            "--target vm")
        from kiln.fleet.deploy import rollback_and_deploy  # the fleet, only when asked
        s = Context.for_command()
        move, done = rollback_and_deploy(s, image, channel)
        if json:
            UI().json({**move.to_json(), "services": [d.to_json() for d in done]})
            return
        for d in done:
            s.ui.result(f"  {d.service}: {d.action} at {d.digest[:19]} ({d.seconds:.1f}s)")
    else:
        move = rollback_channel(Context.for_command(), image, channel, check_target(target))
        if json:
            UI().json(move.to_json())
            return
    UI().result(f"{move.repository}:{move.channel} rolled back from "
                f"{(move.previous or 'nothing')[:19]} to {move.tag} ({move.digest})")


@task(positional=["image"], help={"image": "image@sha256:<digest>", "reason": "why (recorded)",
                                  "json": "print the revocation and the channels moved as JSON"})
@kiln_task
def revoke(c: InvokeContext, image: str, reason: str = "", json: bool = False) -> None:
    """Mark a digest bad: pull refuses it, channels cannot point at it (they roll back).

    Examples:
      kiln revoke nginx@sha256:<digest> --reason 'CVE-2026-1234'
    """
    from kiln.release.api import revoke as revoke_digest

    s = Context.for_command()
    moves = revoke_digest(s, image, reason)
    if json:
        s.ui.json({"revoked": image, "reason": reason, "rolled_back": [m.to_json() for m in moves]})
        return
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
    """Pull by digest after checking its signature, provenance and verification record.

    Examples:
      kiln pull nginx
      kiln pull nginx:candidate --json
      kiln pull base-vm --target vm --output disks/
    """
    from kiln.release.api import check_target, pull_disk
    from kiln.release.api import pull as pull_image

    s = Context.for_command()
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
    """List published images: versions, channels, digests, verified/signed state, age.

    Examples:
      kiln catalog
      kiln catalog --json
    """
    from kiln.release.api import catalog as list_catalog

    s = Context.for_command()
    rows = list_catalog(s)
    if json:
        s.ui.json(rows)
        return
    s.ui.table(f"kiln catalog ({s.registry.host})",
               ["image", "target", "tag", "channels", "digest", "verified", "signed", "revoked",
                "age"],
               [(r["image"], r["target"], r["tag"], ", ".join(r["channels"]), r["digest"][7:19],
                 r["verified"], r["signed"], r["revoked"], r["age"]) for r in rows])


@task(positional=["image"], help={
    "image": "image[:channel|:tag|@digest] (default: the first channel, stable)",
    "target": "container (default) or vm",
    "json": "print the CycloneDX document itself"})
@kiln_task
def sbom(c: InvokeContext, image: str, target: str = "container", json: bool = False) -> None:
    """Show the signed CycloneDX SBOM of a published image (after checking its signature).

    Examples:
      kiln sbom nginx:stable
      kiln sbom nginx:stable --json > nginx.cdx.json
    """
    from kiln.release.api import check_target
    from kiln.release.api import sbom as image_sbom

    s = Context.for_command()
    bom = image_sbom(s, image, check_target(target))
    if json:
        s.ui.json(bom)
        return
    parts = bom.get("components") or []
    s.ui.table(f"{image}: {len(parts)} packages (CycloneDX {bom.get('specVersion')}, signed)",
               ["package", "version", "purl"],
               [(str(p.get("name")), str(p.get("version")), str(p.get("purl"))) for p in parts])
