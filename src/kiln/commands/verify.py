"""Tasks about verification: verify an image's suite against a container of it; open a shell."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

from invoke import Exit, task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task
from kiln.context import Context
from kiln.errors import KilnError
from kiln.pipeline import move_verified_tags, validate
from kiln.testsuite import Target, VerifyError, failure_lines, override_lines, per_layer
from kiln.verify import open_shell, summary
from kiln.verify import verify as run_verify

TASKS = ("verify", "shell")


def built(ctx: Context, name: str) -> Target:
    """The image as its definition stands now, which must be built already."""
    prepared = ctx.prepared(name)
    image_id = ctx.engine.image_id(prepared.ref)
    if image_id is None:
        raise KilnError(f"{prepared.plan.image.path}: '{name}' is not built at its current "
                        f"definition ({prepared.ref} is missing; run `invoke build {name}`)")
    return Target(prepared.plan, prepared.ref, image_id, prepared.fingerprint)


@task(positional=["image"], help={
    "image": "image name (images/<name>.yaml); it must be built",
    "target": "container (default), or vm: boot the built disk under qemu, test over SSH",
    "junit": "also write the results as JUnit XML to this file (for CI)",
    "keep": "keep the container afterwards, and print how to enter it",
    "boot": "vm: boot mode to verify, bios, uefi or bios+uefi (default: the disk's modes)",
    "accel": "vm: auto (KVM when a short test boot works, else TCG), kvm or tcg",
    "timeout": "vm: seconds to wait for SSH (default: 120 under KVM, 900 under TCG)",
    "disk_format": "vm: the file to boot, raw (default), qcow2, vmdk or vhd (build --format)",
    "verbose": "show more of what happens",
    "json": "print the verification record as JSON"})
@kiln_task
def verify(c: InvokeContext, image: str, target: str = "container", junit: str | None = None,
           keep: bool = False, boot: str | None = None, accel: str = "auto",
           timeout: float | None = None, verbose: bool = False, json: bool = False,
           disk_format: str = "raw") -> None:
    """Run an image's suite (its layers' tests) against a throwaway container or VM; record it.

    Examples:
      kiln verify nginx
      kiln verify nginx --junit report.xml
      kiln verify base-vm --target vm
      kiln verify base-vm --target vm --disk-format vmdk
    """
    if target == "vm":
        verify_disk(image, boot=boot, accel=accel, timeout=timeout, verbose=verbose, json=json,
                    disk_format=disk_format)
        return
    if target != "container":
        raise KilnError(f"--target {target}: use container or vm")
    ctx = Context.for_command(verbose=verbose)
    subject = built(ctx, image)
    with ctx.ui.task(f"verify {image} ({subject.image_id[7:19]})"):
        verification = run_verify(ctx.engine, ctx.project.root, subject, ctx.ui,
                                  junit=Path(junit) if junit else None, keep=keep)
    record = verification.record
    if json:
        ctx.ui.json(record.to_json())
    else:
        ctx.ui.table(f"kiln verify {image}", ["layer", "passed", "failed", "errors", "skipped"],
                     per_layer(record))
        for line in override_lines(record) + failure_lines(record):
            ctx.ui.out.print(line, markup=False, highlight=False)
        ctx.ui.info(summary(record))
    if not record.passed:
        raise VerifyError(f"{subject.plan.image.path}: '{image}' failed verification: "
                          f"{record.reason}")
    # verified now: `latest` and the version may name it (a failed build left them behind)
    move_verified_tags(ctx.engine, ctx.prepared(image), subject.image_id)


@task(positional=["image"], help={
    "image": "image name (images/<name>.yaml); it must be built",
    "user": "the user the shell runs as (default: the image's user)"})
@kiln_task
def shell(c: InvokeContext, image: str, user: str | None = None) -> None:
    """Open a shell in a fresh container of an image (removed when the shell exits).

    Examples:
      kiln shell nginx
      kiln shell nginx --user root
    """
    ctx = Context.for_command()
    code = open_shell(ctx.engine, built(ctx, image), ctx.ui, user=user)
    if code:
        raise Exit(code=code)  # the shell's own status, as `docker exec` would give it


def verify_disk(image: str, *, boot: str | None, accel: str, timeout: float | None,
                verbose: bool, json: bool, disk_format: str = "raw") -> None:
    """`verify --target vm`: boot a throwaway copy of the built disk, run the suite over SSH."""
    from kiln.vm.verify import verify_vm  # qemu's and SSH's libraries: loaded here

    if accel not in ("auto", "kvm", "tcg"):
        raise KilnError(f"--accel {accel}: use auto, kvm or tcg")
    ctx = Context.for_command(verbose=verbose)
    validate(ctx.project)
    result = verify_vm(ctx, image, boot=boot, accel=cast(Literal["auto", "kvm", "tcg"], accel),
                       ssh_timeout=timeout, disk_format=disk_format)
    record = result.record
    if json:
        ctx.ui.json(record.to_json())
        return
    ctx.ui.table(f"kiln verify {image} --target vm: boots",
                 ["boot", "accel", "ssh (s)", "booted (s)", "tests (s)"],
                 [(b.mode, b.accel, f"{b.ssh_seconds:.1f}", f"{b.booted_seconds:.1f}",
                   f"{b.test_seconds:.1f}") for b in result.boots])
    ctx.ui.table(f"kiln verify {image} --target vm: checks",
                 ["layer", "passed", "failed", "errors", "skipped"], per_layer(record))
    for line in override_lines(record):
        ctx.ui.out.print(line, markup=False, highlight=False)
    counts = record.counts
    ctx.ui.result(f"{image}: verified as a VM, {counts['passed']} checks passed "
                  f"({record.seconds:.0f}s)")
