"""Tasks about the nightly run: nightly, merge-reports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Exit, task
from invoke.context import Context as InvokeContext

from kiln import lockfile
from kiln import report as reports
from kiln.commands.common import kiln_task
from kiln.context import Context
from kiln.errors import KilnError
from kiln.load import Project
from kiln.report import COLUMNS, NightlyReport
from kiln.ui import UI

if TYPE_CHECKING:  # publishing's libraries load in the task
    from kiln.nightly import Result

TASKS = ("nightly", "merge_reports")


def show(ui: UI, report: NightlyReport) -> None:
    if report.changed:
        ui.table(f"kiln nightly ({report.started} -> {report.finished})", COLUMNS,
                 report.rows())
    ui.result(report.headline())


@task(help={
    "only": "process only these images (a,b): one CI runner per image; parents are reused",
    "report": "write nightly.md, nightly.json (and commit-message.txt) into this folder",
    "commit": "git commit the refreshed lock files, with the package diff as the message",
    "no_refresh": "do not refresh the package locks (rebuild what the tree says changed)",
    "verbose": "show progress and the build output as it streams (default: the report only)",
    "json": "print the report as JSON",
    "pull_parents": "take parent images from the registry when their definitions are published "
                    "there (signature and fingerprint checked; docs/nightly.md), else build them",
    "deploy": "then roll each released image to the fleet: its candidate services (canaries), "
              "then, all healthy, promote stable and roll its stable services (docs/fleet.md)"})
@kiln_task
def nightly(c: InvokeContext, only: str | None = None, report: str | None = None,
            commit: bool = False, no_refresh: bool = False, verbose: bool = False,
            json: bool = False, deploy: bool = False, pull_parents: bool = False) -> None:
    """Refresh locks, rebuild what changed (parents first), verify, publish, move candidate.

    Examples:
      kiln nightly --report out/
      kiln nightly --only nginx --no-refresh
      kiln nightly --only nginx --pull-parents
      kiln nightly --deploy
    """
    from kiln.nightly import Options, run_nightly  # publishing's libraries: loaded here

    ctx = Context.for_command(verbose=verbose, quiet=not verbose)  # a quiet night: one line
    options = Options(only=tuple(only.split(",")) if only else None, refresh=not no_refresh,
                      report_dir=Path(report) if report else None, commit=commit,
                      pull_parents=pull_parents)
    started = time.time()
    result = run_nightly(ctx, options)
    fleet = deploy_released(ctx, result, started, lines=not json) if deploy \
        else []
    if deploy and options.report_dir is not None:
        from kiln.fleet.patch import write_report

        write_report(options.report_dir, fleet)
    if json:
        ctx.ui.json({**result.report.to_json(), "fleet": fleet} if deploy else
                    result.report.to_json())
    else:
        show(ctx.ui, result.report)
        if result.commit_message:
            ctx.ui.result("\nlock changes (commit message"
                          + (", committed" if result.committed else "; `--commit` commits it")
                          + "):\n")
            ctx.ui.out.print(result.commit_message, markup=False, highlight=False)
    if result.report.failed:
        raise Exit("nightly: some images or VM disks failed (see the report)", code=1)
    if any(f["problem"] for f in fleet):
        raise Exit("nightly: some rollouts failed or were not made (see the fleet lines)",
                   code=1)


def deploy_released(ctx: Context, result: Result, started: float,
                    lines: bool = True) -> list[dict[str, Any]]:
    """Roll every image this night moved to candidate out to its services; say which now run
    the fix (kiln.fleet.patch)."""
    from kiln.fleet.patch import deploy_released as roll  # the fleet, only when asked

    return roll(ctx, result.report.outcomes, ctx.ui, started=started, lines=lines)


@task(name="merge-reports", positional=["folder"], help={
    "folder": "a folder holding per-image reports (any */nightly.json below it)",
    "out": "write the merged nightly.md, nightly.json and commit-message.txt here",
    "commit": "git commit the lock files of the rebuilt images (copied into images/ first)",
    "json": "print the merged report as JSON"})
@kiln_task
def merge_reports(c: InvokeContext, folder: str, out: str | None = None, commit: bool = False,
                  json: bool = False) -> None:
    """Merge the per-image reports of a fanned-out nightly (a CI matrix) into one.

    Examples:
      kiln merge-reports reports/ --out merged/
    """
    from kiln.nightly import commit_locks, commit_message

    found = sorted(Path(folder).rglob("nightly.json"))
    if not found:
        raise KilnError(f"{folder}: no nightly.json below it (download the jobs' reports here)")
    merged = reports.merge([reports.read(path) for path in found])
    try:  # the graph, coloured by the merged statuses, when run in the project
        from dataclasses import replace

        from kiln.nightly import status_graph
        from kiln.pipeline import validate

        merged = replace(merged, graph=status_graph(validate(Project.find()), merged.outcomes))
    except KilnError:
        pass
    changes = {o.image: o.packages for o in merged.outcomes
               if o.status == "rebuilt" and o.packages}
    message = commit_message(changes)
    if out:
        merged.write(Path(out))
        if message:
            (Path(out) / "commit-message.txt").write_text(message)
    ui = UI()
    if json:
        ui.json(merged.to_json())
    else:
        show(ui, merged)
        if message:
            ui.out.print("\n" + message, markup=False, highlight=False)
    if message and commit:
        root = Project.find().root
        commit_locks(root, [lockfile.shown(image) for image in changes], message)
        ui.info("committed the lock files of the rebuilt images")
    if merged.failed:
        raise Exit("nightly: some images or VM disks failed (see the report)", code=1)
