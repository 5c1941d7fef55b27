"""The nightly's VM disks: an image with the vm target gets a new disk when its container changed.

    night_disk(night, image, its outcome)   right after the image's own step (kiln.nightly)
      skip       its container image failed or was skipped tonight: no disk either
      unchanged  the disk channels already name a disk made from this very container image
                 (.kiln/nightly/<image>.vm.json says so without a request; without it, one GET
                 of each disk channel's manifest and of its disk.json)
      build      kiln.vm.build.build_disk, from the container image the night just built
      verify     kiln.vm.verify.verify_vm: a boot in every mode the disk declares, unless a
                 passing VM record already covers this disk (same container image, disk bytes,
                 suite and boot modes)
      release    kiln.release.api.publish(target="vm") (`<container tag>-vm`), then the disk
                 channels `candidate-vm` (and the auto-promote channel's) move to it

The same functions `kiln build --target vm`, `kiln verify --target vm` and `kiln publish
--target vm` use: there is no second way to make, boot or publish a disk. A failure at any step
(a boot that never reaches SSH, a failing check, a refused publish) fails the disk only: its
container image is released already, and the images built on it go on (they are built on the
container, not on the disk). The disk's channels move only after a passing boot and a publish.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Protocol

from kiln import records
from kiln.config import Config
from kiln.context import BuildResult, Context
from kiln.errors import KilnError
from kiln.records import read_json, state_dir, write_json
from kiln.release import api as publish
from kiln.release.errors import TrustError
from kiln.release.names import VM_SUFFIX, channel_tag, immutable_tag
from kiln.release.vmdisk import check_record
from kiln.report import DiskOutcome, ImageOutcome
from kiln.testsuite import collect
from kiln.vm.build import DiskResult, build_disk


class Night(Protocol):
    """What the disk step takes of the run's state (kiln.nightly.Night), without importing it:
    the nightly imports this module."""

    ctx: Context

    @property
    def config(self) -> Config: ...

    @property
    def root(self) -> Path: ...


def night_disk(night: Night, name: str, image: ImageOutcome,
               channels: tuple[str, ...]) -> DiskOutcome:
    """The disk of `name` after its image's step; `channels` are the container channels the
    night moves (their disk tags, `<channel>-vm`, are the disk's)."""
    started = time.monotonic()
    built = night.ctx.results.get(name)
    if image.status in ("failed", "skipped") or built is None:
        return DiskOutcome(name, "skipped", "its container image "
                           f"{'was skipped' if image.status == 'skipped' else 'failed'}")
    try:
        return release_disk(night, name, built, image, channels, started)
    except KilnError as exc:
        night.ctx.ui.warn(f"{name} (vm disk): {exc}")
        return DiskOutcome(name, "failed", _why(str(exc)), seconds=_since(started))
    except Exception as exc:  # a bug must not cost the other images their night either
        if os.environ.get("KILN_DEBUG"):
            raise
        night.ctx.ui.warn(f"{name} (vm disk): unexpected {type(exc).__name__}: {exc} "
                          "(KILN_DEBUG=1 shows the traceback)")
        return DiskOutcome(name, "failed", _why(f"unexpected {type(exc).__name__}: {exc}"),
                           seconds=_since(started))


def release_disk(night: Night, name: str, built: BuildResult, image: ImageOutcome,
                 channels: tuple[str, ...], started: float) -> DiskOutcome:
    """Build, boot-verify and publish the disk of `built`, and move the disk channels; unless
    they already name a disk of this container image."""
    tags = [channel_tag(c, "vm") for c in channels]
    journal_path = state_dir(night.root) / "nightly" / f"{name}.vm.json"
    where = night.config.registry or "(embedded)"
    journal = read_json(journal_path)
    if journal and journal.get("image_id") == built.image_id and \
            journal.get("registry") == where and journal.get("channels") == tags:
        return DiskOutcome(name, "unchanged", "container image unchanged; its disk was released "
                           "by an earlier night", str(journal.get("tag", "")),
                           str(journal.get("digest", "")), seconds=_since(started))
    s = night.ctx  # its registry is opened by the first request below
    repo = s.config.repository(name)
    at = {tag: disk_at(s, repo, tag) for tag in tags}
    if all(found and found[0] == built.image_id for found in at.values()):
        digest, tag = next((v[1], v[2]) for v in at.values() if v)
        write_json(journal_path, {"image_id": built.image_id, "tag": tag, "digest": digest,
                                   "registry": where, "channels": tags})
        return DiskOutcome(name, "unchanged", f"container image unchanged; {tags[0]} names its "
                           "disk", tag, digest, seconds=_since(started))
    disk = build_disk(night.ctx, name)  # the container is built: ctx.results has it
    verified = boot_verified(night, name, disk)
    done = publish.publish(s, name, target="vm")  # idempotent, as for the container
    moved = []
    for channel, tag in zip(channels, tags, strict=True):
        current = s.registry.resolve(repo, tag)
        if current is not None and current.digest == done.digest:
            if (at[tag] or ("", ""))[1] != done.digest:
                moved.append(tag)  # publish's auto-promote moved it just now
            continue
        if publish.promote(s, f"{name}:{done.tag}", channel, "vm").action != "unchanged":
            moved.append(tag)
    write_json(journal_path, {"image_id": built.image_id, "tag": done.tag,
                               "digest": done.digest, "registry": where, "channels": tags})
    why = ("its container image was rebuilt" if image.status == "rebuilt"
           else "no disk of this container image was released yet")
    return DiskOutcome(name, "rebuilt", f"{why}; {verified}", done.tag, done.digest,
                       tuple(moved), _since(started))


def boot_verified(night: Night, name: str, disk: DiskResult) -> str:
    """Boot and test the disk in every mode it declares (what publishing requires), unless a
    passing record covers it; raises VerifyError when it does not pass. Says what was done."""
    plan = night.ctx.prepared(name).plan
    current_suite = collect(night.root, plan, "vm").digest
    existing = records.load(night.root, str(disk.manifest["image_id"]), "vm")
    if existing is not None and existing.suite == current_suite:
        try:
            check_record(existing, disk.manifest, name)
            return f"boot-verified on {existing.started} (same disk and suite)"
        except TrustError:
            pass  # another disk, a failed boot or a missing mode: boot it now
    from kiln.vm.verify import verify_vm  # qemu's and SSH's libraries: loaded here

    result = verify_vm(night.ctx, name)
    boots = ", ".join(f"{b.mode} ({b.accel}, SSH after {b.ssh_seconds:.0f}s)"
                      for b in result.boots)
    return f"booted {boots}: {result.record.counts['passed']} checks passed"


def disk_at(s: Context, repo: str, tag: str) -> tuple[str, str, str] | None:
    """(container image ID, manifest digest, immutable tag) of the disk a channel tag names, or
    None. Two GETs: the manifest and its disk.json. This only decides whether work is needed:
    what is published or pulled is checked by the release package itself."""
    found = s.registry.manifest(repo, tag)
    config = (found.json.get("config") or {}) if found is not None else {}
    if found is None or not config.get("digest"):
        return None
    try:
        disk = json.loads(s.registry.blob(repo, str(config["digest"])))
    except (KilnError, ValueError):
        return None  # not a disk kiln can read: publish and promote say what is wrong
    notes = found.json.get("annotations") or {}
    image_id = str(disk.get("image_id", ""))
    tag = immutable_tag(str(disk.get("version", "")),  # the tag publish gave it, by default
                        str(notes.get("org.opencontainers.image.created", "")), image_id)
    return image_id, found.digest, tag + VM_SUFFIX


def _why(message: str) -> str:
    """The error's first line and, for a VM verification failure, its first detail (`boot
    bios: no SSH login within 900s (...)`, `FAILED test_...`): the report's one cell."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = "; ".join(lines[:2]) if lines and "failed verification as a VM" in lines[0] \
        else (lines[0] if lines else "")
    return text if len(text) <= 300 else text[:297] + "..."


def _since(started: float) -> float:
    return round(time.monotonic() - started, 2)
