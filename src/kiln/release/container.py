"""The container image artifact: built for the current definitions, verified, pushed from
`docker save` (layers uncompressed, so a layer's digest is its diff_id); and pull."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.blobs import push_layer
from kiln.context import Context, Prepared
from kiln.errors import EngineError
from kiln.fingerprint import image_repository
from kiln.records import VerifyRecord, first_built, require_verified, state_dir
from kiln.registry import DIGEST_RE, OCI_MANIFEST, Manifest, sha256_digest
from kiln.release import chain
from kiln.release.errors import DigestMismatch, PublishError
from kiln.release.names import check_names, immutable_tag, now_iso, parse_spec
from kiln.release.oci import CONFIG_TYPE, export
from kiln.release.provenance import CYCLONEDX, SLSA, VERIFICATION, cyclonedx, lineage, slsa
from kiln.release.provenance import verification as verification_predicate
from kiln.release.session import checkpoint
from kiln.release.trust import Trust, check_kind, check_trust, published_digest
from kiln.signing import canonical_json


@dataclass
class ContainerImage:
    name: str
    prepared: Prepared
    content_id: str  # the image ID
    info: dict[str, Any]  # the engine's inspect
    record: VerifyRecord
    target: str = "container"

    @classmethod
    def local(cls, s: Context, name: str) -> ContainerImage:
        """The image built for `name`'s current definitions, if it passed verification."""
        engine = s.engine
        prepared = s.prepared(name)
        image_id = engine.image_id(prepared.ref)
        if image_id is None:
            raise PublishError(f"{prepared.plan.image.path}: {name} is not built for the current "
                               f"definitions ({prepared.ref}); run `kiln build {name}`")
        record = require_verified(s.root, name, image_id)
        from kiln.verify import find_suite  # pytest-free, but verify's imports are not light

        suite = find_suite(s.root, prepared.plan).digest
        if record.suite != suite:
            raise PublishError(f"{prepared.plan.image.path}: {name} ({image_id[:19]}) passed "
                               f"verification on {record.started} with another test suite "
                               f"(tests changed since: {record.suite[:12]} -> {suite[:12]}); "
                               f"run `kiln verify {name}` first")
        from kiln.audit import audit_gate  # lynis, when the image sets audit_min_index

        audit_gate(s.root, prepared.plan, image_id, engine, prepared.ref, s.ui)
        return cls(name, prepared, image_id, engine.inspect_image(image_id), record, root=s.root)

    root: Path | None = None

    @property
    def default_tag(self) -> str:
        """<version>-<date first built>-<id12>."""
        return tag_for(self.root or Path("."), self.prepared, self.content_id)

    def push(self, s: Context, repo: str) -> bytes:
        """Blobs, then the manifest by digest. Layers go through kiln.blobs (reproducible gzip,
        cached by diff_id: known layers cost a HEAD or a mount from a parent image's
        repository); what the registry lacks is read from one `docker save`."""
        reg = s.registry
        diff_ids: list[str] = list(self.info["RootFS"]["Layers"])
        sources = [s.config.repository(p.image.name) for p in lineage(self.prepared.plan)[1:]]
        with tempfile.TemporaryDirectory(prefix=s.temp_prefix("push"),
                                         dir=s.tmp_parent()) as tmp:
            files: dict[str, Path] = {}

            def exported(digest: str) -> Path:
                if not files:  # the first blob the registry lacks: save the image once
                    files.update(export(s.engine, self.content_id,
                                        {self.content_id, *diff_ids}, Path(tmp)))
                if digest not in files:
                    raise PublishError(f"docker save of {self.content_id[:19]} lacks blob "
                                       f"{digest[:19]}")
                return files[digest]

            layers = [push_layer(reg, repo, d, exported, state=state_dir(s.root),
                                 mount_from=sources, say=s.ui.step) for d in diff_ids]
            config_size = reg.blob_size(repo, self.content_id)
            if config_size is None:
                config = exported(self.content_id)
                reg.upload_blob(repo, self.content_id, config)
                config_size = config.stat().st_size
            checkpoint("uploaded")
        labels = (self.info.get("Config") or {}).get("Labels") or {}
        annotations = {"org.opencontainers.image.created": str(self.info["Created"])}
        for key in ("dev.kiln.image", "dev.kiln.fingerprint", "org.opencontainers.image.version"):
            if key in labels:
                annotations[key] = str(labels[key])
        body = canonical_json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG_TYPE, "digest": self.content_id,
                       "size": config_size},
            "layers": layers,
            "annotations": annotations,
        })
        reg.put_manifest(repo, sha256_digest(body), body, OCI_MANIFEST)
        return body

    def predicates(self, s: Context, repo: str, manifest: Manifest) -> dict[str, dict[str, Any]]:
        prepared, plan = self.prepared, self.prepared.plan
        engine = s.engine
        base_id = engine.image_id(prepared.base_ref)
        packages = self.packages(s)
        return {
            SLSA: slsa(s.root, plan, prepared.fingerprint, prepared.base_ref, base_id,
                       self.record.started),
            CYCLONEDX: cyclonedx(repo, plan.image.version, manifest.digest, packages),
            VERIFICATION: verification_predicate(
                self.record, image=self.name, repository=repo, manifest=manifest.digest,
                image_id=self.content_id, version=plan.image.version,
                fingerprint=prepared.fingerprint, layers=[x.name for x in plan.all_layers],
                base={"ref": prepared.base_ref, "image_id": base_id}, signed_at=now_iso()),
        }

    def packages(self, s: Context) -> list[str] | None:
        """`dpkg-query -W` of the image: from the verification record, or from a container."""
        if isinstance(self.record.extra.get("packages"), list):
            return [str(p) for p in self.record.extra["packages"]]
        script = ("command -v dpkg-query >/dev/null || exit 3; "
                  "exec dpkg-query -W -f='${Package}=${Version}\\n'")
        try:
            ran = s.engine.run_once(
                self.content_id, ["/bin/sh", "-c", script], timeout=120,
                name=s.temp_prefix("dpkg-query") + self.content_id[7:19])
        except EngineError:
            return None  # no shell in this image: its packages are unknown
        return (sorted(line for line in ran.stdout.splitlines() if line) if ran.exit_code == 0
                else None)


def local_tag(s: Context, name: str) -> str | None:
    """The immutable tag of the local build of `name`, or None when it is not built."""
    engine = s.engine
    prepared = s.prepared(name)
    image_id = engine.image_id(prepared.ref)
    if image_id is None:
        return None
    return tag_for(s.root, prepared, image_id)


def tag_for(root: Path, prepared: Prepared, image_id: str) -> str:
    return immutable_tag(prepared.plan.image.version, first_built(root, prepared.fingerprint),
                         image_id)


# pull ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullResult:
    reference: str
    digest: str
    image_id: str
    local: tuple[str, ...]
    verified: str
    key: str

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in ((k, getattr(self, k)) for k in self.__dataclass_fields__)}


def pull(s: Context, spec: str) -> PullResult:
    """Resolve to a digest, check signature and attestations, pull by digest, check the ID."""
    name, ref = parse_spec(spec)
    ref = ref or (s.config.channels[0])
    repo = s.config.repository(name)
    digest = published_digest(s, repo, ref)
    trust = check_kind(check_trust(s, repo, digest), "container")
    check_names(s.registry.host, repo, ref, trust.image_id)
    if ref in s.config.channels:
        chain.check(s, repo, ref, digest)
    remote = f"{s.registry.host}/{repo}"
    engine = s.engine
    image_id = pull_trusted(s, repo, trust)
    local = [] if DIGEST_RE.match(ref) else [f"{remote}:{ref}", f"{image_repository(name)}:{ref}"]
    for target in local:
        engine.tag(image_id, target)
    v = trust.provenance.get("verification") or {}
    summary = (f"suite {str(v.get('suite'))[:12]}, {(v.get('counts') or {}).get('passed', 0)} "
               f"checks passed, {v.get('started')}")
    return PullResult(f"{remote}@{digest}", digest, image_id, tuple(local), summary, trust.key)


def pull_trusted(s: Context, repo: str, trust: Trust) -> str:
    """Pull a digest `check_trust` accepted into the engine, by digest; the image ID the engine
    got must be the one the signed record names."""
    remote, digest = f"{s.registry.host}/{repo}", trust.digest
    with s.ui.task(f"pull {remote}@{digest[:19]} (signature and attestations checked, "
                   f"key {trust.key})"):
        image_id = s.engine.pull(f"{remote}@{digest}", s.registry.credentials)
    if image_id != trust.image_id:
        raise DigestMismatch(f"{remote}@{digest}: the engine pulled {image_id[:19]}, but the "
                             f"signed record names {trust.image_id[:19]}")
    return image_id
