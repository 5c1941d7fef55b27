"""Tasks about hermetic, reproducible builds: plan, lock, diff-builds."""

from __future__ import annotations

from invoke import Exit, task
from invoke.context import Context as InvokeContext

from kiln import aptlock, planner
from kiln.commands.common import kiln_task
from kiln.context import Context, Prepared
from kiln.engine import Engine
from kiln.errors import EngineError
from kiln.imagediff import diff_images
from kiln.load import Project
from kiln.pipeline import build_image, ensure_base, validate
from kiln.ui import UI

TASKS = ("plan", "lock", "diff_builds")


def _names(project: Project, image: str | None) -> list[str] | None:
    return None if image in ("all", "", None) else image.split(",")


@task(positional=["image"], help={
    "image": "image name, several as a,b, or 'all' for every image",
    "json": "print the plan as JSON",
    "matrix": "print a CI matrix of the images to build, grouped by dependency level"})
@kiln_task
def plan(c: InvokeContext, image: str, json: bool = False,
         matrix: bool = False) -> None:
    """Per image: build or skip, and why (which input changed since the last build).

    Examples:
      kiln plan all
      kiln plan nginx --json
      kiln plan all --matrix
    """
    project = Project.find()
    try:
        engine: Engine | None = Engine.connect()
    except EngineError:
        engine = None  # decide from the recorded inputs alone
    rows = planner.plan(project, _names(project, image), engine)
    ui = UI()
    if matrix:
        ui.json(planner.matrix(rows))
        return
    if json:
        ui.json([r.to_json() for r in rows])
        return
    ui.table("kiln plan", ["image", "action", "why", "rebuilds below"], [
        (r.image, r.action, r.reason, ", ".join(r.rebuilds_below)) for r in rows])
    for r in rows:
        if r.action == "build" and len(r.changes) > 3:
            ui.result(f"{r.image}: every change")
            for change in r.changes:
                ui.result(f"  {change}")


@task(positional=["image"], help={
    "image": "image name, several as a,b, or 'all' for every image",
    "refresh": "resolve again even when the lock fits, taking what the mirror has now",
    "verbose": "show build output (parent images are built to resolve their children)",
    "json": "print the changes as JSON"})
@kiln_task
def lock(c: InvokeContext, image: str, refresh: bool = False, verbose: bool = False,
          json: bool = False) -> None:
    """Resolve every package (dependencies included) of images into images/<name>.lock.

    A parent image is built first when missing (apt resolves in a container of it), but
    nothing is verified: `kiln build` does that.

    Examples:
      kiln lock nginx
      kiln lock all --refresh
    """
    # locking builds a missing parent, verifies nothing
    ctx = Context.for_command(verbose=verbose, verify=False)
    names = _names(ctx.project, image)
    updates = []
    for plan_ in validate(ctx.project):
        if names is not None and plan_.image.name not in names:
            continue
        prepared = ctx.prepared(plan_.image.name)

        def base_ref(prepared: Prepared = prepared) -> str:
            ensure_base(ctx, prepared)  # a parent image is built (from its own lock) first
            return prepared.base_ref

        update = aptlock.update(ctx.engine, plan_, base_ref, ctx.project.root, refresh=refresh)
        if update.changed:
            ctx.forget(plan_.image.name)  # a child built next builds on its new lock
        updates.append(update)
        if not json:
            state = "updated" if update.changed else "unchanged"
            ctx.ui.result(f"{update.path}: {state}" + (
                f" ({len(update.diff)} package changes)" if update.diff else ""))
            for line in update.diff:
                ctx.ui.result(f"  {line}")
    if json:
        ctx.ui.json([{"image": u.image, "lock": u.path, "changed": u.changed,
                      "diff": list(u.diff)} for u in updates])


@task(name="diff-builds", help={"image": "image name",
                                "verbose": "show the build output as it streams",
                                "json": "print the result as JSON"})
@kiln_task
def diff_builds(c: InvokeContext, image: str, verbose: bool = False, json: bool = False) -> None:
    """Build an image twice (the second time without cache) and list the files that differ.

    Examples:
      kiln diff-builds base
    """
    ctx = Context.for_command(verbose=verbose, force=True)
    validate(ctx.project)
    first = build_image(ctx, image)
    keep = f"kiln-diff/{image}:first"
    ctx.engine.tag(first.image_id, keep)
    try:
        for tag in first.tags:
            ctx.engine.remove_image(tag)
        again = Context.for_command(verbose=verbose, force=True, nocache=True)
        second = build_image(again, image)
        lines = [] if first.image_id == second.image_id else list(
            diff_images(ctx.engine, keep, second.ref))
    finally:
        ctx.engine.remove_image(keep)
    if json:
        ctx.ui.json({"image": image, "first": first.image_id, "second": second.image_id,
                     "reproducible": first.image_id == second.image_id, "differences": lines})
        return
    if first.image_id == second.image_id:
        ctx.ui.result(f"{image}: reproducible, both builds are {first.image_id}")
        return
    ctx.ui.result(f"{image}: NOT reproducible: {first.image_id[:19]} vs {second.image_id[:19]}")
    for line in lines:
        ctx.ui.result(f"  {line}")
    raise Exit(f"{image}: {len(lines)} differences between two builds of the same inputs", 1)
