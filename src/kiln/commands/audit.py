"""`kiln audit <image>`: lynis's hardening index of an image, recorded beside its verification."""

from __future__ import annotations

from invoke import task
from invoke.context import Context as InvokeContext

from kiln.audit import AuditError, audit_container, save
from kiln.commands.common import kiln_task, run_context
from kiln.commands.verify import built

TASKS = ("audit",)


@task(positional=["image"], help={
    "image": "image name (images/<name>.yaml); it must be built",
    "target": "container (default); vm is not audited yet (docs/hardening.md)",
    "verbose": "show more of what happens",
    "json": "print the audit record as JSON"})
@kiln_task
def audit(c: InvokeContext, image: str, target: str = "container", verbose: bool = False,
          json: bool = False) -> None:
    """Audit an image with lynis (from the host, never installed in it); record the index."""
    if target != "container":
        raise AuditError(f"--target {target}: only container images are audited so far "
                         "(a booted VM is not yet; see docs/hardening.md)")
    ctx = run_context(verbose)
    subject = built(ctx, image)
    with ctx.ui.task(f"audit {image} ({subject.image_id[7:19]})"):
        record = audit_container(ctx.engine, subject, ctx.ui)
    path = save(ctx.project.root, record)
    if json:
        ctx.ui.json(record.to_json())
        return
    rows = [("warning", f.test, f.text) for f in record.warnings]
    rows += [("suggestion", f.test, f.text) for f in record.suggestions]
    ctx.ui.table(f"kiln audit {image}: lynis {record.lynis}", ["kind", "test", "finding"], rows)
    minimum = subject.plan.image.audit_min_index
    verdict = "" if minimum is None else (
        f" (audit_min_index {minimum}: " + ("ok)" if record.index >= minimum else
                                            "[bold red]too low, publishing refuses it[/])"))
    ctx.ui.info(f"[bold]{image}[/] {subject.image_id[7:19]}: hardening index "
                f"[bold]{record.index}[/]{verdict}, {len(record.warnings)} warnings, "
                f"{len(record.suggestions)} suggestions in {record.seconds:.0f}s; "
                f"recorded in {path}")
