#!/usr/bin/env python3
"""Benchmark `kiln drift`: seconds per 10,000 changed files, against a bare baseline.

    DOCKER_HOST=... .venv/bin/python bench/drift.py [--files 10000] [--json FILE]

Publishes the busybox test image (signed, with its file manifest) to a docker-registry on
loopback, pulls it by digest, starts a container and writes N files into it. Then, in this
process:

(a) kiln: judge_container (trust check, manifest fetch and verification, docker diff, stat and
    sha256 of every candidate inside the container, comparison);
(b) baseline: one `docker exec` hashing the same files (`find | xargs sha256sum`), what a
    hand-written check would at least cost;
(c) VM listing: the `--ssh` listing command run locally over a folder of N files.

Prints seconds and the ratio (a) / (b). Everything it creates is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from conftest import busybox_tar_bytes  # noqa: E402
from kiln import records  # noqa: E402
from kiln.config import load_config  # noqa: E402
from kiln.context import Context, prepare  # noqa: E402
from kiln.embedded import LocalRegistry  # noqa: E402
from kiln.engine import Engine  # noqa: E402
from kiln.fleet.drift import judge_container  # noqa: E402
from kiln.fleet.manifest import DEFAULT_MUTABLE, FileManifest  # noqa: E402
from kiln.fleet.remote import judge_listing, listing_command  # noqa: E402
from kiln.load import Project  # noqa: E402
from kiln.pipeline import build_image  # noqa: E402
from kiln.release.api import open_session, publish, pull  # noqa: E402
from kiln.signing import keygen  # noqa: E402
from kiln.ui import UI  # noqa: E402
from kiln.verify import find_suite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--json")
    args = parser.parse_args()
    n = args.files
    engine = Engine.connect()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-drift-") as tmp:
        root = Path(tmp) / "project"
        (root / "layers/hello").mkdir(parents=True)
        (root / "images").mkdir()
        (root / "rootfs").mkdir()
        tar = busybox_tar_bytes()
        (root / "rootfs/busybox.tar").write_bytes(tar)
        (root / "layers/hello/layer.yaml").write_text("run:\n  - echo bench > /hello\n")
        (root / "images/small.yaml").write_text(
            f"base:\n  rootfs:\n    path: rootfs/busybox.tar\n    sha256: "
            f"{hashlib.sha256(tar).hexdigest()}\nlayers: [hello]\n")
        registry = LocalRegistry(Path(tmp) / "registry")
        registry.start()
        os.environ["KILN_REGISTRY"] = str(registry.address)
        os.environ["DOCKER_CONFIG"] = str(Path(tmp) / "docker-config")
        before = {i["Id"] for i in engine.api.images(all=True)}
        container = None
        try:
            config = load_config(root)
            keygen(config.signing_key, config.public_key)
            built = build_image(Context(project=Project(root), engine=engine, ui=UI(quiet=True),
                                        verify=False), "small")
            suite = find_suite(root, prepare(Project(root), "small").plan).digest
            records.save(root, records.VerifyRecord(
                image="small", image_id=built.image_id, fingerprint=built.fingerprint,
                target="container", suite=suite, passed=True,
                started="2026-01-01T00:00:00Z", checks=()))
            s = open_session(Project(root), UI(quiet=True), engine)
            published = publish(s, "small")
            pulled = pull(s, f"small@{published.digest}")
            container = engine.run_container(pulled.reference, entrypoint=["/bin/sleep", "600"])
            ref = str(container.id)
            script = (f"mkdir -p /srv/bench && cd /srv/bench && i=0; while [ $i -lt {n} ]; do "
                      "echo $i > f$i; i=$((i+1)); done")
            engine.exec(ref, ["/bin/sh", "-c", script], user="0")

            started = time.monotonic()
            drift = judge_container(s, ref)
            kiln_s = time.monotonic() - started
            assert len(drift.added) == n + 2, len(drift.added)  # the files, /srv, /srv/bench
            started = time.monotonic()
            out = engine.exec(ref, ["/bin/sh", "-c",
                                    "find /srv/bench -type f | xargs sha256sum | wc -l"])
            base_s = time.monotonic() - started
            assert int(out.stdout.decode().strip()) == n

            folder = Path(tmp) / "vm"
            (folder / "srv").mkdir(parents=True)
            for i in range(n):
                (folder / "srv" / f"f{i}").write_text(f"{i}\n")
            started = time.monotonic()
            listing = subprocess.run(["sh", "-c", listing_command(str(folder), DEFAULT_MUTABLE)],
                                     capture_output=True, check=True).stdout
            vm = judge_listing(FileManifest("x", {}), listing, str(folder), "vm", "r", "d", None)
            vm_s = time.monotonic() - started
            assert len(vm.added) == n + 1
        finally:
            if container is not None:
                engine.remove_container(container)
            registry.stop()
            for image_id in {i["Id"] for i in engine.api.images(all=True)} - before:
                engine.api.remove_image(image_id, force=True)
    result = {"files": n, "kiln_drift_s": round(kiln_s, 2), "baseline_exec_hash_s":
              round(base_s, 2), "ratio": round(kiln_s / base_s, 2),
              "vm_listing_local_s": round(vm_s, 2)}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
