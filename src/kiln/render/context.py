"""The build context: exactly the files the layers declare, with the modes they declare.

The context is a tar made here, not by the engine's client: sorted entries, owner 0:0 and a
fixed mtime, so the same definitions give the same bytes from any checkout path at any time.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kiln.model import FileSpec, Plan

# 1980-01-01: late enough for every archive format, and what the files' mtime becomes in images.
EPOCH = 315532800


@dataclass(frozen=True)
class ContextEntry:
    arcname: str  # path inside the build context
    source: Path | None  # None for a folder
    mode: int


def source_arcname(layer: str, spec: FileSpec) -> str:
    return f"files/{layer}/{spec.src.strip('/')}"


def context_entries(root: Path, plan: Plan) -> list[ContextEntry]:
    entries: dict[str, ContextEntry] = {}
    for layer in plan.layers:
        files_dir = root / layer.path / "files"
        for spec in layer.files:
            base = source_arcname(layer.name, spec)
            src = files_dir / spec.src
            _parents(entries, base)
            if src.is_dir():
                entries[base] = ContextEntry(base, None, 0o755)
                for inner in sorted(src.rglob("*")):
                    arc = f"{base}/{inner.relative_to(src).as_posix()}"
                    is_dir = inner.is_dir()
                    entries[arc] = ContextEntry(arc, None if is_dir else inner,
                                                0o755 if is_dir else spec.mode)
            else:
                entries[base] = ContextEntry(base, src, spec.mode)
    return sorted(entries.values(), key=lambda e: e.arcname)


def _parents(entries: dict[str, ContextEntry], arcname: str) -> None:
    parts = arcname.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        entries.setdefault(name, ContextEntry(name, None, 0o755))


def write_context_tar(out: BinaryIO, dockerfile: str, entries: Iterable[ContextEntry]) -> None:
    """Stream the context as an uncompressed tar into `out` (files are never held in memory)."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = dockerfile.encode()
        tar.addfile(_info("Dockerfile", tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
        for entry in entries:
            if entry.source is None:
                tar.addfile(_info(entry.arcname, tarfile.DIRTYPE, entry.mode, 0))
                continue
            with entry.source.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                tar.addfile(_info(entry.arcname, tarfile.REGTYPE, entry.mode, size), f)


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_context_dir(target: Path, dockerfile: str, entries: Iterable[ContextEntry]) -> None:
    """Lay the context out as a folder: the Dockerfile, and the layers' files with their
    declared modes and the fixed mtime (COPY keeps both). What BuildKit builds from, and
    what `invoke render --context DIR` shows."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "Dockerfile").write_text(dockerfile)
    for entry in entries:
        dest = target / entry.arcname
        if entry.source is None:
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry.source, dest)
        dest.chmod(entry.mode)
        os.utime(dest, (EPOCH, EPOCH), follow_symlinks=False)
