"""Tasks about hermetic, reproducible builds: plan, lock, diff-builds."""

from __future__ import annotations

from invoke import task
from invoke.context import Context as InvokeContext

from kiln import planner
from kiln.commands.common import kiln_task
from kiln.engine import Engine
from kiln.errors import EngineError
from kiln.load import Project
from kiln.ui import UI

TASKS = ("plan",)


def _names(project: Project, image: str) -> list[str] | None:
    return None if image in ("all", "") else image.split(",")


@task(positional=["image"], help={
    "image": "image name, several as a,b, or 'all' (default)",
    "json": "print the plan as JSON",
    "matrix": "print a CI matrix of the images to build, grouped by dependency level"})
@kiln_task
def plan(c: InvokeContext, image: str = "all", json: bool = False, matrix: bool = False) -> None:
    """Per image: build or skip, and why (which input changed since the last build)."""
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
