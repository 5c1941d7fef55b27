"""`kiln prune`: remove what kiln made that nothing needs any more, and say how much it freed.

- kiln images this project made (its state names them: the inputs recorded at each build, the
  verification records; another project's images on the same engine are not its to judge)
  that are unverified or unreferenced. An image is kept
  when it is an image's current build (its fingerprint's tag) and verified, or when a moving
  tag (`latest`, the version, the image's `tags`) names it: those move onto verified images
  only. Failed and superseded builds go.
- With `build_cache`: the engine's unused BuildKit cache. The engine cannot remove one
  build's records alone (a filtered prune leaves every record whose children remain), so this
  is all unused cache, and only on request: on kiln's own engine that is kiln's cache.
- Stale state under .kiln: verification records of images the engine no longer has, VM disks
  of fingerprints no image has any more, and scratch folders (tmp, pycache).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kiln import records
from kiln.compose import compose_all
from kiln.engine import Engine
from kiln.errors import EngineError
from kiln.fingerprint import fingerprint, image_ref, image_repository
from kiln.load import Project

IMAGE_LABEL = "dev.kiln.image"
KILN_STEP = "-c set -eu; "  # in the description of the cache record of every kiln run step


@dataclass(frozen=True)
class Removal:
    kind: Literal["image", "cache", "state"]
    what: str  # image ID, cache record ID, or path
    name: str  # what a person recognises: the image's tags, the step, the file
    why: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "what": self.what, "name": self.name, "why": self.why,
                "bytes": self.bytes}


def find(project: Project, engine: Engine, build_cache: bool = False) -> list[Removal]:
    cache = _cache(engine) if build_cache else []
    return [*_images(project, engine), *cache, *_state(project, engine)]


def remove(project: Project, engine: Engine, removals: list[Removal]) -> tuple[int, list[str]]:
    """Remove them; (bytes freed as the engine and the disk measure it, what could not go)."""
    before = engine.layers_size()
    freed, failed = 0, []
    if any(r.kind == "cache" for r in removals):
        freed += engine.prune_build_cache()
    for r in removals:
        try:
            if r.kind == "image":
                engine.remove_image(r.what)
            elif r.kind == "cache":
                continue
            else:
                path = Path(r.what)
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
                freed += r.bytes
        except (EngineError, OSError) as exc:
            failed.append(f"{r.name}: {exc}")
    return freed + max(0, before - engine.layers_size()), failed


def _images(project: Project, engine: Engine) -> list[Removal]:
    plans = {p.image.name: p for p in compose_all(project)}
    current: dict[str, str] = {}  # image name -> its current fingerprint tag
    moving: set[str] = set()
    for name, plan in plans.items():
        current[name] = image_ref(name, fingerprint(project.root, plan))
        repo = image_repository(name)
        moving.update(f"{repo}:{tag}" for tag in ("latest", plan.image.version, *plan.image.tags))
    ours = made_here(project.root)
    out = []
    for image in engine.images(IMAGE_LABEL):
        image_id, tags = str(image["Id"]), list(image.get("RepoTags") or [])
        name = (image.get("Labels") or {}).get(IMAGE_LABEL, "?")
        if image_id not in ours or set(tags) & moving:
            continue
        record = records.load(project.root, image_id)
        verified = record is not None and record.passed
        if name not in plans:
            why = f"no image '{name}' is defined any more"
        elif current[name] not in tags:
            why = "superseded: not the current definition, and no moving tag names it"
        elif not verified:
            why = "unverified" + (f" ({record.reason})" if record and record.reason else "")
        else:
            continue
        out.append(Removal("image", image_id, ", ".join(tags) or image_id[:19], why,
                           int(image.get("Size") or 0)))
    return out


def made_here(root: Path) -> set[str]:
    """The image IDs this project built (kiln.planner's inputs) or verified (its records)."""
    state = records.state_dir(root)
    ids = {f"sha256:{p.stem}" for p in (state / "verified" / "container").glob("*.json")}
    for path in (state / "inputs").glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            ids.add(str(json.loads(path.read_text())["image_id"]))
    return ids


def _cache(engine: Engine) -> list[Removal]:
    unused = [c for c in engine.build_cache() if not c.get("InUse")]
    if not unused:
        return []
    steps = sum(KILN_STEP in str(c.get("Description", "")) for c in unused)
    return [Removal("cache", "build-cache", f"{len(unused)} unused BuildKit cache records "
                    f"({steps} of them kiln run steps)", "build cache no image or build uses",
                    sum(int(c.get("Size") or 0) for c in unused))]


def _state(project: Project, engine: Engine) -> list[Removal]:
    state = records.state_dir(project.root)
    out = []
    for path in sorted((state / "verified" / "container").glob("*.json")):
        if engine.image_id(f"sha256:{path.stem}") is None:
            out.append(Removal("state", str(path), str(path.relative_to(project.root)),
                               "verification record of an image the engine no longer has",
                               path.stat().st_size))
    live = {(p.image.name, fingerprint(project.root, p)[:16]) for p in compose_all(project)}
    for folder in sorted((state / "vm").glob("*/*")):
        if folder.is_dir() and (folder.parent.name, folder.name) not in live:
            out.append(Removal("state", str(folder), str(folder.relative_to(project.root)),
                               "VM disk of a fingerprint no image has any more", _size(folder)))
    for scratch in ("tmp", "pycache"):
        folder = state / scratch
        if folder.is_dir() and any(folder.iterdir()):
            out.append(Removal("state", str(folder), str(folder.relative_to(project.root)),
                               "scratch space, made again when needed", _size(folder)))
    return out


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
