"""A canonical hash of every input of an image: the cache key and the root of its tags.

Inputs: kiln's render version, the base (bootstrap spec, pinned digest, rootfs checksum, or the
parent image's fingerprint), the composed plan (every merged definition key and param), the
content, path and mode of every file in the build context, and every package of the image's
lock (version and .deb sha256). Nothing else: not the checkout path, not the clock, not the
file's mtime or owner on disk, not a secret's value.

The inputs are kept by name (see `inputs`) so that `invoke plan` can say which one changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from kiln import RENDER_VERSION, hashcache, lockfile, session
from kiln.model import Base, BootstrapBase, ImageBase, Plan, RefBase, RootfsBase
from kiln.records import state_dir
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
    return digest_json(inputs(root, plan))


def inputs(root: Path, plan: Plan) -> dict[str, str]:
    """Every input of the image by name, each with a value or a digest of it.

    The names say what an input is, so two records can be compared input by input to say why
    an image must be rebuilt: `kiln.render`, `base`, `image.<key>`, `param.<name>`,
    `layer.<layer>.<key>`, `file.<path in context>`, `lock.<layer>.<package>`.
    """
    out: dict[str, str] = {"kiln.render": RENDER_VERSION, "base": base_input(root, plan)}
    for key, value in canonical(plan.image).items():
        # audit_min_index and unrestricted are policy about the bytes, not inputs of them:
        # the publish and verify gates read them from the definition every time.
        if key not in ("path", "base", "audit_min_index", "unrestricted"):
            out[f"image.{key}"] = _short(value)
    for name, value in plan.params:
        out[f"param.{name}"] = json.dumps(value)
    for layer in plan.layers:
        for key, value in canonical(layer).items():
            if key not in ("name", "path", "params") and value not in ((), [], None, ""):
                out[f"layer.{layer.name}.{key}"] = _short(value)
    out["composed.sections"] = digest_json(plan.sections)
    out["composed.config"] = digest_json(plan.config)
    hashes = hashcache.cache(state_dir(root))  # by (path, size, mtime_ns, inode)
    for e in context_entries(root, plan):
        out[f"file.{e.arcname}"] = (f"{e.mode:04o} {hashes.sha256(e.source, file_sha256)}"
                                    if e.source else f"{e.mode:04o} dir")
    hashes.save()
    lock = lockfile.read(root, plan.image.name)
    for section in lock.sections if lock else ():
        for pkg in section.packages:
            out[f"lock.{section.layer}.{pkg.name}:{pkg.arch}"] = f"{pkg.version} {pkg.sha256}"
    return dict(sorted(out.items()))


def base_input(root: Path, plan: Plan) -> str:
    base = plan.image.base
    if isinstance(base, ImageBase):
        assert plan.parent is not None
        return f"image {base.image}@{fingerprint(root, plan.parent)}"
    return f"{type(base).__name__} {digest_json(canonical(base))}"


def _short(value: Any) -> str:
    """A definition value as it is compared: itself when short, its digest otherwise."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= 80 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# The bootstrap does not depend on how Dockerfiles are rendered: its key has its own version,
# so that a render change does not make every bootstrapped base be made again.
BOOTSTRAP_VERSION = "1"


def bootstrap_key(base: BootstrapBase) -> str:
    return digest_json({"render": BOOTSTRAP_VERSION, "bootstrap": base})


def image_repository(name: str) -> str:
    return f"{session.prefix()}kiln/{name}"


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
        return (f"{session.prefix()}kiln-bootstrap/{base.suite}-{base.variant}:"
                f"{bootstrap_key(base)[:16]}")
    if isinstance(base, RootfsBase):
        stem = re.sub(r"[^a-z0-9._-]+", "-", Path(base.path).name.split(".")[0].lower()) or "rootfs"
        return f"{session.prefix()}kiln-rootfs/{stem}:{base.sha256[:16]}"
    assert isinstance(base, RefBase)
    return base.ref
