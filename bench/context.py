#!/usr/bin/env python3
"""Benchmark the no-op night with one context (each image prepared once) against the same
night preparing each image at every call, as before kiln.context, in one run.

A project of IMAGES images on the busybox test base (a chain of parents and a few leaves, one
layer with FILES context files), published to a fresh docker-registry on loopback by a first
night. Then ROUNDS no-op nights of each kind, interleaved, each in a fresh Context (as the next
process would be):
  context    kiln.context.Context: `ctx.prepared(name)` prepares an image once per run
  baseline   the same Context with the memo switched off: every `prepared(name)` prepares
             again, which is what every call site did before (a no-op night: refresh_lock
             and build_image, two per image)
Prints the median seconds of each, the prepare calls per image per night, and context /
baseline (goal: <= 1.0, and one prepare per image).

Usage: python bench/context.py [--rounds N]   (run from the repo; needs the engine and
busybox-static; removes the images and the registry it made)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from conftest import busybox_tar_bytes  # noqa: E402  (the integration tests' test base)
from kiln import context  # noqa: E402
from kiln.config import load_config  # noqa: E402
from kiln.context import Context, Prepared, prepare  # noqa: E402
from kiln.embedded import LocalRegistry  # noqa: E402
from kiln.engine import Engine  # noqa: E402
from kiln.load import Project  # noqa: E402
from kiln.nightly import Options, run_nightly  # noqa: E402
from kiln.signing import keygen  # noqa: E402
from kiln.ui import UI  # noqa: E402

IMAGES = 6
FILES = 200


class Baseline(Context):
    """Before kiln.context: every call site prepared the image again."""

    def prepared(self, name: str) -> Prepared:
        return context.prepare(self.project, name)


def write_project(root: Path) -> Project:
    tar = busybox_tar_bytes()
    (root / "rootfs").mkdir(parents=True)
    (root / "rootfs" / "busybox.tar").write_bytes(tar)
    files = root / "layers" / "conf" / "files" / "bench"
    files.mkdir(parents=True)
    for i in range(FILES):
        (files / f"f{i:03}.conf").write_text(f"setting = {i}\n" * 20)
    (root / "layers" / "conf" / "layer.yaml").write_text(
        "files:\n  - {src: bench, dest: /etc/bench}\n")
    base = ("base:\n  rootfs:\n    path: rootfs/busybox.tar\n"
            f"    sha256: {hashlib.sha256(tar).hexdigest()}\n")
    (root / "images").mkdir()
    for i in range(IMAGES):
        name = f"ctxbench-{i}"
        layer = root / "layers" / name
        (layer / "tests").mkdir(parents=True)
        (layer / "layer.yaml").write_text(f"run:\n  - echo {i} > /{name}\n")
        (layer / "tests" / f"test_{i}.py").write_text(
            f"def test_it(host):\n    assert host.file('/{name}').exists\n")
        # a chain of three, the others on its first image: parents first, as a night goes
        parent = base if i == 0 else f"base:\n  image: ctxbench-{i - 1 if i < 3 else 0}\n"
        layers = "[conf, " + name + "]" if i == 0 else f"[{name}]"
        (root / "images" / f"{name}.yaml").write_text(f'{parent}version: "1"\nlayers: {layers}\n')
    return Project(root)


def night(kind: type[Context], root: Path, engine: Engine) -> tuple[float, Counter[str]]:
    calls: Counter[str] = Counter()

    def counting(project: Project, name: str) -> Prepared:
        calls[name] += 1
        return prepare(project, name)

    context.prepare = counting
    try:
        ctx = kind(Project(root), engine, UI(quiet=True))
        start = time.perf_counter()
        result = run_nightly(ctx, Options())
        seconds = time.perf_counter() - start
    finally:
        context.prepare = prepare
    assert {o.status for o in result.report.outcomes} == {"unchanged"}, result.report.summary()
    return seconds, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    engine = Engine.connect()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-context-") as tmp_:
        tmp = Path(tmp_)
        registry = LocalRegistry(tmp / "registry")
        registry.start()
        root = tmp / "project"
        project = write_project(root)
        os.environ.update({"KILN_REGISTRY": str(registry.address),
                           "KILN_STATE_DIR": str(root / ".kiln")})
        config = load_config(root)
        keygen(config.signing_key, config.public_key)
        first = Context(project, engine, UI(quiet=True))
        try:
            done = run_nightly(first, Options())
            assert not done.report.failed, done.report.to_markdown()
            times: dict[str, list[float]] = {"context": [], "baseline": []}
            calls: dict[str, Counter[str]] = {}
            for _ in range(args.rounds):
                for label, kind in (("context", Context), ("baseline", Baseline)):
                    seconds, calls[label] = night(kind, root, engine)
                    times[label].append(seconds)
        finally:
            registry.stop()
            for result in first.results.values():
                for tag in result.tags:
                    engine.remove_image(tag)
            engine.remove_image(prepare(project, "ctxbench-0").base_ref)
    median = {label: statistics.median(values) for label, values in times.items()}
    for label in ("context", "baseline"):
        per_image = sum(calls[label].values()) / IMAGES
        print(f"{label:<10} {median[label]:6.3f} s per no-op night ({IMAGES} images), "
              f"{per_image:.0f} prepare per image")
    print(f"context / baseline: {median['context'] / median['baseline']:.2f} "
          f"(median of {args.rounds} rounds each)")


if __name__ == "__main__":
    main()
