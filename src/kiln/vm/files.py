"""The file manifest of a disk: every file of its root filesystem, read from the folder the disk
is made from (kiln.vm.rootfs's tree, with kiln's fstab and grub.cfg in it), just before it
becomes the ext4 image. So it is exactly what the disk's root partition holds, in the same
format as a container's manifest (kiln.fleet.manifest), and `kiln drift --ssh` judges a
machine made from the disk against it. The EFI system partition is another filesystem (drift
stays on the root one, `find -xdev`), so it is not in it.

It is written beside disk.json as files.json (the in-toto predicate, as published) and
attached to the published disk as a signed attestation (kiln.release.vmdisk).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from kiln.errors import KilnError
from kiln.vm.entries import CHUNK, DPKG_STATUS, Entry, FileManifest, dpkg_packages

FILES = "files.json"


# what mke2fs adds to the root of every ext4 it makes, beside the tree's files
MADE_BY_MKFS = {"ext4": (Entry("/lost+found", "dir", 0o700, 0, 0),)}


def of_tree(root: Path, image_id: str, mutable: tuple[str, ...],
            filesystem: str = "ext4") -> FileManifest:
    """Every path under `root` (as the disk's `filesystem` will hold it), not following links."""
    entries: dict[str, Entry] = {e.path: e for e in MADE_BY_MKFS.get(filesystem, ())}
    packages: dict[str, str] = {}
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + names):
            full = os.path.join(folder, name)
            path = "/" + os.path.relpath(full, root)
            st = os.lstat(full)
            mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            if stat.S_ISREG(st.st_mode):
                entries[path] = Entry(path, "file", mode, uid, gid, st.st_size, _sha256(full))
                if path == DPKG_STATUS:
                    packages = dpkg_packages(Path(full).read_text(errors="replace"))
            elif stat.S_ISLNK(st.st_mode):
                entries[path] = Entry(path, "symlink", mode, uid, gid, link=os.readlink(full))
            else:
                entries[path] = Entry(path, _kind(st.st_mode), mode, uid, gid)
    return FileManifest(image_id, entries, mutable, packages)


def _kind(mode: int) -> str:
    return ("dir" if stat.S_ISDIR(mode) else "char" if stat.S_ISCHR(mode) else
            "block" if stat.S_ISBLK(mode) else "fifo" if stat.S_ISFIFO(mode) else
            "socket" if stat.S_ISSOCK(mode) else "other")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write(folder: Path, manifest: FileManifest) -> None:
    (folder / FILES).write_text(json.dumps(manifest.predicate(), sort_keys=True) + "\n")


def load(folder: Path) -> FileManifest:
    """The disk's manifest, as built; KilnError when the disk predates it."""
    try:
        data = json.loads((folder / FILES).read_text())
    except FileNotFoundError:
        raise KilnError(f"{folder}: the disk has no {FILES} (built before kiln recorded its "
                        "files): build it again with `kiln build <image> --target vm "
                        "--force`") from None
    except ValueError as exc:
        raise KilnError(f"{folder / FILES}: unreadable ({exc}); build the disk again") from None
    return FileManifest.from_predicate(data)
