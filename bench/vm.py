"""bench/vm: from definitions to a verified VM disk, step by step, against the container build.

    PYTHONPATH=src python bench/vm.py [--image base-vm] [--boot bios] [--json out.json]

In one run: the image's container is built without the engine's cache (its base image is
reused: that is the container-only build), then its disk is made (export, rootfs, assemble,
qcow2), then a copy is booted and tested (boot to SSH, tests). Sizes: raw (virtual and
allocated), qcow2, compressed qcow2 (made here too, and timed).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, cast

from kiln.context import Context
from kiln.engine import Engine
from kiln.load import Project
from kiln.pipeline import build_image
from kiln.run import run
from kiln.ui import UI
from kiln.vm.build import build_disk
from kiln.vm.disk import to_qcow2
from kiln.vm.verify import verify_vm

ACCELS = ("auto", "kvm", "tcg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="base-vm")
    parser.add_argument("--boot", default="bios", help="bios, uefi or bios+uefi")
    parser.add_argument("--accel", default="auto", choices=ACCELS)
    parser.add_argument("--disk-format", default="raw", help="the file verification boots")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    project = Project.find()
    engine = Engine.connect()
    ui = UI()
    figures: dict[str, Any] = {"image": args.image, "host": platform.node(),
                               "load_before": _load()}

    # The base image is built normally (cached); only this image's own steps run uncached.
    warm = Context(project=project, engine=engine, ui=ui)
    parent = project.image(args.image).base
    if hasattr(parent, "image"):
        build_image(warm, parent.image)
    cold = Context(project=project, engine=engine, ui=ui, nocache=True)
    cold.results.update(warm.results)
    t = time.monotonic()
    image = build_image(cold, args.image)
    figures["container_build_s"] = round(time.monotonic() - t, 1)

    disk_ctx = Context(project=project, engine=engine, ui=ui, force=True)
    disk_ctx.results.update({args.image: image, **warm.results})
    disk = build_disk(disk_ctx, args.image)
    figures["disk_steps_s"] = {k: round(v, 1) for k, v in disk.seconds.items() if k != "build"}

    verified = verify_vm(disk_ctx, args.image, boot=args.boot,
                         accel=cast(Literal["auto", "kvm", "tcg"], args.accel),
                         disk_format=args.disk_format)
    figures["boots"] = [b.to_json() for b in verified.boots]

    with tempfile.TemporaryDirectory(dir=disk.folder) as tmp:
        compressed = Path(tmp) / "disk-compressed.qcow2"
        t = time.monotonic()
        to_qcow2(disk.raw, compressed, compress=True)
        figures["qcow2_compress_s"] = round(time.monotonic() - t, 1)
        sizes = dict(disk.manifest["bytes"])
        sizes["qcow2_compressed"] = compressed.stat().st_size
        sizes["container_image"] = int(engine.inspect_image(image.image_id)["Size"])
    figures["bytes"] = sizes
    figures["mib"] = {k: round(v / 2**20, 1) for k, v in sizes.items()}
    steps = figures["disk_steps_s"]
    boot = verified.boots[0]
    # the suite starts when the boot is over (systemd "running"), not when SSH first answers
    vm_total = (figures["container_build_s"] + sum(steps.values()) + boot.booted_seconds
                + boot.test_seconds)
    figures["summary_s"] = {
        "container_only": figures["container_build_s"],
        "build": figures["container_build_s"],
        "export": steps.get("export", 0.0),
        "disk_assembly": round(steps.get("rootfs", 0) + steps.get("assemble", 0)
                               + steps.get("qcow2", 0) + steps.get("checksum", 0), 1),
        "boot_to_ssh": round(boot.ssh_seconds, 1),
        "boot_to_ssh_qemu_cpu": round(boot.ssh_cpu_seconds, 1),
        "boot_finished": round(boot.booted_seconds, 1),
        "tests": round(boot.test_seconds, 1),
        "accel": boot.accel,
        "definitions_to_verified_disk": round(vm_total, 1),
    }
    figures["load_after"] = _load()
    figures["tools"] = {"qemu": run(["qemu-system-x86_64", "--version"]).splitlines()[0]}
    ui.table(f"bench/vm {args.image} ({boot.mode}, {boot.accel})", ["step", "seconds"],
             [(k, v) for k, v in figures["summary_s"].items() if k != "accel"])
    ui.table("sizes", ["artifact", "MiB"], list(figures["mib"].items()))
    ui.table(f"where the boot spent its time: {boot.startup}", ["unit (systemd-analyze blame)"],
             [(line,) for line in boot.blame])
    text = json.dumps(figures, indent=2, sort_keys=True)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


def _load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


if __name__ == "__main__":
    sys.exit(main())
