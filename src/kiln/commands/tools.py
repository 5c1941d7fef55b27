"""Tasks for the day-to-day: prune, run an image, scaffold a layer or image, draw the graph."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

from invoke import Exit, task
from invoke.context import Context as InvokeContext

from kiln import session
from kiln.commands.common import kiln_task
from kiln.context import Context
from kiln.errors import KilnError
from kiln.load import Project
from kiln.ui import UI

TASKS = ("run", "new", "graph", "prune")


@task(help={"dry_run": "list what would go and how much it takes, remove nothing",
            "build_cache": "also remove the engine's unused BuildKit cache (all of it: the "
                           "engine cannot tell one build's cache from another's)",
            "json": "print what was (or would be) removed, and the bytes freed, as JSON"})
@kiln_task
def prune(c: InvokeContext, dry_run: bool = False, build_cache: bool = False,
          json: bool = False) -> None:
    """Remove unverified and unreferenced kiln images and stale state; say how much it freed.

    Kept: each image's current, verified build, and whatever `latest`, its version or its
    `tags` name (they move onto verified images only). Nothing kiln did not make is touched,
    except with --build-cache, which takes the engine's unused build cache as a whole.

    Examples:
      kiln prune --dry-run
      kiln prune
      kiln prune --build-cache --json
    """
    from kiln import prune as pruning

    ctx = Context.for_command()
    removals = pruning.find(ctx.project, ctx.engine, build_cache=build_cache)
    total = sum(r.bytes for r in removals)
    freed, failed = (total, []) if dry_run else pruning.remove(ctx.project, ctx.engine, removals)
    if json:
        ctx.ui.json({"dry_run": dry_run, "removed": [r.to_json() for r in removals],
                     "bytes_freed": 0 if dry_run else freed, "bytes_listed": total,
                     "failed": failed})
        return
    if removals:
        ctx.ui.table("kiln prune" + (" --dry-run" if dry_run else ""),
                     ["kind", "what", "why", "size"],
                     [(r.kind, r.name, r.why, pruning.human(r.bytes)) for r in removals])
    for line in failed:
        ctx.ui.warn(f"not removed: {line}")
    counts = {k: sum(r.kind == k for r in removals) for k in ("image", "cache", "state")}
    what = f"{counts['image']} images, {counts['state']} state files" + (
        ", the unused build cache" if counts["cache"] else "")
    if dry_run:
        ctx.ui.result(f"would remove {what}: up to {pruning.human(total)} "
                      "(shared layers are freed once)")
    else:
        ctx.ui.result(f"removed {what}: freed {pruning.human(freed)}")


@task(positional=["image"], iterable=["publish"], help={
    "image": "image name (images/<name>.yaml); it must be built",
    "publish": "HOST:CONTAINER port to publish on 127.0.0.1 instead of the same port "
               "(repeatable)"})
@kiln_task
def run(c: InvokeContext, image: str, publish: list[str] | None = None) -> None:
    """Start an image as in production: ports on 127.0.0.1, logs followed, removed at exit.

    Its own entrypoint, cmd, user, environment and healthcheck; each exposed port is published
    on the loopback under the same number (or as --publish says). Ctrl-C stops it (its stop
    signal) and the container is removed.

    Examples:
      kiln run webapp
      kiln run redis --publish 16379:6379
    """
    from kiln.commands.verify import built
    from kiln.run import interactive

    ctx = Context.for_command()
    target = built(ctx, image)
    cli = shutil.which("docker")
    if cli is None:
        raise KilnError("docker: command not found (kiln run needs the docker CLI)")
    chosen = dict(p.split(":", 1)[::-1] for p in publish or [] if ":" in p)
    ports = []
    for exposed in target.plan.config.expose:
        number, _, proto = exposed.partition("/")
        host_port = chosen.get(number, number)
        ports += ["--publish", f"127.0.0.1:{host_port}:{number}/{proto or 'tcp'}"]
        ctx.ui.info(f"{image}: {exposed} on 127.0.0.1:{host_port}")
    name = f"kiln-run-{image}-{target.image_id[7:15]}"
    ctx.ui.info(f"running {target.ref} as {name} (Ctrl-C stops and removes it)")
    labels = {"dev.kiln.managed": "1", "dev.kiln.purpose": "run", **session.labels()}
    argv = [cli, "run", "--rm", "--name", name,
            *(arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")),
            *ports]
    if sys.stdin.isatty():
        argv.append("-it")
    try:
        code = interactive([*argv, target.ref])
    except KeyboardInterrupt:
        code = 130
    finally:
        # Whatever ended the CLI, the container goes (docker run --rm, and this if it could not)
        with contextlib.suppress(KilnError):
            ctx.engine.remove_container(name)
    if code not in (0, 130, 143):
        raise Exit(f"{image} exited with code {code}", code=code)


@task(positional=["kind", "name"], help={
    "kind": "layer or image",
    "name": "the new layer's or image's name",
    "base": "image: the image it builds on (default: base)",
    "layers": "image: its layers, as a,b (default: the layer of the same name)",
    "json": "print the files written as JSON"})
@kiln_task
def new(c: InvokeContext, kind: str, name: str, base: str = "base", layers: str = "",
        json: bool = False) -> None:
    """Scaffold a layer (with a test) or an image, ready for `kiln check`; overwrites nothing.

    Examples:
      kiln new layer hello
      kiln new image hello --base python
      kiln new image tools --layers core,hello
    """
    from kiln import scaffold

    root = Project.find().root
    if kind == "layer":
        written = scaffold.new_layer(root, name)
    elif kind == "image":
        written = scaffold.new_image(root, name, base, [x for x in layers.split(",") if x])
    else:
        raise KilnError(f"new {kind}: expected `kiln new layer <name>` or `kiln new image <name>`")
    if json:
        UI().json({"kind": kind, "name": name, "written": written})
        return
    for path in written:
        UI().result(f"wrote {path}")
    nxt = f"kiln new image {name}" if kind == "layer" else f"kiln build {name}"
    UI().result(f"next: fill in {written[0]}, run `kiln check`, then `{nxt}`")


@task(help={"format": "mermaid (default, for Markdown), dot, or svg (needs graphviz's dot)",
            "output": "write it to this file instead of stdout",
            "json": "print the images, bases and layers as JSON"})
@kiln_task
def graph(c: InvokeContext, format: str = "mermaid", output: str | None = None,
          json: bool = False) -> None:
    """Draw the images, their bases and layers: Mermaid, DOT, or SVG where graphviz is.

    Examples:
      kiln graph
      kiln graph --format svg --output images.svg
    """
    from kiln import graph as drawing
    from kiln.pipeline import validate

    plans = validate(Project.find())
    if json:
        UI().json([{"image": p.image.name, "parent": p.parent.image.name if p.parent else None,
                    "layers": [la.name for la in p.layers]} for p in plans])
        return
    if format == "mermaid":
        text = drawing.mermaid(plans)
    elif format in ("dot", "svg"):
        text = drawing.dot(plans)
        if format == "svg":
            from kiln.run import run as run_command

            if shutil.which("dot") is None:
                raise KilnError("--format svg needs graphviz (apt-get install graphviz); "
                                "--format dot or mermaid need nothing")
            with tempfile.TemporaryDirectory(prefix="kiln-graph-") as tmp:
                source = Path(tmp, "images.dot")
                source.write_text(text)
                text = run_command(["dot", "-Tsvg", source])
    else:
        raise KilnError(f"--format {format}: use mermaid, dot or svg")
    if output:
        Path(output).write_text(text)
        UI().result(f"wrote {output}")
    else:
        sys.stdout.write(text)
