"""A canonical hash of every input of an image: the cache key and the root of its tags.

Inputs: kiln's render version, the base (bootstrap spec, pinned digest, rootfs checksum, or the
parent image's fingerprint), the composed plan (every merged definition key and param), and the
content, path and mode of every file in the build context. Nothing else: not the checkout path,
not the clock, not the file's mtime or owner on disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from kiln import RENDER_VERSION
from kiln.model import Base, BootstrapBase, ImageBase, Plan, RefBase, RootfsBase
from kiln.render.context import context_entries

CHUNK = 1 << 20


def canonical(value: Any) -> Any:
    """Plain JSON-able data from specs; fields excluded from comparison are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name))
                for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, tuple | list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    return value


def digest_json(value: Any) -> str:
    data = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(root: Path, plan: Plan) -> str:
    files = [(e.arcname, e.mode, file_sha256(e.source) if e.source else None)
             for e in context_entries(root, plan)]
    return digest_json({
        "render": RENDER_VERSION,
        "base": base_identity(root, plan),
        "image": {k: v for k, v in canonical(plan.image).items() if k not in ("path",)},
        "layers": plan.layers,
        "params": plan.params,
        "sections": plan.sections,
        "config": plan.config,
        "files": files,
    })


def base_identity(root: Path, plan: Plan) -> Any:
    base = plan.image.base
    if isinstance(base, ImageBase):
        assert plan.parent is not None
        return {"image": base.image, "fingerprint": fingerprint(root, plan.parent)}
    return canonical(base) | {"kind": type(base).__name__}


def bootstrap_key(base: BootstrapBase) -> str:
    return digest_json({"render": RENDER_VERSION, "bootstrap": base})


def image_repository(name: str) -> str:
    return f"kiln/{name}"


def image_ref(name: str, fp: str) -> str:
    return f"{image_repository(name)}:{fp[:16]}"


def base_ref(root: Path, plan: Plan) -> str:
    """The name the Dockerfile's FROM uses for the plan's base."""
    return base_ref_of(plan.image.base, lambda: fingerprint(root, plan.parent) if plan.parent
                       else "")


def base_ref_of(base: Base, parent_fp: Any) -> str:
    if isinstance(base, ImageBase):
        return image_ref(base.image, parent_fp())
    if isinstance(base, BootstrapBase):
        return f"kiln-bootstrap/{base.suite}-{base.variant}:{bootstrap_key(base)[:16]}"
    if isinstance(base, RootfsBase):
        stem = re.sub(r"[^a-z0-9._-]+", "-", Path(base.path).name.split(".")[0].lower()) or "rootfs"
        return f"kiln-rootfs/{stem}:{base.sha256[:16]}"
    assert isinstance(base, RefBase)
    return base.ref
