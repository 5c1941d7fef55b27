"""Tasks for the day-to-day: prune what kiln made and no longer needs."""

from __future__ import annotations

from invoke import task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task, run_context

TASKS = ("prune",)


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

    ctx = run_context()
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
