"""Tasks about verification: verify an image's suite against a container of it; open a shell."""

from __future__ import annotations

from pathlib import Path

from invoke import Exit, task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task, run_context
from kiln.errors import KilnError
from kiln.pipeline import Context, prepare
from kiln.verify import Target, VerifyError, failure_lines, open_shell, per_layer, summary
from kiln.verify import verify as run_verify

TASKS = ("verify", "shell")


def built(ctx: Context, name: str) -> Target:
    """The image as its definition stands now, which must be built already."""
    prepared = prepare(ctx.project, name)
    image_id = ctx.engine.image_id(prepared.ref)
    if image_id is None:
        raise KilnError(f"{prepared.plan.image.path}: '{name}' is not built at its current "
                        f"definition ({prepared.ref} is missing; run `invoke build {name}`)")
    return Target(prepared.plan, prepared.ref, image_id, prepared.fingerprint)


@task(positional=["image"], help={
    "image": "image name (images/<name>.yaml); it must be built",
    "junit": "also write the results as JUnit XML to this file (for CI)",
    "keep": "keep the container afterwards, and print how to enter it",
    "verbose": "show more of what happens",
    "json": "print the verification record as JSON"})
@kiln_task
def verify(c: InvokeContext, image: str, junit: str | None = None, keep: bool = False,
           verbose: bool = False, json: bool = False) -> None:
    """Run an image's suite (its layers' tests) against a throwaway container; record it."""
    ctx = run_context(verbose)
    target = built(ctx, image)
    with ctx.ui.task(f"verify {image} ({target.image_id[7:19]})"):
        verification = run_verify(ctx.engine, ctx.project.root, target, ctx.ui,
                                  junit=Path(junit) if junit else None, keep=keep)
    record = verification.record
    if json:
        ctx.ui.json(record.to_json())
    else:
        ctx.ui.table(f"kiln verify {image}", ["layer", "passed", "failed", "errors", "skipped"],
                     per_layer(record))
        for line in failure_lines(record):
            ctx.ui.out.print(line, markup=False, highlight=False)
        ctx.ui.info(summary(record))
    if not record.passed:
        raise VerifyError(f"{target.plan.image.path}: '{image}' failed verification: "
                          f"{record.reason}")


@task(positional=["image"], help={
    "image": "image name (images/<name>.yaml); it must be built",
    "user": "the user the shell runs as (default: the image's user)"})
@kiln_task
def shell(c: InvokeContext, image: str, user: str | None = None) -> None:
    """Open a shell in a fresh container of an image (removed when the shell exits)."""
    ctx = run_context()
    code = open_shell(ctx.engine, built(ctx, image), ctx.ui, user=user)
    if code:
        raise Exit(code=code)  # the shell's own status, as `docker exec` would give it
