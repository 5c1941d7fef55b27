#!/usr/bin/env python3
"""Benchmark `kiln publish` against `docker push` of the same image, in one run.

For each image (it must be built and verified: `invoke build <image>`), two fresh registries
(Debian's docker-registry on loopback, storage in a temp folder), one for each tool:
  first      kiln publish (verify gate, docker save -> blobs, manifest by digest, provenance
             and signature, lease, tag, read back) vs docker push (gzip, docker schema2)
  republish  the same again: kiln asks the registry for the tag and stops; docker push checks
             each layer and re-puts the manifest
Prints seconds and bytes uploaded: kiln's from its client's counters (everything it sent:
layers, config, provenance and signature), docker's as the growth of the registry's blob
storage (plus upload sessions started, from its access log), and their ratio.
Goals: first publish within 5% of docker push's bytes (kiln pushes gzip layers, kiln.blobs);
republish uploads 0 bytes.

Usage: python bench/publish.py [image ...]   (run from the repo; needs the engine)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from kiln.context import prepare
from kiln.embedded import LocalRegistry
from kiln.engine import Engine
from kiln.load import Project
from kiln.release.api import open_session, publish
from kiln.signing import keygen
from kiln.ui import UI


def stored_bytes(local: LocalRegistry) -> int:
    """Bytes of blob data the registry holds: what a push added is what was uploaded."""
    blobs = local.data / "docker" / "registry" / "v2" / "blobs"
    return sum(p.stat().st_size for p in blobs.rglob("data")) if blobs.is_dir() else 0


def upload_sessions(local: LocalRegistry) -> int:
    """Blob uploads started (POST .../blobs/uploads/), from the registry's access log."""
    return sum(1 for line in local.log.read_text().splitlines()
               if line.startswith("127.0.0.1 - ") and '"POST /v2/' in line
               and "/blobs/uploads/" in line)


def bench(engine: Engine, project: Project, name: str, tmp: Path) -> list[tuple[str, ...]]:
    prepared = prepare(project, name)
    image_id = engine.image_id(prepared.ref)
    if image_id is None:
        sys.exit(f"{name} is not built: run `invoke build {name}` first")
    size = int(engine.inspect_image(image_id)["Size"])
    kiln_reg = LocalRegistry(tmp / f"kiln-{name}")
    docker_reg = LocalRegistry(tmp / f"docker-{name}")
    rows: list[tuple[str, ...]] = []
    try:
        os.environ["KILN_REGISTRY"] = kiln_reg.start()
        docker_ref = f"{docker_reg.start()}/bench/{name}:1"
        engine.tag(image_id, docker_ref)
        for round_ in ("first", "republish"):
            session = open_session(project, UI(quiet=True), engine)
            started = time.monotonic()
            result = publish(session, name)
            kiln_s = time.monotonic() - started
            before = (stored_bytes(docker_reg), upload_sessions(docker_reg))
            started = time.monotonic()
            engine.push(docker_ref)
            docker_s = time.monotonic() - started
            docker_bytes = stored_bytes(docker_reg) - before[0]
            docker_uploads = upload_sessions(docker_reg) - before[1]
            ratio = (f"{result.bytes_uploaded / docker_bytes:.3f}" if docker_bytes else
                     "-" if result.bytes_uploaded == 0 else "inf")
            rows.append((name, f"{size / 1e6:.0f} MB", round_, f"{kiln_s:.2f}",
                         f"{result.bytes_uploaded} ({result.blobs_uploaded} blobs)",
                         f"{docker_s:.2f}", f"{docker_bytes} ({docker_uploads} uploads)",
                         f"{kiln_s / docker_s:.2f}", ratio,
                         "<= 1.05" if round_ == "first" else "0 bytes"))
    finally:
        engine.remove_image(docker_ref)
        kiln_reg.stop()
        docker_reg.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", default=["base"])
    args = parser.parse_args()
    project = Project.find()
    engine = Engine.connect()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-publish-") as tmp_name:
        tmp = Path(tmp_name)
        # A throwaway key pair: the project's own key (if any) is not touched.
        os.environ["KILN_SIGNING_KEY"] = str(tmp / "signing.key")
        os.environ["KILN_PUBLIC_KEY"] = str(tmp / "kiln.pub")
        keygen(tmp / "signing.key", tmp / "kiln.pub")
        rows = [row for name in args.images for row in bench(engine, project, name, tmp)]
    UI().table("kiln publish vs docker push (loopback docker-registry)",
               ["image", "size", "round", "kiln s", "kiln bytes up", "docker push s",
                "docker bytes up", "kiln/docker s", "kiln/docker bytes", "goal"], rows)


if __name__ == "__main__":
    main()
