"""OCI manifests and artifacts over kiln.registry: media types, artifacts, docker save.

A registry has no compare-and-swap: content is always pushed by digest first, so a tag never
names a partial image, and every tag kiln writes is read back (`read_back`). Image layers go
through kiln.blobs (reproducible gzip).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.chunks import ChunkReader
from kiln.engine import Engine
from kiln.registry import OCI_MANIFEST, Manifest, Registry, RegistryError, sha256_digest
from kiln.release.errors import PublishError
from kiln.signing import canonical_json

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Layer:
        if not isinstance(data, dict):
            raise ValueError("a layer is not an object")
        notes = data.get("annotations") or {}
        return cls(str(data["mediaType"]), str(data["digest"]), int(data["size"]),
                   {str(k): str(v) for k, v in notes.items()})


def layers_of(manifest: Manifest) -> list[Layer]:
    """The layers of a manifest; malformed ones are skipped (another tool's, or damage)."""
    out = []
    for item in manifest.json.get("layers") or []:
        try:
            out.append(Layer.from_json(item))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def put_blob(reg: Registry, repo: str, data: bytes) -> Layer:
    digest = sha256_digest(data)
    if reg.blob_size(repo, digest) is None:
        reg.upload_blob(repo, digest, data)
    return Layer("", digest, len(data), {})


def manifest_doc(config: tuple[str, bytes], layers: list[Layer], *,
                 artifact_type: str = "", subject: Manifest | None = None,
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
    media_type, config_bytes = config
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": media_type, "digest": sha256_digest(config_bytes),
                   "size": len(config_bytes)},
        "layers": [layer.to_json() for layer in layers],
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if annotations:
        doc["annotations"] = annotations
    if subject is not None:
        doc["subject"] = {"mediaType": subject.media_type or OCI_MANIFEST,
                          "digest": subject.digest, "size": len(subject.body)}
    return doc


def put_artifact(reg: Registry, repo: str, tag: str, artifact_type: str,
                 blobs: list[tuple[str, bytes]], annotations: dict[str, str],
                 subject: Manifest | None = None) -> str:
    """An OCI artifact (empty config, one layer per blob) under `tag`; returns its digest."""
    reg.upload_blob(repo, sha256_digest(EMPTY), EMPTY)
    layers = []
    for media_type, data in blobs:
        put = put_blob(reg, repo, data)
        layers.append(Layer(media_type, put.digest, put.size, {}))
    doc = manifest_doc((EMPTY_TYPE, EMPTY), layers, artifact_type=artifact_type,
                       subject=subject, annotations=annotations)
    return reg.put_manifest(repo, tag, canonical_json(doc), OCI_MANIFEST)


def full(reg: Registry, repo: str, manifest: Manifest) -> Manifest:
    """`manifest` with its body (a HEAD gives only the digest)."""
    if manifest.body:
        return manifest
    got = reg.manifest(repo, manifest.digest)
    if got is None:
        raise PublishError(f"{reg.host}/{repo}@{manifest.digest[:19]} vanished from the registry "
                           "while kiln was using it (another writer deleted it); re-run")
    return got


def read_back(reg: Registry, repo: str, tag: str, digest: str) -> None:
    back = reg.resolve(repo, tag)
    if back is None or back.digest != digest:
        got = back.digest if back else "nothing"
        raise PublishError(f"{repo}:{tag} reads back as {got}, not {digest}: another writer "
                           "ignored kiln's lease; check the tag's history before using it")


def config_digest(manifest: Manifest) -> str | None:
    try:
        value = (manifest.json.get("config") or {}).get("digest")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def blob_json(reg: Registry, repo: str, digest: str) -> Any:
    try:
        return json.loads(reg.blob(repo, digest))
    except ValueError as exc:
        raise RegistryError(f"{reg.host}/{repo}@{digest[:19]}: not JSON ({exc})") from None


# docker save -> blobs ------------------------------------------------------------------------
def export(engine: Engine, image_id: str, wanted: set[str], folder: Path) -> dict[str, Path]:
    """Stream `docker save` and keep, on disk, only the blobs in `wanted` (by sha256)."""
    found: dict[str, Path] = {}
    stream = io.BufferedReader(ChunkReader(engine.save(image_id)), 1 << 20)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for n, member in enumerate(tar):
            if not member.isfile() or not (member.name.endswith("/layer.tar")
                                           or member.name.endswith(".json")):
                continue
            src = tar.extractfile(member)
            if src is None:
                continue
            path = folder / f"blob-{n}"
            h = hashlib.sha256()
            with path.open("wb") as out:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            digest = "sha256:" + h.hexdigest()
            if digest in wanted and digest not in found:
                found[digest] = path
            else:
                path.unlink()
    return found
