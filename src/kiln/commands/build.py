"""Tasks about definitions and building: render, build, images, layers, check, docs."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task
from kiln.context import Context
from kiln.hermetic import check_lock, parse_secret_args
from kiln.load import Project
from kiln.pipeline import build_all, build_image, validate
from kiln.render import write_context_dir
from kiln.ui import UI
from kiln.vm.build import build_disks, disk_table

TASKS = ("render", "build", "images", "layers", "check", "docs")


@task(help={"image": "image name (images/<name>.yaml)",
            "context": "also write the build context into this folder",
            "json": "print the Dockerfile, fingerprint and context as JSON"})
@kiln_task
def render(c: InvokeContext, image: str, context: str | None = None, json: bool = False) -> None:
    """Print the Dockerfile kiln renders for an image (deterministic: same inputs, same bytes).

    It is the Dockerfile build would run: with packages, that needs a lock that fits the
    definitions, and render refuses without one, with build's own error.

    Examples:
      kiln render nginx
      kiln render nginx --context /tmp/nginx-context
      kiln render nginx --json
    """
    ctx = Context.for_command()
    validate(ctx.project)
    prepared = ctx.prepared(image)
    check_lock(ctx.project.root, prepared.plan)  # what build would refuse, render refuses
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
    """Build an image (its base images first), then verify it; `all` builds every one.

    Examples:
      kiln build nginx
      kiln build all
      kiln build python,nginx --json
      kiln build nginx --keep
      kiln build base-vm --target vm --format vmdk,vhd
    """
    ctx = Context.for_command(verbose=verbose, nocache=no_cache, force=force,
                              verify=not no_verify, keep=keep,
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
    for r in results:  # one line per image, whole refs: what a CI log is searched for
        ctx.ui.result(f"{r.image}: {r.action} {r.ref} ({r.image_id}) in {r.seconds:.1f}s, "
                      + ("verified" if verified[r.image] else "NOT verified"))


@task(help={"json": "print as JSON"})
@kiln_task
def images(c: InvokeContext, json: bool = False) -> None:
    """List the images this project defines: base, layers, fingerprint.

    Examples:
      kiln images
      kiln images --json
    """
    ctx = Context.for_command()
    plans = validate(ctx.project)
    rows = []
    for plan in plans:
        prepared = ctx.prepared(plan.image.name)
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
    """List the layers this project defines.

    Examples:
      kiln layers
      kiln layers --json
    """
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


@task(help={"json": "print the images checked as JSON"})
@kiln_task
def check(c: InvokeContext, json: bool = False) -> None:
    """Validate every definition; print each problem as path:line: message (hint).

    Examples:
      kiln check
      kiln check --json
    """
    plans = validate(Project.find())
    if json:
        UI().json({"valid": True, "images": sorted(p.image.name for p in plans)})
        return
    UI().result(f"{len(plans)} images and their layers are valid")


@task(help={"json": "print the file written as JSON"})
@kiln_task
def docs(c: InvokeContext, json: bool = False) -> None:
    """Regenerate docs/definitions.md from the table of definition keys.

    Examples:
      kiln docs
    """
    from kiln.docs import definitions_markdown

    path = Project.find().root / "docs" / "definitions.md"
    path.write_text(definitions_markdown())
    if json:
        UI().json({"wrote": str(path)})
        return
    UI().result(f"wrote {path}")
