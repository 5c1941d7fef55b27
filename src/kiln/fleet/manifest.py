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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from kiln.engine import Engine
from kiln.errors import EngineError, KilnError
from kiln.model import Plan

PREDICATE_TYPE = "https://kiln.dev/file-manifest/v1"
# What changes in any running system: scratch, logs, caches, runtime state, kernel filesystems.
DEFAULT_MUTABLE = ("/tmp", "/var/tmp", "/var/log", "/var/cache", "/run", "/proc", "/sys", "/dev")
DPKG_STATUS = "/var/lib/dpkg/status"
CHUNK = 1 << 20

_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
          tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "file"}


@dataclass(frozen=True)
class Entry:
    """One file as a container (or a disk) starts with it."""

    path: str
    type: str  # file, dir, symlink, char, block, fifo
    mode: int  # permission bits with setuid/setgid/sticky (0o7777)
    uid: int
    gid: int
    size: int = 0  # regular files only
    sha256: str = ""  # regular files only
    link: str = ""  # symlinks only

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "type": self.type, "mode": f"{self.mode:04o}",
                               "uid": self.uid, "gid": self.gid}
        if self.type == "file":
            out |= {"size": self.size, "sha256": self.sha256}
        if self.type == "symlink":
            out["link"] = self.link
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        return cls(str(data["path"]), str(data["type"]), int(str(data["mode"]), 8),
                   int(data["uid"]), int(data["gid"]), int(data.get("size", 0)),
                   str(data.get("sha256", "")), str(data.get("link", "")))

    def differences(self, other: Entry) -> list[str]:
        """What differs, as `field: expected -> found` (size is implied by the hash)."""
        out = []
        for name in ("type", "mode", "uid", "gid", "sha256", "link"):
            a, b = getattr(self, name), getattr(other, name)
            if name == "sha256" and (self.type != "file" or other.type != "file"):
                continue
            if a != b:
                shown = (f"{a:04o} -> {b:04o}" if name == "mode" else
                         f"{a[:12]} -> {b[:12]}" if name == "sha256" else f"{a} -> {b}")
                out.append(f"{name}: {shown}")
        return out


@dataclass(frozen=True)
class FileManifest:
    image_id: str
    entries: Mapping[str, Entry]
    mutable: tuple[str, ...] = DEFAULT_MUTABLE
    packages: Mapping[str, str] = field(default_factory=dict)  # name -> version, installed

    def predicate(self) -> dict[str, Any]:
        return {"imageId": self.image_id, "mutable": list(self.mutable),
                "packages": dict(sorted(self.packages.items())),
                "files": [self.entries[p].to_json() for p in sorted(self.entries)]}

    @classmethod
    def from_predicate(cls, data: Mapping[str, Any]) -> FileManifest:
        try:
            entries = {str(e["path"]): Entry.from_json(e) for e in data["files"]}
            return cls(str(data["imageId"]), entries, tuple(str(m) for m in data["mutable"]),
                       {str(k): str(v) for k, v in dict(data.get("packages") or {}).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise KilnError(f"the file manifest is malformed ({exc!r}); republish the "
                            "image") from None

    def is_mutable(self, path: str) -> bool:
        return is_mutable(path, self.mutable)


def is_mutable(path: str, mutable: Iterable[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mutable)


def mutable_paths(plan: Plan) -> tuple[str, ...]:
    """The defaults, then every layer's `mutable` (parents' first): union, in layer order."""
    out = list(DEFAULT_MUTABLE)
    for layer in plan.all_layers:
        out += [p.rstrip("/") or "/" for p in getattr(layer, "mutable", ())]
    return tuple(dict.fromkeys(out))


def dpkg_packages(status: str) -> dict[str, str]:
    """Installed packages (name[:arch] -> version) from a dpkg status file."""
    out: dict[str, str] = {}
    for stanza in status.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        if fields.get("package") and fields.get("status", "").endswith(" installed"):
            arch = fields.get("architecture", "")
            name = fields["package"] + (f":{arch}" if arch not in ("", "all", _ARCH) else "")
            out[name] = fields.get("version", "")
    return out


_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


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
