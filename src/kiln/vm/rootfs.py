"""A container's exported filesystem -> a folder that can become a bootable root filesystem.

`docker export` leaves traces of the container it came from: /.dockerenv, empty /etc/hostname,
/etc/hosts and /etc/resolv.conf (the engine bind-mounts them), and /dev entries. They are fixed
here, and nothing else is touched: the disk holds the image's filesystem as built.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.errors import KilnError
from kiln.render.context import EPOCH
from kiln.vm.spec import hosts

SKIPPED = (".dockerenv",)
EMPTIED = ("dev", "proc", "sys", "run")  # the kernel and systemd mount these at boot
RESOLVED = ("usr/lib/systemd/systemd-resolved", "lib/systemd/systemd-resolved")
XATTR = "SCHILY.xattr."


def extract(tarball: Path, dest: Path) -> None:
    """Unpack as root with numeric owners, modes, times and file capabilities (xattrs)."""
    if os.geteuid() != 0:
        raise KilnError("making a VM disk needs root to keep the files' owners "
                        "(run as root, or in a container as root)")
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if _kept(m.name)]
        # Our own image, just built: links pointing anywhere are normal in a root filesystem.
        tar.extractall(dest, members=members, numeric_owner=True, filter="fully_trusted")
    for member in members:
        if member.issym():  # tarfile leaves a link's own time at "now"
            os.utime(dest / member.name, (member.mtime, member.mtime), follow_symlinks=False)
        for key, value in member.pax_headers.items():
            if key.startswith(XATTR):
                os.setxattr(dest / member.name, key[len(XATTR):],
                            value.encode("utf-8", "surrogateescape"), follow_symlinks=False)


def _kept(name: str) -> bool:
    name = name.removeprefix("./").rstrip("/")
    if name in SKIPPED:
        return False
    top, _, rest = name.partition("/")
    return not (top in EMPTIED and rest)


def fix_exported(root: Path, hostname: str) -> None:
    """Undo what `docker export` leaves behind.

    The engine's init layer of the exported container holds /.dockerenv, /etc/hostname,
    /etc/hosts, /etc/resolv.conf, /etc/mtab and /dev/console, with the container's creation
    time on them and on /, /etc and /dev, and on /proc and /sys when the image has none (a
    busybox one); /run is made here when missing. Those folders get the epoch instead, or no
    two exports would give the same disk.
    """
    for name in (*SKIPPED, "dev/console"):
        (root / name).unlink(missing_ok=True)
    for name in EMPTIED:
        (root / name).mkdir(mode=0o755, exist_ok=True)
    _write(root / "etc/hostname", f"{hostname}\n")
    _write(root / "etc/hosts", hosts(hostname))
    _link(root / "etc/mtab", "../proc/self/mounts")  # what systemd-tmpfiles makes it
    resolv = root / "etc/resolv.conf"
    if any((root / p).exists() for p in RESOLVED):
        _link(resolv, "../run/systemd/resolve/stub-resolv.conf")
    else:
        _write(resolv, "# Written by kiln: this image has no resolver service; "
                       "configure one in a layer.\n")
    for folder in (root, root / "etc", *(root / name for name in EMPTIED)):
        os.utime(folder, (EPOCH, EPOCH))


def _link(path: Path, target: str) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    os.lchown(path, 0, 0)
    os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)


def add_file(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    """A file kiln writes (fstab, grub.cfg), with the folders it needs, owned by root."""
    target = root / path.lstrip("/")
    add_folder(root, str(target.parent.relative_to(root)))
    with _keep_times(target.parent):
        _write(target, text, mode)


def add_folder(root: Path, path: str) -> None:
    """A folder (and its parents) kiln needs, like the ESP's mount point; owned by root."""
    target = root / path.lstrip("/")
    missing = [p for p in (*reversed(target.parents), target) if not p.exists()]
    if not missing:
        return
    with _keep_times(missing[0].parent):
        for folder in missing:
            folder.mkdir(mode=0o755)
            os.chown(folder, 0, 0)
    for folder in reversed(missing):
        os.utime(folder, (EPOCH, EPOCH))


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.unlink(missing_ok=True)
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(mode)
    os.utime(path, (EPOCH, EPOCH))


@contextmanager
def _keep_times(*folders: Path) -> Iterator[None]:
    times = {f: f.lstat() for f in folders if f.exists()}
    yield
    for folder, st in times.items():
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
