"""A root filesystem folder -> a bootable GPT disk, from plain files: no loop device, no mount.

- `sfdisk` lays out GPT from a script (fixed label-id and partition UUIDs);
- `mkfs.ext4 -d` fills the root filesystem from the folder, at its offset inside the raw file;
  inode change and access times (which mkfs copies from the host) are then set with debugfs;
- grub's BIOS loader (`grub-mkimage -O i386-pc`) goes into the BIOS boot partition and its
  first sector into the protective MBR, patched the way grub-bios-setup patches them;
- grub's UEFI loader (`grub-mkimage -O x86_64-efi`) goes into a FAT32 ESP made by mkfs.fat and
  filled by mtools as \\EFI\\BOOT\\BOOTX64.EFI, the path firmware boots without NVRAM entries;
- both loaders find the root filesystem by UUID and read the same /boot/grub/grub.cfg.

Everything that would otherwise come from the clock or from chance is pinned (E2FSPROGS_FAKE_TIME,
SOURCE_DATE_EPOCH, TZ=UTC, --invariant, UUIDs and hash seed from the fingerprint), so the same
filesystem and recipe always give the same bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import KilnError
from kiln.render.context import EPOCH
from kiln.run import run
from kiln.vm import rootfs
from kiln.vm.spec import (
    SECTOR,
    DiskSpec,
    Partition,
    fstab,
    grub_config,
    grub_early_config,
    sfdisk_script,
)

GRUB_DIR = Path("/usr/lib/grub")
# Modules built into the loaders: everything grub.cfg needs, since /boot/grub holds no modules.
GRUB_MODULES = ("part_gpt", "ext2", "search", "search_fs_uuid", "normal", "linux", "configfile",
                "echo", "test", "serial", "terminal")
GRUB_BIOS_MODULES = ("biosdisk",)
GRUB_EFI_MODULES = ("fat", "efi_gop")

# Offsets in grub's boot.img (include/grub/i386/pc/boot.h) that grub-bios-setup patches.
BPB_START, BPB_END = 0x3, 0x5A
KERNEL_SECTOR = 0x5C
DRIVE_CHECK = 0x66
MBR_CODE_END = 0x1B8  # disk signature and partition table follow: sfdisk's, kept as they are
BLOCKLIST_SIZE = 12  # the first blocklist entry ends core.img's first sector

# Our own mke2fs.conf, so that the host's defaults cannot change the filesystem.
MKE2FS_CONF = """\
[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384
[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
"""

FREE_INODES_RE = re.compile(r"^\s*Free inodes: (.*)$", re.M)
INODE_COUNT_RE = re.compile(r"^Inode count:\s+(\d+)$", re.M)


@dataclass(frozen=True)
class Kernel:
    version: str
    image: str  # path in the root filesystem, without the leading '/'
    initrd: str


def pinned_env(work: Path) -> dict[str, str]:
    conf = work / "mke2fs.conf"
    conf.write_text(MKE2FS_CONF)
    return {"E2FSPROGS_FAKE_TIME": str(EPOCH), "SOURCE_DATE_EPOCH": str(EPOCH), "TZ": "UTC",
            "MKE2FS_CONFIG": str(conf), "MTOOLS_SKIP_CHECK": "1"}


def find_kernel(root: Path, image_path: str) -> Kernel:
    kernels = sorted((root / "boot").glob("vmlinuz-*"), key=lambda p: _version_key(p.name[8:]))
    if not kernels:
        raise KilnError(f"{image_path}: the image has no kernel in /boot "
                        "(add the vm layer, which installs one)")
    version = kernels[-1].name[len("vmlinuz-"):]
    initrd = root / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise KilnError(f"{image_path}: kernel {version} has no initramfs "
                        f"(/boot/initrd.img-{version}; is initramfs-tools installed?)")
    return Kernel(version, f"boot/vmlinuz-{version}", f"boot/initrd.img-{version}")


def _version_key(version: str) -> list[tuple[int, str]]:
    return [(int(p), "") if p.isdigit() else (0, p) for p in re.split(r"[.-]", version)]


def assemble(root: Path, spec: DiskSpec, raw: Path, work: Path, image_path: str) -> Kernel:
    """Make `raw` (a new file) a bootable disk holding the folder `root`."""
    env = pinned_env(work)
    kernel = find_kernel(root, image_path)
    rootfs.add_file(root, "etc/fstab", fstab(spec))
    rootfs.add_file(root, "boot/grub/grub.cfg", grub_config(spec, kernel.image, kernel.initrd))
    with raw.open("wb") as f:
        f.truncate(spec.size)
    partition(raw, spec, work, env)
    make_root_fs(root, raw, spec, env)
    early = work / "grub-early.cfg"
    early.write_text(grub_early_config(spec))
    if esp := spec.partition("esp"):
        make_esp(raw, esp, spec, work, early, env)
    if bios := spec.partition("bios"):
        install_bios_loader(raw, bios, work, early, env)
    return kernel


def partition(raw: Path, spec: DiskSpec, work: Path, env: dict[str, str]) -> None:
    script = work / "gpt.sfdisk"
    script.write_text(sfdisk_script(spec))
    # sfdisk reads its script from stdin only; run() gives children no stdin, so a shell does.
    run(["sh", "-c", 'exec sfdisk --quiet --no-reread --no-tell-kernel "$0" < "$1"', raw, script],
        env=env)


def make_root_fs(root: Path, raw: Path, spec: DiskSpec, env: dict[str, str]) -> None:
    part = spec.root
    run(["mkfs.ext4", "-q", "-F", "-L", "root", "-U", spec.ids.root_fs,
         "-E", f"hash_seed={spec.ids.hash_seed},root_owner=0:0,nodiscard,offset={part.start}",
         "-d", root, raw, f"{part.size // 1024}k"], env=env)
    fix_inode_times(raw, part, env)
    run(["e2fsck", "-fn", f"{raw}?offset={part.start}"], env=env)


def fix_inode_times(raw: Path, part: Partition, env: dict[str, str]) -> None:
    """mkfs.ext4 -d copies ctime and atime from the host's files; pin them to the epoch."""
    device = f"{raw}?offset={part.start}"
    used = used_inodes(run(["dumpe2fs", device], env=env))
    # Inodes 1-10 are reserved (2 is the root folder); mkfs made those with the fake time.
    commands = "".join(f"sif <{ino}> {field} @{EPOCH}\n"
                       for ino in sorted(used) if ino == 2 or ino > 10
                       for field in ("ctime", "atime"))
    script = raw.parent / "inode-times.debugfs"
    script.write_text(commands)
    try:
        out = run(["debugfs", "-w", "-f", script, device], env=env)
    finally:
        script.unlink(missing_ok=True)
    errors = [line for line in out.splitlines() if "sif" not in line and line.strip()
              and not line.startswith("debugfs ")]
    if errors:
        raise KilnError(f"debugfs could not pin inode times: {errors[0]}")


def used_inodes(dumpe2fs: str) -> set[int]:
    """The inodes in use, from dumpe2fs's per-group lists of free ones."""
    count_match = INODE_COUNT_RE.search(dumpe2fs)
    if not count_match:
        raise KilnError("dumpe2fs printed no inode count")
    used = set(range(1, int(count_match.group(1)) + 1))
    for line in FREE_INODES_RE.findall(dumpe2fs):
        for item in filter(None, (s.strip() for s in line.split(","))):
            first, _, last = item.partition("-")
            used.difference_update(range(int(first), int(last or first) + 1))
    return used


def grub_image(target: str, out: Path, early: Path, modules: tuple[str, ...],
               env: dict[str, str]) -> None:
    folder = GRUB_DIR / target
    if not (folder / "moddep.lst").is_file():
        package = "grub-pc-bin" if target == "i386-pc" else "grub-efi-amd64-bin"
        raise KilnError(f"{folder}: grub's {target} modules are missing "
                        f"(apt-get install {package})")
    run(["grub-mkimage", "-d", folder, "-O", target, "-o", out, "-p", "/boot/grub", "-c", early,
         *GRUB_MODULES, *modules], env=env)


def make_esp(raw: Path, esp: Partition, spec: DiskSpec, work: Path, early: Path,
             env: dict[str, str]) -> None:
    loader = work / "BOOTX64.EFI"
    grub_image("x86_64-efi", loader, early, GRUB_EFI_MODULES, env)
    # --invariant before -i, or it replaces our volume id with its constant; one sector per
    # cluster keeps even a small ESP above FAT32's minimum of 65525 clusters.
    run(["mkfs.fat", "-F", "32", "-s", "1", "-n", "ESP", "--invariant", "-i", spec.ids.esp_fs,
         "--offset", str(esp.start // SECTOR), raw, str(esp.size // 1024)], env=env)
    image = f"{raw}@@{esp.start}"
    run(["mmd", "-i", image, "::/EFI", "::/EFI/BOOT"], env=env)
    run(["mcopy", "-i", image, loader, "::/EFI/BOOT/BOOTX64.EFI"], env=env)


def install_bios_loader(raw: Path, bios: Partition, work: Path, early: Path,
                        env: dict[str, str]) -> None:
    core_path = work / "core.img"
    grub_image("i386-pc", core_path, early, GRUB_BIOS_MODULES, env)
    core = bytearray(core_path.read_bytes())
    if len(core) > bios.size:
        raise KilnError(f"grub's core.img ({len(core)} bytes) does not fit the BIOS boot "
                        f"partition ({bios.size} bytes)")
    boot = (GRUB_DIR / "i386-pc" / "boot.img").read_bytes()
    first_lba = bios.start // SECTOR
    # core.img's first sector loads the rest: point its blocklist at the sectors after it.
    struct.pack_into("<Q", core, SECTOR - BLOCKLIST_SIZE, first_lba + 1)
    with raw.open("r+b") as disk:
        mbr = bytearray(disk.read(SECTOR))
        code = bytearray(boot[:MBR_CODE_END])
        code[BPB_START:BPB_END] = mbr[BPB_START:BPB_END]
        struct.pack_into("<Q", code, KERNEL_SECTOR, first_lba)
        code[DRIVE_CHECK:DRIVE_CHECK + 2] = b"\x90\x90"  # trust the BIOS's boot drive: a disk
        mbr[:MBR_CODE_END] = code
        disk.seek(0)
        disk.write(mbr)
        disk.seek(bios.start)
        disk.write(core)


def to_qcow2(raw: Path, out: Path, *, compress: bool) -> None:
    """Convert in order (no -W), so the same raw disk gives the same qcow2 bytes."""
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", *(["-c"] if compress else []),
         raw, out])


def inject_ssh_key(raw: Path, spec: DiskSpec, public_key: str, work: Path) -> None:
    """Let root log in with `public_key`: for a throwaway copy only, never the built disk."""
    keyfile = work / "authorized_keys"
    keyfile.write_text(public_key.strip() + "\n")
    commands = work / "inject.debugfs"
    commands.write_text("\n".join([
        "mkdir /root/.ssh", "rm /root/.ssh/authorized_keys",
        f"write {keyfile} /root/.ssh/authorized_keys",
        "sif /root/.ssh mode 040700", "sif /root/.ssh uid 0", "sif /root/.ssh gid 0",
        "sif /root/.ssh/authorized_keys mode 0100600",
        "sif /root/.ssh/authorized_keys uid 0", "sif /root/.ssh/authorized_keys gid 0",
    ]) + "\n")
    device = f"{raw}?offset={spec.root.start}"
    run(["debugfs", "-w", "-f", commands, device])
    listing = run(["debugfs", "-R", "cat /root/.ssh/authorized_keys", device])
    if public_key.strip() not in listing:
        raise KilnError(f"could not put the test key into {raw.name}: {listing.strip()[-200:]}")


def image_identity(raw: Path, spec: DiskSpec) -> dict[str, object]:
    """What a machine made from the disk must not share with it: the disk's /etc/machine-id and
    the public halves of any SSH host keys baked into it (none, for a good image)."""
    device = f"{raw}?offset={spec.root.start}"
    machine_id = _debugfs(device, "cat /etc/machine-id").strip()
    names = [line.split("/")[5] for line in _debugfs(device, "ls -p /etc/ssh").splitlines()
             if line.count("/") >= 6]
    keys = []
    for name in sorted(n for n in names if n.startswith("ssh_host_") and n.endswith(".pub")):
        keys += _debugfs(device, f"cat /etc/ssh/{name}").split()[1:2]
    return {"image_machine_id": machine_id, "image_host_keys": keys}


def overlay(base: Path, base_format: str, out: Path, size: int) -> None:
    """A throwaway qcow2 whose backing file is the built disk (never written: the machine's
    writes land in the overlay), grown with `qemu-img resize` the way a cloud gives a bigger
    disk than the image's."""
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base.resolve(), "-F", base_format,
         out])
    run(["qemu-img", "resize", "-q", "-f", "qcow2", out, str(size)])


def _debugfs(device: str, request: str) -> str:
    """A read-only debugfs request's output, without the banner it prints first."""
    out = run(["debugfs", "-R", request, device])
    return "".join(line for line in out.splitlines(keepends=True)
                   if not line.startswith("debugfs "))
