"""build_disk: the vm target as named steps, from the image's own built filesystem.

    build (container image, cached by fingerprint) -> export (docker export of that image)
    -> rootfs (unpack, fix what export leaves) -> assemble (GPT, ext4, grub) -> convert (qcow2)

A disk lives in <state>/vm/<image>/<fingerprint[:16]>/ as disk.raw, disk.qcow2, disk.json
(what it was made from, how, its checksums) and files.json (every file of its root filesystem:
kiln.vm.files). A disk whose recorded image ID and recipe match is
not made again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from kiln.context import Context
from kiln.errors import KilnError
from kiln.fingerprint import digest_json, file_sha256
from kiln.pipeline import build_image
from kiln.records import state_dir
from kiln.run import run
from kiln.ui import UI
from kiln.vm import disk, files, rootfs
from kiln.vm import formats as vm_formats
from kiln.vm.entries import mutable_paths
from kiln.vm.spec import DISK_VERSION, DiskSpec, disk_spec, kernel_cmdline

MANIFEST = "disk.json"
TOOLS = (("mke2fs", "-V"), ("sfdisk", "--version"), ("grub-mkimage", "--version"),
         ("mkfs.fat", "--help"), ("qemu-img", "--version"))


@dataclass(frozen=True)
class DiskResult:
    image: str
    folder: Path
    manifest: dict[str, Any]
    action: Literal["built", "up to date"]
    seconds: dict[str, float] = field(default_factory=dict)  # per step
    formats: dict[str, Any] = field(default_factory=dict)  # formats.json: vmdk, vhd

    @property
    def raw(self) -> Path:
        return self.folder / "disk.raw"

    @property
    def qcow2(self) -> Path:
        return self.folder / "disk.qcow2"

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "target": "vm", "action": self.action,
                "folder": str(self.folder), "raw": str(self.raw), "qcow2": str(self.qcow2),
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
                "formats": {k: str(self.folder / v["file"]) for k, v in self.formats.items()
                            if isinstance(v, dict)},
                **{k: self.manifest[k] for k in ("sha256", "size", "boot", "kernel",
                                                  "image_id", "fingerprint")}}


def disk_folder(project_root: Path, image: str, fingerprint: str) -> Path:
    return state_dir(project_root) / "vm" / image / fingerprint[:16]


def tool_versions() -> dict[str, str]:
    """The tools' versions are inputs too: a new mke2fs may lay out the same files differently."""
    out = {}
    for tool, flag in TOOLS:
        if not shutil.which(tool):
            raise KilnError(f"{tool}: not found; making VM disks needs qemu-utils, e2fsprogs, "
                            "fdisk, dosfstools, mtools, grub-pc-bin and grub-efi-amd64-bin "
                            "(scripts/setup installs them)")
        text = run([tool, flag]).strip().splitlines()
        out[tool] = next((line for line in text if any(c.isdigit() for c in line)), "")
    return out


def recipe(spec: DiskSpec, image_id: str) -> str:
    return digest_json({"disk": DISK_VERSION, "spec": spec, "image_id": image_id,
                        "tools": tool_versions()})


def load_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((folder / MANIFEST).read_text()))
    except (FileNotFoundError, ValueError):
        return None


def built_disk(project_root: Path, image: str, fingerprint: str) -> DiskResult | None:
    folder = disk_folder(project_root, image, fingerprint)
    manifest = load_manifest(folder)
    if manifest is None or not (folder / "disk.raw").exists():
        return None
    return DiskResult(image, folder, manifest, "up to date")


def build_disk(ctx: Context, name: str) -> DiskResult:
    """The image's container first (cached), then its disk unless an identical one exists."""
    started = time.monotonic()
    image = build_image(ctx, name)
    seconds = {"build": time.monotonic() - started}
    prepared = ctx.prepared(name)
    spec = disk_spec(prepared.plan, image.fingerprint)
    folder = disk_folder(ctx.project.root, name, image.fingerprint)
    wanted = recipe(spec, image.image_id)
    existing = load_manifest(folder)
    if (not ctx.options.force and existing and existing.get("recipe") == wanted
            and all((folder / f).exists() for f in ("disk.raw", "disk.qcow2", files.FILES))):
        ctx.ui.info(f"[bold]{name}[/]: disk up to date ({folder})")
        return DiskResult(name, folder, existing, "up to date", seconds)
    tmp_root = state_dir(ctx.project.root) / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with ctx.ui.task(f"disk {name} ({'+'.join(spec.boot)}, {spec.size >> 20} MiB) "
                     f"from {image.ref}"), \
            tempfile.TemporaryDirectory(prefix=f"kiln-disk-{name}-", dir=tmp_root) as tmp:
        work = Path(tmp)
        tarball, tree, staged = work / "fs.tar", work / "root", work / "out"
        staged.mkdir()

        def step(label: str, t0: float) -> float:
            now = time.monotonic()
            seconds[label] = now - t0
            ctx.ui.step(f"{label} {seconds[label]:.1f}s")
            return now

        t = time.monotonic()
        with tarball.open("wb") as f:
            exported = ctx.engine.export_filesystem(image.image_id, f)
        t = step("export", t)
        rootfs.extract(tarball, tree)
        tarball.unlink()
        rootfs.fix_exported(tree, spec.hostname)
        t = step("rootfs", t)
        kernel = disk.assemble(tree, spec, staged / "disk.raw", work, prepared.plan.image.path)
        t = step("assemble", t)
        # the tree the root partition was just made from, fstab and grub.cfg included
        files.write(staged, files.of_tree(tree, image.image_id, mutable_paths(prepared.plan),
                                          spec.filesystem))
        rootfs.remove(tree)
        t = step("files", t)
        disk.to_qcow2(staged / "disk.raw", staged / "disk.qcow2", compress=spec.compress)
        t = step("qcow2", t)
        manifest: dict[str, Any] = {
            "image": name, "version": prepared.plan.image.version,
            "fingerprint": image.fingerprint, "image_id": image.image_id, "ref": image.ref,
            "recipe": wanted, "disk_version": DISK_VERSION, "boot": list(spec.boot),
            "filesystem": spec.filesystem, "size": spec.size, "kernel": kernel.version,
            "cmdline": kernel_cmdline(spec), "exported_bytes": exported,
            "partitions": [{"name": p.name, "type": p.type, "uuid": p.uuid, "start": p.start,
                            "size": p.size} for p in spec.partitions],
            "root_fs_uuid": spec.ids.root_fs,
            "sha256": {"raw": file_sha256(staged / "disk.raw"),
                       "qcow2": file_sha256(staged / "disk.qcow2")},
            "bytes": {"raw": spec.size, "raw_allocated": _allocated(staged / "disk.raw"),
                      "qcow2": (staged / "disk.qcow2").stat().st_size},
            "qcow2_compressed": spec.compress,
        }
        step("checksum", t)
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, folder)
    ctx.ui.info(f"[bold green]disk[/] {name}: {folder / 'disk.qcow2'} "
                f"({manifest['bytes']['qcow2'] >> 20} MiB qcow2, raw sha256 "
                f"{manifest['sha256']['raw'][:16]}) in {sum(seconds.values()):.1f}s")
    return DiskResult(name, folder, manifest, "built", seconds)


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512



def build_disks(ctx: Context, images: list[str], target: str | None, *,
                explicit: bool, formats: str | None = None) -> list[DiskResult]:
    """The disks `invoke build` owes: for every image with the vm target, unless --target
    container; with --target vm, an image named on the command line must have that target.
    `formats` (vmdk,vhd) are made beside raw and qcow2 (kiln.vm.formats)."""
    if target not in (None, "container", "vm"):
        raise KilnError(f"--target {target}: unknown target (use container or vm)")
    wanted_formats = vm_formats.parse(formats)
    if target == "container":
        if wanted_formats:
            raise KilnError(f"--format {formats}: disk formats are for --target vm")
        return []
    wanted = []
    for name in images:
        image = ctx.project.image(name)
        if "vm" in image.targets:
            wanted.append(name)
        elif target == "vm" and explicit:
            raise KilnError(f"{image.path}: '{name}' has no vm target (add vm to its targets "
                            "and the vm layer to its layers; images/base-vm.yaml is the base "
                            "image with them)")
    results = []
    for name in wanted:
        result = build_disk(ctx, name)
        if wanted_formats:
            t = time.monotonic()
            with ctx.ui.task(f"disk {name}: {', '.join(wanted_formats)}"):
                made = vm_formats.make(result.folder, result.manifest, wanted_formats)
            seconds = {**result.seconds, "formats": time.monotonic() - t}
            result = replace(result, formats=made, seconds=seconds)
        results.append(result)
    return results


def disk_table(ui: UI, disks: list[DiskResult]) -> None:
    ui.table("kiln build --target vm", ["image", "action", "boot", "kernel", "disks", "seconds"], [
        (d.image, d.action, "+".join(d.manifest["boot"]), d.manifest["kernel"],
         ", ".join([str(d.qcow2), *(str(d.folder / v["file"]) for v in d.formats.values()
                                    if isinstance(v, dict))]),
         f"{sum(d.seconds.values()):.1f}") for d in disks])
