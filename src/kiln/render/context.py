"""The build context: exactly the files the layers declare, with the modes they declare.

The context is a folder laid out here (what BuildKit builds from), not by the engine's
client: the declared modes and a fixed mtime, so the same definitions give the same files
from any checkout path at any time.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kiln import guard
from kiln.errors import DefinitionError, KilnError, Problem
from kiln.model import FileSpec, Plan, Where

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
    """Every file the layers copy, checked again here where it is read: the loader checked the
    definition, but the files may have changed since, and a Plan can be made by hand. Each
    entry's source is its real path (links resolved) inside the layer's files/ folder."""
    entries: dict[str, ContextEntry] = {}
    for layer in plan.layers:
        files_dir = root / layer.path / "files"
        for i, spec in enumerate(layer.files):
            where = layer.where(f"files[{i}].src")
            try:
                _add_source(entries, layer.name, files_dir, spec, where, f"files[{i}].src")
            except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop (Python 3.11)
                raise DefinitionError([Problem(
                    where.path, where.line, f"files[{i}].src: cannot read "
                    f"'files/{guard.shown(spec.src)}': {getattr(exc, 'strerror', None) or exc}",
                    "name a readable file inside the layer's files/ folder")]) from None
    return sorted(entries.values(), key=lambda e: e.arcname)


def _add_source(entries: dict[str, ContextEntry], layer: str, files_dir: Path, spec: FileSpec,
                where: Where, key: str) -> None:
    def refuse(message: str, hint: str) -> DefinitionError:
        return DefinitionError([Problem(where.path, where.line, message, hint)])

    if rule := guard.source_path(spec.src):
        raise refuse(f"{key}: {rule[0]}", rule[1])
    real_dir = files_dir.resolve()
    src = (files_dir / spec.src).resolve(strict=True)
    if not guard.inside(src, real_dir):
        raise refuse(f"{key}: 'files/{guard.shown(spec.src)}' leads outside the layer",
                     "copy the file into the layer instead of linking to it")
    base = source_arcname(layer, spec)
    _parents(entries, base)
    if not src.is_dir():
        entries[base] = ContextEntry(base, src, spec.mode)
        return
    entries[base] = ContextEntry(base, None, 0o755)
    for inner in sorted(src.rglob("*")):
        arc = f"{base}/{inner.relative_to(src).as_posix()}"
        real = inner.resolve(strict=True)
        if not guard.inside(real, real_dir):
            raise refuse(f"{key}: '{arc}' leads outside the layer",
                         "copy the file into the layer instead of linking to it")
        is_dir = real.is_dir()
        entries[arc] = ContextEntry(arc, None if is_dir else real, 0o755 if is_dir else spec.mode)


def open_source(path: Path) -> BinaryIO:
    """A context file for reading, never through a link and never anything but a regular file:
    a link swapped in after the checks, or a FIFO that would block the build, is refused."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise KilnError(f"{path}: cannot read a build context file: {exc.strerror} "
                        "(a link or a missing file where the definitions named a file)") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise KilnError(f"{path}: not a regular file (the build context takes files and folders)")
    return os.fdopen(fd, "rb")


def _parents(entries: dict[str, ContextEntry], arcname: str) -> None:
    parts = arcname.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        entries.setdefault(name, ContextEntry(name, None, 0o755))


def write_context_dir(target: Path, dockerfile: str, entries: Iterable[ContextEntry]) -> None:
    """Lay the context out as a folder: the Dockerfile, and the layers' files with their
    declared modes and the fixed mtime (COPY keeps both). What BuildKit builds from, and
    what `invoke render --context DIR` shows."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "Dockerfile").write_text(dockerfile)
    (target / "Dockerfile").chmod(0o644)
    written = [target / "Dockerfile"]
    for entry in entries:
        dest = target / entry.arcname
        if entry.source is None:
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open_source(entry.source) as f, dest.open("wb") as out:
                shutil.copyfileobj(f, out)
        dest.chmod(entry.mode)
        written.append(dest)
    # Stamped last, deepest first: writing into a folder moves its mtime to now.
    for dest in reversed(written):
        os.utime(dest, (EPOCH, EPOCH), follow_symlinks=False)
