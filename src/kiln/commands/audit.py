"""`kiln audit <image>`: lynis's hardening index of an image, recorded beside its verification."""

from __future__ import annotations

from typing import Literal, cast

from invoke import task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task
from kiln.context import Context

TASKS = ("audit",)


@task(positional=["image"], help={
    "image": "image name (images/<name>.yaml); it must be built",
    "target": "container (default), or vm: boot the built disk under qemu, copy lynis in over SSH",
    "accel": "vm: auto (KVM when a short test boot works, else TCG), kvm or tcg",
    "verbose": "show more of what happens",
    "json": "print the audit record as JSON"})
@kiln_task
def audit(c: InvokeContext, image: str, target: str = "container", accel: str = "auto",
          verbose: bool = False, json: bool = False) -> None:
    """Audit an image with lynis (from the host, never installed in it); record the index.

    Examples:
      kiln audit base
      kiln audit base --json
      kiln audit base-vm --target vm
    """
    from kiln.audit import AuditError, audit_container, save  # docker-py: loaded here
    from kiln.commands.verify import built

    if target not in ("container", "vm"):
        raise AuditError(f"--target {target}: use container or vm")
    if accel not in ("auto", "kvm", "tcg"):
        raise AuditError(f"--accel {accel}: use auto, kvm or tcg")
    ctx = Context.for_command(verbose=verbose)
    if target == "vm":
        from kiln.audit_vm import audit_vm  # qemu and paramiko: only for VMs
        with ctx.ui.task(f"audit {image} (vm)"):
            record = audit_vm(ctx, image, accel=cast(Literal["auto", "kvm", "tcg"], accel))
        minimum = ctx.prepared(image).plan.image.audit_min_index
    else:
        subject = built(ctx, image)
        with ctx.ui.task(f"audit {image} ({subject.image_id[7:19]})"):
            record = audit_container(ctx.engine, subject, ctx.ui)
        minimum = subject.plan.image.audit_min_index
    path = save(ctx.project.root, record)
    if json:
        ctx.ui.json(record.to_json())
        return
    rows = [("warning", f.test, f.text) for f in record.warnings]
    rows += [("suggestion", f.test, f.text) for f in record.suggestions]
    ctx.ui.table(f"kiln audit {image}: lynis {record.lynis}", ["kind", "test", "finding"], rows)
    verdict = "" if minimum is None else (
        f" (audit_min_index {minimum}: " + ("ok)" if record.index >= minimum else
                                            "[bold red]too low, publishing refuses it[/])"))
    ctx.ui.info(f"[bold]{image}[/] {record.image_id[7:19]} ({record.target}): hardening index "
                f"[bold]{record.index}[/]{verdict}, {len(record.warnings)} warnings, "
                f"{len(record.suggestions)} suggestions in {record.seconds:.0f}s; "
                f"recorded in {path}")
