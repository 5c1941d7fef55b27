"""The VM disk recipe, pure: ids from the fingerprint, layout, rendered files, inode parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kiln.compose import compose
from kiln.errors import DefinitionError
from kiln.load import Project
from kiln.render.context import EPOCH
from kiln.vm.disk import used_inodes
from kiln.vm.qemu import _printable
from kiln.vm.rootfs import fix_exported
from kiln.vm.spec import MIB, disk_ids, disk_spec, fstab, grub_config, sfdisk_script

REPO = Path(__file__).resolve().parents[2]
FP = "ab" * 32


def _plan(name: str = "base-vm"):
    return compose(Project(REPO), name)


def test_ids_come_from_the_fingerprint_and_differ_between_images():
    mine = disk_ids(FP)
    # Pinned: the same fingerprint gives these IDs in every process and every kiln of this
    # DISK_VERSION (a random or per-process value, or a changed recipe, fails here; a
    # deliberate change bumps DISK_VERSION and these values).
    assert (mine.disk, mine.root_fs, mine.esp_fs) == (
        "d79fd553-59a5-49fb-bd7f-f4a74a92cafb", "7df708ff-8679-4a86-a272-0d1ba8500ff9",
        "4f9f2be4")
    other = disk_ids("cd" * 32)
    assert {mine.disk, mine.root_fs, mine.hash_seed}.isdisjoint(
        {other.disk, other.root_fs, other.hash_seed})
    values = [mine.disk, mine.bios_part, mine.esp_part, mine.root_part, mine.root_fs,
              mine.hash_seed]
    assert len(set(values)) == len(values)


def test_default_layout_is_bios_boot_esp_root_aligned_to_a_mib():
    spec = disk_spec(_plan(), FP)
    assert spec.boot == ("bios", "uefi")
    assert [p.name for p in spec.partitions] == ["bios", "esp", "root"]
    assert all(p.start % MIB == 0 and p.size % MIB == 0 for p in spec.partitions)
    assert spec.partitions[-1].end == spec.size - MIB
    script = sfdisk_script(spec)
    assert f"label-id: {spec.ids.disk.upper()}" in script
    assert f"uuid={spec.ids.root_part.upper()}" in script


def test_fstab_and_grub_find_the_root_by_uuid():
    spec = disk_spec(_plan(), FP)
    assert fstab(spec).splitlines()[1].startswith(f"UUID={spec.ids.root_fs}\t/\text4")
    cfg = grub_config(spec, "boot/vmlinuz-6.1", "boot/initrd.img-6.1")
    assert f"linux /boot/vmlinuz-6.1 root=UUID={spec.ids.root_fs} ro" in cfg


def test_an_image_without_the_vm_target_is_refused_with_a_hint():
    with pytest.raises(DefinitionError, match=r"images/base.yaml:\d+: image 'base' has no vm"):
        disk_spec(_plan("base"), FP)


def test_used_inodes_from_dumpe2fs_free_lists():
    text = ("Inode count:              40\n"
            "Group 0:\n  Free inodes: 16-20, 25\n"
            "Group 1:\n  Free inodes: 21-24, 26-40\n")
    assert used_inodes(text) == set(range(1, 16))


def test_console_lines_lose_terminal_escapes():
    assert _printable("\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mssh\x1b[0m") == (
        "  OK  ] Started ssh")


@pytest.mark.skipif(os.geteuid() != 0, reason="fix_exported sets owners (root, as a build is)")
def test_an_export_without_proc_sys_or_run_gives_them_fixed_times(tmp_path):
    """A busybox image has no /proc, /sys or /run: docker's init layer (or fix_exported) makes
    them at export time, and a disk made later must still be the same bytes."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "dev").mkdir()
    (root / "proc").mkdir()  # as the engine's init layer left it: its creation time
    fix_exported(root, "small")
    for name in ("", "etc", "dev", "proc", "sys", "run"):
        assert (root / name).stat().st_mtime == EPOCH, name
