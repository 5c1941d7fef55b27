"""Normalising a built image so that the same inputs give the same bytes, hence the same ID.

The engine's export is not stable: file mtimes are the build's clock, the config records when
each step ran, and some files only record the build itself (logs, caches, the day a password
was set). After a build kiln saves the image, rewrites the layers the image added and its
config, and loads the result under the same name:

* layer tars: entries sorted by name, mtimes clamped to SOURCE_DATE_EPOCH, owner names and
  access/change times dropped (numeric owners and xattrs kept), hard links pointing to the
  first name of their set, files that only record the build dropped, files that a later
  added layer deletes or replaces dropped (`shadowed`), and the `lastchange` day of
  /etc/shadow set to the epoch's day;
* config: `created` and every history entry's `created` set to the epoch; what only the
  classic builder records about its build container (`container`, `container_config`) and the
  engine's version dropped; diff_ids replaced by the rewritten layers' digests.

Everything streams through files: no layer is ever held in memory.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from kiln import RENDER_VERSION
from kiln.chunks import ChunkReader
from kiln.engine import Engine
from kiln.errors import KilnError
from kiln.render.context import EPOCH
from kiln.render.dockerfile import DEBS_AT

CHUNK = 1 << 20
# Files that only record the build: never part of what an image is.
DROP = (
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "var/log/apt", "var/log/apt/*",
    "var/log/dpkg.log", "var/log/alternatives.log", "var/log/bootstrap.log",
    "var/log/faillog", "var/log/lastlog", "var/log/btmp", "var/log/wtmp",
    "etc/machine-id", "var/lib/dbus/machine-id",
    DEBS_AT.lstrip("/"), DEBS_AT.lstrip("/") + "/*",  # the .debs' mount point
    "root/.cache", "root/.cache/*",
)
SHADOW = ("etc/shadow", "etc/shadow-")
FIRST_BOOT = b"uninitialized"


@dataclass(frozen=True)
class Normalized:
    image_id: str
    rewritten: int  # layers rewritten (the base's layers are kept as they are)
    dropped: tuple[str, ...]  # paths removed from the rewritten layers
    # Where the time went: "save" (the engine's `docker save` of the whole image, read as it
    # streams), "rewrite" (the added layers and the config), "load" (the new layers only).
    seconds: Mapping[str, float] = field(default_factory=dict)

    def timing(self) -> str:
        return ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())


def epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH") or EPOCH)


def normalize_image(engine: Engine, ref: str, *, keep_layers: int = 0,
                    drop: Iterable[str] = (), memo: Path | None = None) -> Normalized:
    """Rewrite `ref` in the engine; the first `keep_layers` (the base's) are left as they are.

    With `memo` (a folder), an image normalised before (BuildKit answered from its cache with
    the same raw image) is only tagged again: no save, no load.
    """
    when = epoch()
    patterns = (*DROP, *(p.lstrip("/") for p in drop))
    raw = engine.image_id(ref)
    key = hashlib.sha256(json.dumps([RENDER_VERSION, raw, keep_layers, patterns, when]
                                    ).encode()).hexdigest()
    if memo is not None and (memo / key).is_file():
        known = (memo / key).read_text().strip()
        if engine.image_id(known):
            engine.tag(known, ref)
            return Normalized(known, 0, ())
    done = _normalize(engine, ref, keep_layers, patterns, when)
    if memo is not None:
        memo.mkdir(parents=True, exist_ok=True)
        (memo / key).write_text(done.image_id + "\n")
    return done


def _normalize(engine: Engine, ref: str, keep_layers: int, patterns: tuple[str, ...],
               when: int) -> Normalized:
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name], clock = round(now - clock, 3), now

    with tempfile.TemporaryDirectory(prefix="kiln-normalize-") as tmp:
        work = Path(tmp)
        saved = work / "saved"
        _extract(engine.save(ref), saved)
        lap("save")
        manifest = json.loads((saved / "manifest.json").read_text())[0]
        config = json.loads((saved / manifest["Config"]).read_text())
        out = work / "out"
        out.mkdir()
        layers, diff_ids, dropped = [], [], []
        hidden = shadowed([saved / layer for layer in manifest["Layers"][keep_layers:]])
        for i, layer in enumerate(manifest["Layers"]):
            old_id = config["rootfs"]["diff_ids"][i]
            if i < keep_layers:
                # Already in the engine under its chain ID: `docker load` does not read it.
                layers.append(f"{old_id.split(':')[1]}/layer.tar")
                diff_ids.append(old_id)
                continue
            staging = out / f"layer-{i}.tar"
            digest, gone = rewrite_layer(saved / layer, staging, when, patterns,
                                         hidden[i - keep_layers])
            dropped += gone
            folder = out / digest
            folder.mkdir(exist_ok=True)
            staging.replace(folder / "layer.tar")
            layers.append(f"{digest}/layer.tar")
            diff_ids.append(f"sha256:{digest}")
        shutil.rmtree(saved)
        data = normalize_config(config, diff_ids, when)
        config_id = hashlib.sha256(data).hexdigest()
        (out / f"{config_id}.json").write_bytes(data)
        (out / "manifest.json").write_text(json.dumps(
            [{"Config": f"{config_id}.json", "RepoTags": [ref], "Layers": layers}]))
        bundle = work / "load.tar"
        _pack(out, bundle)
        shutil.rmtree(out)
        lap("rewrite")
        old = engine.image_id(ref)
        engine.load_image(bundle)
        lap("load")
    new = f"sha256:{config_id}"
    if engine.image_id(ref) != new:
        raise KilnError(f"{ref}: the normalised image did not load as {new[:19]}")
    if old and old != new:
        engine.remove_unused(old)
    return Normalized(new, len(manifest["Layers"]) - keep_layers, tuple(dropped), seconds)


def normalize_config(config: dict[str, Any], diff_ids: list[str], when: int) -> bytes:
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {k: v for k, v in config.items()
              if k not in ("container", "container_config", "docker_version")}
    config["created"] = stamp
    config["history"] = [{**h, "created": stamp} for h in config.get("history", [])]
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


class _Hashing:
    """A write-only file that hashes what goes through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.h = f, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.h.update(data)
        return self.f.write(data)


def _name(m: tarfile.TarInfo) -> str:
    return m.name.removeprefix("./").rstrip("/")


def _whiteout(name: str) -> bool:
    return name.rpartition("/")[2].startswith(".wh.")


def shadowed(layers: list[Path]) -> list[frozenset[str]]:
    """For each of an image's added layers (oldest first), the files in it that a later added
    layer deletes or replaces: nobody can ever see them in the image, yet they would ship in
    its layers. A package's maintainer script makes such files all the time (openssh-server's
    host keys, which a later step deletes; the kernel's initramfs, which a later step makes
    again reproducibly): they would carry secrets and the build's randomness into the image.

    Only files, links and devices are shadowed, never folders or whiteouts; nor a file that a
    later layer's hard link names."""
    exact: set[str] = set()  # names a later layer holds, or deletes
    subtrees: set[str] = set()  # folders a later layer deletes, or makes opaque
    linked: set[str] = set()  # hard link targets named by later layers
    out: list[frozenset[str]] = []
    for path in reversed(layers):
        with tarfile.open(path, "r:") as tar:
            members = [m for m in tar.getmembers() if _name(m) not in ("", ".")]
        out.append(frozenset(
            name for m in members if not m.isdir() and not _whiteout(name := _name(m))
            and name not in linked and (name in exact or _under(name, subtrees))))
        for m in members:
            name = _name(m)
            folder, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                subtrees.add(folder)
            elif base.startswith(".wh."):
                gone = f"{folder}/{base[4:]}" if folder else base[4:]
                exact.add(gone)
                subtrees.add(gone)
            elif not m.isdir():
                exact.add(name)
            if m.islnk():
                linked.add(m.linkname.removeprefix("./"))
    return out[::-1]


def _under(name: str, folders: set[str]) -> bool:
    parent = name.rpartition("/")[0]
    while parent:
        if parent in folders:
            return True
        parent = parent.rpartition("/")[0]
    return "" in folders


def rewrite_layer(source: Path, target: Path, when: int, drop: tuple[str, ...],
                  hidden: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """Write the normalised layer; return its sha256 and the paths dropped. `hidden`: files a
    later layer deletes or replaces (see `shadowed`), dropped too."""
    dropped: list[str] = []
    with tarfile.open(source, "r:") as src:
        members = [m for m in src.getmembers() if m.name not in ("", ".", "./")]
        keep = []
        for m in members:
            name = _name(m)
            # A whiteout (.wh.<name>) deletes a file of a lower layer: always kept.
            recorded = not _whiteout(name) and any(
                fnmatch.fnmatchcase(name, p) for p in drop) and not _first_boot_marker(
                src, m, name)
            if name in hidden or recorded:
                dropped.append(name)
            else:
                keep.append(m)
        keep.sort(key=lambda m: m.name.removeprefix("./").encode())
        canonical = _hardlink_heads(keep, members)
        with target.open("wb") as raw:
            out = _Hashing(raw)
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for m in keep:
                    _write_member(src, tar, m, canonical, when)
    return out.h.hexdigest(), dropped


def _first_boot_marker(src: tarfile.TarFile, m: tarfile.TarInfo, name: str) -> bool:
    """An empty or "uninitialized" /etc/machine-id records no build: it is systemd's
    documented first-boot marker (machine-id(5)), which VM images ship on purpose."""
    if name != "etc/machine-id" or not m.isreg() or m.size > len(FIRST_BOOT) + 1:
        return False
    data = src.extractfile(m)
    return data is not None and data.read().strip() in (b"", FIRST_BOOT)


def _hardlink_heads(members: list[tarfile.TarInfo], every: list[tarfile.TarInfo]
                    ) -> dict[str, tuple[str, tarfile.TarInfo]]:
    """name -> (the first name of its hard link set, the member holding the data). `every`:
    the layer's members before any was dropped (a set's data may be under a dropped name)."""
    data_of = {m.name: m for m in every if m.isreg()}
    kept = {m.name for m in members}
    sets: dict[str, list[str]] = {}
    for m in members:
        if m.islnk() and m.linkname in data_of:
            sets.setdefault(m.linkname, [m.linkname] if m.linkname in kept else []).append(
                m.name)
    heads: dict[str, tuple[str, tarfile.TarInfo]] = {}
    for target, names in sets.items():
        first = min(names, key=lambda n: n.removeprefix("./").encode())
        for name in names:
            heads[name] = (first, data_of[target])
    return heads


def _write_member(src: tarfile.TarFile, tar: tarfile.TarFile, m: tarfile.TarInfo,
                  heads: dict[str, tuple[str, tarfile.TarInfo]], when: int) -> None:
    info = tarfile.TarInfo(m.name.removeprefix("./"))
    info.type, info.mode, info.uid, info.gid = m.type, m.mode, m.uid, m.gid
    info.linkname, info.devmajor, info.devminor = m.linkname, m.devmajor, m.devminor
    info.mtime = min(int(m.mtime), when)
    info.uname = info.gname = ""
    info.pax_headers = {k: v for k, v in sorted(m.pax_headers.items())
                        if k.startswith("SCHILY.xattr.")}
    data_member: tarfile.TarInfo | None = m if m.isreg() else None
    if m.name in heads:
        first, data_member = heads[m.name]
        if m.name == first:
            info.type, info.linkname = tarfile.REGTYPE, ""
        else:
            info.type, info.linkname, data_member = tarfile.LNKTYPE, first, None
            info.linkname = first.removeprefix("./")
    if data_member is None:
        info.size = 0
        tar.addfile(info)
        return
    f = src.extractfile(data_member)
    assert f is not None
    if info.name in SHADOW:
        text = _shadow(f.read().decode(), when)
        data = text.encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        return
    info.size = data_member.size
    tar.addfile(info, f)


def _shadow(text: str, when: int) -> str:
    """Set each account's `lastchange` (days since 1970, the day useradd ran) to the epoch's."""
    day = str(when // 86400)
    lines = []
    for line in text.splitlines(keepends=True):
        fields = line.split(":")
        if len(fields) >= 3 and re.fullmatch(r"[0-9]+", fields[2]):
            fields[2] = day
        lines.append(":".join(fields))
    return "".join(lines)


def _extract(chunks: Iterator[bytes], target: Path) -> None:
    """Unpack `docker save` as it streams in, without a copy of the whole archive on disk."""
    with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as tar:
        tar.extractall(target, filter="data")


def _pack(folder: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
