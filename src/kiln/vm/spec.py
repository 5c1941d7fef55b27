"""The disk recipe of an image with the vm target: pure, from the Plan and its fingerprint.

Disk settings are params of the `vm` layer (so they are in the image's fingerprint, and an image
overrides them like any param). Every identifier on the disk (GPT label and partition UUIDs, the
ext4 UUID and hash seed, the FAT volume id) is derived from the fingerprint: the same definitions
give the same disk, and two different images never share an identifier.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from kiln.errors import DefinitionError, Problem
from kiln.model import ParamValue, Plan

# Bumped whenever disk assembly changes the bytes it makes from the same filesystem and recipe.
DISK_VERSION = "2"
VM_LAYER = "vm"

MIB = 1 << 20
SECTOR = 512
BIOS_BOOT_SIZE = MIB  # grub's core.img; a few hundred KiB in practice
GPT_TAIL = MIB  # room for the backup GPT at the end, keeping the last partition aligned

BootMode = Literal["bios", "uefi"]
BOOT_CHOICES: dict[str, tuple[BootMode, ...]] = {
    "bios": ("bios",), "uefi": ("uefi",), "bios+uefi": ("bios", "uefi"),
}
FILESYSTEMS = ("ext4",)
SIZE_RE = re.compile(r"^([1-9][0-9]*)([MG])$")

# GPT partition types (UEFI spec; the root type is the x86-64 one of the Discoverable
# Partitions Specification, so systemd and tools recognise it).
TYPE_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
TYPE_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
TYPE_ROOT_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"


@dataclass(frozen=True)
class DiskIds:
    disk: str  # GPT label-id
    bios_part: str
    esp_part: str
    root_part: str
    root_fs: str  # ext4 UUID
    hash_seed: str  # ext4 directory hash seed
    esp_fs: str  # FAT volume id, 8 hex digits


@dataclass(frozen=True)
class Partition:
    name: str  # GPT partition name
    type: str
    uuid: str
    start: int  # bytes
    size: int  # bytes

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class DiskSpec:
    """What the disk must be, resolved from the image's params; hashed into the disk's identity."""

    image: str
    fingerprint: str
    size: int  # bytes
    filesystem: str
    boot: tuple[BootMode, ...]
    esp_size: int  # bytes, 0 without uefi
    hostname: str
    cmdline: str  # extra kernel arguments
    compress: bool  # qcow2 with compressed clusters
    ids: DiskIds

    @property
    def partitions(self) -> tuple[Partition, ...]:
        parts: list[Partition] = []
        at = MIB
        if "bios" in self.boot:
            parts.append(Partition("bios", TYPE_BIOS_BOOT, self.ids.bios_part, at,
                                   BIOS_BOOT_SIZE))
            at += BIOS_BOOT_SIZE
        if "uefi" in self.boot:
            parts.append(Partition("esp", TYPE_ESP, self.ids.esp_part, at, self.esp_size))
            at += self.esp_size
        parts.append(Partition("root", TYPE_ROOT_X86_64, self.ids.root_part, at,
                               self.size - GPT_TAIL - at))
        return tuple(parts)

    def partition(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)

    @property
    def root(self) -> Partition:
        root = self.partition("root")
        assert root is not None
        return root


def derived_uuid(fingerprint: str, purpose: str) -> str:
    """A version-4-shaped UUID that only this image's fingerprint can give for this purpose."""
    digest = hashlib.sha256(f"kiln-disk/{DISK_VERSION}/{purpose}/{fingerprint}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def disk_ids(fingerprint: str) -> DiskIds:
    fat = hashlib.sha256(f"kiln-disk/{DISK_VERSION}/esp-fs/{fingerprint}".encode()).hexdigest()
    return DiskIds(
        disk=derived_uuid(fingerprint, "disk"),
        bios_part=derived_uuid(fingerprint, "bios-part"),
        esp_part=derived_uuid(fingerprint, "esp-part"),
        root_part=derived_uuid(fingerprint, "root-part"),
        root_fs=derived_uuid(fingerprint, "root-fs"),
        hash_seed=derived_uuid(fingerprint, "hash-seed"),
        esp_fs=fat[:8],
    )


def has_vm_layer(plan: Plan) -> bool:
    return any(layer.name == VM_LAYER for layer in plan.all_layers)


def disk_spec(plan: Plan, fingerprint: str) -> DiskSpec:
    """The disk recipe, or a DefinitionError naming the image file and what to change."""
    image = plan.image
    problems: list[Problem] = []

    def problem(key: str, message: str, hint: str) -> None:
        where = image.where(key)
        problems.append(Problem(where.path, where.line, message, hint))

    if "vm" not in image.targets:
        problem("targets", f"image '{image.name}' has no vm target",
                "add vm to its targets (and the vm layer to its layers)")
    if not has_vm_layer(plan):
        problem("layers", f"image '{image.name}' has the vm target but not the '{VM_LAYER}' "
                "layer (kernel, systemd, network, sshd)", f"add {VM_LAYER} to its layers")
    if problems:
        raise DefinitionError(problems)
    params = dict(plan.params)

    def param(name: str) -> ParamValue:
        return params[name]

    size_text = str(param("vm_disk_size"))
    m = SIZE_RE.match(size_text)
    size = int(m.group(1)) * (MIB if m.group(2) == "M" else 1024 * MIB) if m else 0
    boot = BOOT_CHOICES.get(str(param("vm_boot")))
    filesystem = str(param("vm_filesystem"))
    esp_mib = param("vm_esp_size_mib")
    assert isinstance(esp_mib, int)
    esp_size = esp_mib * MIB if boot and "uefi" in boot else 0
    if not m:
        problem("params.vm_disk_size", f"vm_disk_size: '{size_text}' is not a size",
                "write a whole number of MiB or GiB, like 2G or 1536M")
    elif size < 256 * MIB:
        problem("params.vm_disk_size", f"vm_disk_size: {size_text} is too small for a bootable "
                "disk", "use at least 256M")
    if boot is None:
        problem("params.vm_boot", f"vm_boot: unknown boot mode '{param('vm_boot')}'",
                "use " + ", ".join(BOOT_CHOICES))
    if filesystem not in FILESYSTEMS:
        problem("params.vm_filesystem", f"vm_filesystem: '{filesystem}' is not supported",
                "use " + ", ".join(FILESYSTEMS))
    if boot and "uefi" in boot and not 40 <= esp_mib <= 1024:
        problem("params.vm_esp_size_mib", f"vm_esp_size_mib: {esp_mib} is out of range",
                "FAT32 needs at least 40 MiB; 64 is plenty for grub")
    if problems:
        raise DefinitionError(problems)
    assert boot is not None
    compress = param("vm_qcow2_compressed")
    return DiskSpec(image=image.name, fingerprint=fingerprint, size=size, filesystem=filesystem,
                    boot=boot, esp_size=esp_size, hostname=str(param("vm_hostname")) or image.name,
                    cmdline=str(param("vm_cmdline")), compress=bool(compress),
                    ids=disk_ids(fingerprint))


# rendered files ------------------------------------------------------------------------------
def sfdisk_script(spec: DiskSpec) -> str:
    lines = ["label: gpt", f"label-id: {spec.ids.disk.upper()}", "unit: sectors",
             "first-lba: 2048", f"last-lba: {(spec.size - GPT_TAIL) // SECTOR - 1}",
             "sector-size: 512", ""]
    for p in spec.partitions:
        lines.append(f"start={p.start // SECTOR}, size={p.size // SECTOR}, type={p.type}, "
                     f"uuid={p.uuid.upper()}, name=\"{p.name}\"")
    return "\n".join(lines) + "\n"


def fstab(spec: DiskSpec) -> str:
    # The ESP is not mounted: the image is replaced, never updated in place, so nothing on the
    # running machine ever writes to its loader.
    return ("# Written by kiln when it made the disk: the root filesystem by UUID.\n"
            f"UUID={spec.ids.root_fs}\t/\t{spec.filesystem}\tdefaults,errors=remount-ro\t0\t1\n")


def kernel_cmdline(spec: DiskSpec) -> str:
    # status_unit_format=name: the console names units ("Failed to start kiln-broken.service")
    # instead of descriptions an 80-column console cuts short.
    base = (f"root=UUID={spec.ids.root_fs} ro console=tty0 console=ttyS0,115200n8 "
            "systemd.status_unit_format=name")
    return f"{base} {spec.cmdline}".strip()


def grub_early_config(spec: DiskSpec) -> str:
    """Embedded in the loader: find the root filesystem by UUID, then read its grub.cfg."""
    return (f"search --no-floppy --fs-uuid --set=root {spec.ids.root_fs}\n"
            "set prefix=($root)/boot/grub\n")


def grub_config(spec: DiskSpec, kernel: str, initrd: str) -> str:
    return f"""\
# Written by kiln when it made the disk. The loader finds this file on the root filesystem
# (by its UUID), so BIOS and UEFI boot the very same entry.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
menuentry '{spec.image}' {{
    linux /{kernel} {kernel_cmdline(spec)}
    initrd /{initrd}
}}
"""


def hosts(hostname: str) -> str:
    return (f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
