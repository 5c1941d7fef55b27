"""The file manifest's types: every file of a root filesystem (path, type, mode, owner, size,
sha256, link target), the packages dpkg says are installed, and the paths that may change at
run time. kiln.fleet.manifest reads a container image's from `docker export`; kiln.vm.files
lists a disk's from the folder it is made from. They live here, below both, so that making a
disk (this tier) can list its files without importing the fleet (a tier above).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kiln.errors import KilnError
from kiln.model import Plan

# What changes in any running system: scratch, logs, caches, runtime state, kernel filesystems.
DEFAULT_MUTABLE = ("/tmp", "/var/tmp", "/var/log", "/var/cache", "/run", "/proc", "/sys", "/dev")
DPKG_STATUS = "/var/lib/dpkg/status"
CHUNK = 1 << 20


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
