"""Every file of an image, from its normalised filesystem, as a signed in-toto statement.

The manifest is read from the tar stream of a created-never-started container (`docker
export`), so it is what a container of the image starts with: path, type, mode, owner, size,
sha256 of regular files, target of symlinks; hard links are recorded as the file they share
content with. Installed Debian packages are read from /var/lib/dpkg/status in the same pass.

Paths that may change at run time (`mutable` in layers, plus DEFAULT_MUTABLE) are recorded in
the manifest, so whoever judges an instance later needs nothing but the signed manifest.

The manifest travels as an in-toto Statement v1 (predicateType PREDICATE_TYPE) in a DSSE
envelope signed with the project's ed25519 key, beside the image's other attestations
(kiln.fleet.attest, kiln.release.cosign): open formats, checkable without kiln.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
from collections.abc import Iterable
from typing import IO

from kiln.engine import Engine
from kiln.errors import EngineError
from kiln.vm.entries import (
    CHUNK,
    DEFAULT_MUTABLE,
    DPKG_STATUS,
    Entry,
    FileManifest,
    dpkg_packages,
    is_mutable,
    mutable_paths,
)

PREDICATE_TYPE = "https://kiln.dev/file-manifest/v1"
# the types are kiln.vm.entries' (below the fleet, for the disk build); named here too
__all__ = ["CHUNK", "DEFAULT_MUTABLE", "DPKG_STATUS", "PREDICATE_TYPE", "Entry", "FileManifest",
           "dpkg_packages", "is_mutable", "mutable_paths", "of_image", "read_tar"]
_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
          tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "file"}


def read_tar(stream: IO[bytes]) -> tuple[dict[str, Entry], dict[str, str]]:
    """Entries and installed packages from a filesystem tar, read once, front to back."""
    entries: dict[str, Entry] = {}
    packages: dict[str, str] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = "/" + member.name.lstrip("./").rstrip("/")
            if path == "/":
                continue
            mode, uid, gid = member.mode & 0o7777, member.uid, member.gid
            if member.islnk():  # same content as its target, which came first in the stream
                target = entries.get("/" + member.linkname.lstrip("./"))
                if target is not None:
                    entries[path] = Entry(path, target.type, mode, uid, gid, target.size,
                                          target.sha256, target.link)
                continue
            kind = _TYPES.get(member.type, "other")
            if kind == "file":
                h = hashlib.sha256()
                src = tar.extractfile(member)
                data = b""
                while src is not None and (chunk := src.read(CHUNK)):
                    h.update(chunk)
                    if path == DPKG_STATUS:
                        data += chunk
                if path == DPKG_STATUS:
                    packages = dpkg_packages(data.decode(errors="replace"))
                entries[path] = Entry(path, kind, mode, uid, gid, member.size, h.hexdigest())
            else:
                entries[path] = Entry(path, kind, mode, uid, gid,
                                      link=member.linkname if kind == "symlink" else "")
    return entries, packages


def of_image(engine: Engine, image: str, mutable: Iterable[str] = DEFAULT_MUTABLE
             ) -> FileManifest:
    """The manifest of `image`, streamed from `docker export` (never whole in memory)."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def export() -> None:
        with os.fdopen(write_fd, "wb") as out:
            try:
                engine.export_filesystem(image, out)
            except (EngineError, OSError) as exc:  # OSError: the reader stopped early
                failure.append(exc)

    writer = threading.Thread(target=export, daemon=True)
    writer.start()
    try:
        with os.fdopen(read_fd, "rb") as source:
            try:
                entries, packages = read_tar(source)
            except tarfile.TarError as exc:
                failure.append(exc)
                entries, packages = {}, {}
            source.read()  # drain, so the exporting thread ends
    finally:
        writer.join()
    if failure:
        raise EngineError(f"cannot read the filesystem of {image[:19]}: {failure[0]}")
    image_id = engine.image_id(image) or image
    return FileManifest(image_id, entries, tuple(dict.fromkeys(mutable)), packages)
