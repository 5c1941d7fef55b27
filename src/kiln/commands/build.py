"""Tasks about definitions and building: render, build, images, layers, check, docs."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task, run_context
from kiln.hermetic import parse_secret_args
from kiln.load import Project
from kiln.pipeline import build_all, build_image, prepare, validate
from kiln.render import write_context_dir
from kiln.ui import UI
from kiln.vm.build import build_disks, disk_table

TASKS = ("render", "build", "images", "layers", "check", "docs")


@task(help={"image": "image name (images/<name>.yaml)",
            "context": "also write the build context into this folder",
            "json": "print the Dockerfile, fingerprint and context as JSON"})
@kiln_task
def render(c: InvokeContext, image: str, context: str | None = None, json: bool = False) -> None:
    """Print the Dockerfile kiln renders for an image (deterministic: same inputs, same bytes)."""
    project = Project.find()
    validate(project)
    prepared = prepare(project, image)
    if context:
        write_context_dir(Path(context), prepared.rendered.dockerfile, prepared.entries)
    if json:
        UI().json({"image": image, "fingerprint": prepared.fingerprint, "ref": prepared.ref,
                   "base": prepared.base_ref, "dockerfile": prepared.rendered.dockerfile,
                   "context": [e.arcname for e in prepared.entries]})
    else:
        sys.stdout.write(prepared.rendered.dockerfile)


@task(positional=["image"], iterable=["secret"], help={
    "image": "image name, several as a,b, or 'all' for every image (parents first)",
    "no_cache": "do not use the engine's build cache (implies a rebuild)",
    "force": "rebuild even when the fingerprint is unchanged",
    "verbose": "show the build output as it streams",
    "no_verify": "skip verification (loudly): the image is left unverified",
    "keep": "keep the verification container, and print how to enter it",
    "target": "container or vm (default: every target of the image)",
    "format": "disk formats beside raw and qcow2, as vmdk,vhd (with the vm target)",
    "json": "print the results as JSON",
    "secret": "id=FILE: a build secret a layer declares (repeatable; or KILN_SECRET_<ID>)"})
@kiln_task
def build(c: InvokeContext, image: str, no_cache: bool = False, force: bool = False,
          verbose: bool = False, no_verify: bool = False, keep: bool = False,
          target: str | None = None, json: bool = False,
          secret: list[str] | None = None, format: str | None = None) -> None:
    """Build an image (its base images first), then verify it; `all` builds every one."""
    ctx = run_context(verbose, nocache=no_cache, force=force, verify=not no_verify, keep=keep,
                      secrets=parse_secret_args(secret or []))
    validate(ctx.project)
    if image == "all":
        results = build_all(ctx)
    else:
        results = [build_image(ctx, name) for name in image.split(",")]
    verified = {r.image: ctx.verified[r.image].passed for r in results}
    disks = build_disks(ctx, [r.image for r in results], target, explicit=image != "all",
                        formats=format)
    if json:
        ctx.ui.json([{**r.to_json(), "verified": verified[r.image]} for r in results]
                    + [d.to_json() for d in disks])
        return
    ctx.ui.table("kiln build", ["image", "action", "id", "tags", "seconds", "verified"], [
        (r.image, r.action, r.image_id[7:19], ", ".join(r.tags), f"{r.seconds:.1f}",
         "yes" if verified[r.image] else "NO") for r in results])
    if disks:
        disk_table(ctx.ui, disks)


@task(help={"json": "print as JSON"})
@kiln_task
def images(c: InvokeContext, json: bool = False) -> None:
    """List the images this project defines: base, layers, fingerprint."""
    project = Project.find()
    plans = validate(project)
    rows = []
    for plan in plans:
        prepared = prepare(project, plan.image.name)
        rows.append({"image": plan.image.name, "version": plan.image.version,
                     "base": prepared.base_ref, "layers": [la.name for la in plan.layers],
                     "fingerprint": prepared.fingerprint, "ref": prepared.ref})
    if json:
        UI().json(rows)
        return
    UI().table("kiln images", ["image", "version", "base", "layers", "ref"], [
        (r["image"], r["version"], r["base"], ", ".join(r["layers"]), r["ref"]) for r in rows])


@task(help={"json": "print as JSON"})
@kiln_task
def layers(c: InvokeContext, json: bool = False) -> None:
    """List the layers this project defines."""
    project = Project.find()
    project.check_all()
    found = [project.layer(name) for name in project.layer_names()]
    if json:
        UI().json([{"layer": la.name, "description": la.description,
                    "requires": list(la.requires), "packages": list(la.packages)}
                   for la in found])
        return
    UI().table("kiln layers", ["layer", "requires", "packages", "description"], [
        (la.name, ", ".join(la.requires), ", ".join(la.packages), la.description)
        for la in found])


@task
@kiln_task
def check(c: InvokeContext) -> None:
    """Validate every definition; print each problem as path:line: message (hint)."""
    plans = validate(Project.find())
    UI().result(f"{len(plans)} images and their layers are valid")


@task
@kiln_task
def docs(c: InvokeContext) -> None:
    """Regenerate docs/definitions.md from the table of definition keys."""
    from kiln.docs import definitions_markdown

    path = Project.find().root / "docs" / "definitions.md"
    path.write_text(definitions_markdown())
    UI().result(f"wrote {path}")
