"""What kiln says about an artifact, as in-toto predicates (signed in DSSE by kiln.release.cosign).

  SLSA provenance v1   how it was built: the definitions' fingerprint, the layers, the lock
                       files' digests, every locked .deb as a resolved dependency, the base
  CycloneDX 1.5        what is inside: the image's Debian packages with pkg:deb purls
  verification record  kiln's own predicate: which suite passed, per layer, when, where

CycloneDX is written as a plain document: cyclonedx-python-lib would bring five packages (and
their import time, on every kiln command) to fill in the twenty fields below.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kiln import __version__, lockfile
from kiln.blobs import COMPRESSION
from kiln.model import ImageBase, Plan
from kiln.records import VerifyRecord
from kiln.release.names import now_iso

SLSA = "https://slsa.dev/provenance/v1"
CYCLONEDX = "https://cyclonedx.org/bom"
VERIFICATION = "https://kiln.dev/attestations/verification/v1"
BUILD_TYPE = "https://kiln.dev/build/image/v1"
BUILDER = "https://kiln.dev/builder"
PREDICATES = (SLSA, CYCLONEDX, VERIFICATION)  # pull takes nothing without all three


def lineage(plan: Plan) -> list[Plan]:
    """The image's plan, then its parent's, up to the root."""
    out = [plan]
    while isinstance(out[-1].image.base, ImageBase) and out[-1].parent is not None:
        out.append(out[-1].parent)
    return out


def slsa(root: Path, plan: Plan, fingerprint: str, base_ref: str, base_id: str | None,
         started: str) -> dict[str, Any]:
    deps: list[dict[str, Any]] = []
    if base_id:
        deps.append({"uri": base_ref, "digest": {"sha256": base_id.removeprefix("sha256:")},
                     "annotations": {"role": "base"}})
    for p in lineage(plan):
        path = lockfile.lock_path(root, p.image.name)
        if path.is_file():
            deps.append({"uri": f"file:{path.relative_to(root)}",
                         "digest": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}})
        lock = lockfile.read(root, p.image.name)
        for pkg in lock.packages if lock else ():
            deps.append({"uri": pkg.url, "name": pkg.filename,
                         "digest": {"sha256": pkg.sha256},
                         "annotations": {"purl": purl(pkg.name, pkg.version, pkg.arch)}})
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"image": plan.image.name, "version": plan.image.version,
                                   "fingerprint": fingerprint,
                                   "layers": [layer.name for layer in plan.all_layers]},
            "internalParameters": {"compression": COMPRESSION},  # the layers' gzip: the
            # compressed digests are reproducible with it
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": BUILDER, "version": {"kiln": __version__}},
            "metadata": {"invocationId": f"urn:uuid:{uuid.uuid4()}", "startedOn": started},
        },
    }


def purl(name: str, version: str, arch: str = "") -> str:
    tail = f"?arch={arch}" if arch else ""
    return f"pkg:deb/debian/{quote(name)}@{quote(version, safe='')}{tail}"


def cyclonedx(name: str, version: str, digest: str, packages: list[str] | None) -> dict[str, Any]:
    """`packages`: dpkg-query's `name=version` (or `name:arch=version`) lines."""
    components = []
    for line in packages or []:
        pkg, _, ver = line.partition("=")
        pkg, _, arch = pkg.partition(":")
        components.append({"type": "library", "name": pkg, "version": ver,
                           "purl": purl(pkg, ver, arch), "bom-ref": purl(pkg, ver, arch)})
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "metadata": {
            "timestamp": now_iso(),
            "tools": {"components": [{"type": "application", "name": "kiln",
                                      "version": __version__}]},
            "component": {"type": "container", "name": name, "version": version,
                          "hashes": [{"alg": "SHA-256",
                                      "content": digest.removeprefix("sha256:")}]},
            **({} if packages is not None else
               {"properties": [{"name": "kiln:packages", "value": "unknown (no dpkg-query)"}]}),
        },
        "components": components,
    }


def verification(record: VerifyRecord, **fields: Any) -> dict[str, Any]:
    """The verification record predicate; `fields` are the artifact's own (image_id, ...)."""
    return {
        "type": "dev.kiln.verification.v1",
        **fields,
        "verification": {
            "target": record.target, "suite": record.suite, "passed": record.passed,
            "profile": record.profile, "profile_detail": record.extra.get("profile", {}),
            "counts": record.counts, "started": record.started, "seconds": record.seconds,
            "where": record.extra.get("where", ""),
            "checks": [{"layer": c.layer, "test": c.test, "outcome": c.outcome}
                       for c in record.checks],
        },
        "kiln": __version__,
    }
