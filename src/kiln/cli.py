"""Thin invoke tasks over the kiln package; the same collection backs `invoke` and `kiln`.

Tasks call the package and turn kiln's errors into `Exit(message)`: one line per problem, no
traceback. `--debug` (or KILN_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Collection, Exit, Program, task
from invoke.context import Context as InvokeContext

from kiln import __version__
from kiln.engine import Engine
from kiln.errors import KilnError
from kiln.load import Project
from kiln.pipeline import Context, build_all, build_image, prepare, validate
from kiln.render import write_context_dir
from kiln.ui import UI

F = TypeVar("F", bound=Callable[..., Any])


def _debug() -> bool:
    return bool(os.environ.get("KILN_DEBUG")) or logging.getLogger("invoke").isEnabledFor(
        logging.DEBUG)


def kiln_task(fn: F) -> F:
    """Run a task body with kiln's error handling: KilnError -> Exit(message, 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # SIGTERM unwinds like Ctrl-C, so every `finally` (containers, temp dirs) runs.
        signal.signal(signal.SIGTERM, _terminate)
        try:
            return fn(*args, **kwargs)
        except KilnError as exc:
            if _debug():
                raise
            raise Exit(f"error: {exc}", code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def _context(verbose: bool = False, **options: Any) -> Context:
    project = Project.find()
    return Context(project=project, engine=Engine.connect(), ui=UI(verbose=verbose), **options)


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


@task(positional=["image"], help={
    "image": "image name, several as a,b, or 'all' for every image (parents first)",
    "no_cache": "do not use the engine's build cache (implies a rebuild)",
    "force": "rebuild even when the fingerprint is unchanged",
    "verbose": "show the build output as it streams",
    "json": "print the results as JSON"})
@kiln_task
def build(c: InvokeContext, image: str, no_cache: bool = False, force: bool = False,
          verbose: bool = False, json: bool = False) -> None:
    """Build an image (its base images first) on the Docker engine; `all` builds every one."""
    ctx = _context(verbose, nocache=no_cache, force=force)
    validate(ctx.project)
    if image == "all":
        results = build_all(ctx)
    else:
        results = [build_image(ctx, name) for name in image.split(",")]
    if json:
        ctx.ui.json([r.to_json() for r in results])
        return
    ctx.ui.table("kiln build", ["image", "action", "id", "tags", "seconds"], [
        (r.image, r.action, r.image_id[7:19], ", ".join(r.tags), f"{r.seconds:.1f}")
        for r in results])


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


namespace = Collection(render, build, images, layers, check, docs)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    Program(name="kiln", binary="kiln", version=__version__, namespace=namespace).run()
