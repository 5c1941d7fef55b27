"""Which files differ between two images: what `invoke diff-builds` shows.

Each image is read from `docker save` as it streams: its config, and for every file of every
layer the metadata that goes into the layer's digest (type, mode, owner, mtime, link target,
xattrs) and the sha256 of its content. Nothing but those summaries is held in memory.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from kiln.chunks import ChunkReader
from kiln.engine import Engine

CHUNK = 1 << 20
Entry = tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    config: dict[str, Any]
    layers: tuple[dict[str, Entry], ...]  # in order, by path


def summarize(engine: Engine, ref: str) -> Summary:
    by_dir: dict[str, dict[str, Entry]] = {}
    configs: dict[str, dict[str, Any]] = {}
    manifest: list[dict[str, Any]] = []
    with tarfile.open(fileobj=ChunkReader(engine.save(ref)), mode="r|") as outer:
        for member in outer:
            f = outer.extractfile(member) if member.isfile() else None
            if f is None:
                continue
            if member.name.endswith("/layer.tar"):
                by_dir[member.name] = _layer(f)
            elif member.name == "manifest.json":
                manifest = json.loads(f.read())
            elif member.name.endswith(".json"):
                configs[member.name] = json.loads(f.read())
    entry = manifest[0]
    return Summary(configs[entry["Config"]], tuple(by_dir[p] for p in entry["Layers"]))


def _layer(f: IO[bytes]) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    with tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            digest = ""
            if m.isreg():
                h = hashlib.sha256()
                data = tar.extractfile(m)
                assert data is not None
                while chunk := data.read(CHUNK):
                    h.update(chunk)
                digest = h.hexdigest()[:16]
            xattrs = ",".join(f"{k}" for k in sorted(m.pax_headers) if "xattr" in k)
            out[m.name.removeprefix("./").rstrip("/")] = (
                m.type.decode(), f"{m.mode:o}", f"{m.uid}:{m.gid}", str(int(m.mtime)),
                m.linkname, str(m.size), digest, xattrs)
    return out


FIELDS = ("type", "mode", "owner", "mtime", "link", "size", "content", "xattrs")


def differences(a: Summary, b: Summary) -> list[str]:
    """One line per difference: config keys first, then files per layer."""
    lines = []
    for key in sorted(set(a.config) | set(b.config)):
        if key == "rootfs":
            continue
        if a.config.get(key) != b.config.get(key):
            lines.append(f"config: {key} differs")
    if len(a.layers) != len(b.layers):
        lines.append(f"layers: {len(a.layers)} vs {len(b.layers)}")
    for i, (la, lb) in enumerate(zip(a.layers, b.layers, strict=False)):
        if list(la) != list(lb) and sorted(la) == sorted(lb):
            lines.append(f"layer {i + 1}: same files in another order")
        for path in sorted(set(la) | set(lb)):
            ea, eb = la.get(path), lb.get(path)
            if ea == eb:
                continue
            if ea is None or eb is None:
                which = "second" if ea is None else "first"
                lines.append(f"layer {i + 1}: /{path} only in the {which} build")
                continue
            what = [f"{n} {x} -> {y}" if n not in ("content",) else "content"
                    for n, x, y in zip(FIELDS, ea, eb, strict=True) if x != y]
            lines.append(f"layer {i + 1}: /{path}: {', '.join(what)}")
    return lines


def diff_images(engine: Engine, first: str, second: str) -> Iterator[str]:
    yield from differences(summarize(engine, first), summarize(engine, second))
