"""Tasks about VM images: verify --target vm (boot the disk under qemu and test it over SSH).

`invoke build <image> --target vm` is the build task's (kiln.commands.build); the disk steps
are in kiln.vm.
"""

from __future__ import annotations

from typing import Literal, cast

from invoke import task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task, run_context
from kiln.errors import KilnError
from kiln.pipeline import validate
from kiln.vm.verify import verify_vm

TASKS = ("verify",)


@task(positional=["image"], help={
    "image": "image name (images/<name>.yaml)",
    "target": "what to verify: vm (boot the built disk under qemu)",
    "boot": "boot mode to verify: bios, uefi or bios+uefi (default: every mode the disk has)",
    "accel": "auto (KVM when a short test boot works, else TCG), kvm or tcg",
    "timeout": "seconds to wait for SSH (default: 120 under KVM, 420 under TCG)",
    "verbose": "show progress in detail",
    "json": "print the verification record as JSON"})
@kiln_task
def verify(c: InvokeContext, image: str, target: str = "vm", boot: str | None = None,
           accel: str = "auto", timeout: float | None = None, verbose: bool = False,
           json: bool = False) -> None:
    """Verify an image's VM disk: boot a throwaway copy, run its testinfra suite over SSH."""
    if target != "vm":
        raise KilnError(f"--target {target}: this task verifies the vm target; containers are "
                        "verified by kiln.verify")
    if accel not in ("auto", "kvm", "tcg"):
        raise KilnError(f"--accel {accel}: use auto, kvm or tcg")
    ctx = run_context(verbose)
    validate(ctx.project)
    result = verify_vm(ctx, image, boot=boot, accel=cast(Literal["auto", "kvm", "tcg"], accel),
                       ssh_timeout=timeout)
    record = result.record
    if json:
        ctx.ui.json(record.to_json())
        return
    ctx.ui.table(f"kiln verify {image} --target vm", ["boot", "accel", "ssh (s)", "tests (s)"], [
        (b.mode, b.accel, f"{b.ssh_seconds:.1f}", f"{b.test_seconds:.1f}") for b in result.boots])
    counts = record.counts
    ctx.ui.result(f"{image}: verified as a VM, {counts['passed']} checks passed "
                  f"({record.seconds:.0f}s)")
