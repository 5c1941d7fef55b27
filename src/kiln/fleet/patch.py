"""Patch to fleet: after a night, take every image it released to `candidate` to its services.

For each such image (kiln.fleet.deploy.roll_channels): the services that follow
`<image>:candidate` (the canaries) roll to it; when all of them are healthy, `candidate` is
promoted to `stable` and the services that follow `<image>:stable` roll. What each service now
runs is reported with the fix it carries (the night's package changes for that image), and the
time from the night's start to the last task replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kiln.context import Context
from kiln.fleet.deploy import roll_channels
from kiln.nightly import CHANNEL
from kiln.report import ImageOutcome
from kiln.ui import UI


def deploy_released(s: Context, outcomes: Iterable[ImageOutcome], ui: UI, *,
                    started: float | None = None, lines: bool = True) -> list[dict[str, Any]]:
    """Roll every image a night moved to `candidate` out to its services; one JSON object per
    image: canaries, promoted, rolled (each service with its digest, canary, `finished`),
    `fix` and `problem`. `started`: the night's wall clock start (for `seconds_to_fleet`)."""
    out = []
    for outcome in outcomes:
        if outcome.status != "rebuilt" or CHANNEL not in outcome.channels:
            continue
        roll = roll_channels(s, outcome.image)
        fix = [str(p) for p in outcome.packages]
        for d in (*roll.canaries, *roll.rolled) if lines else ():
            ui.result(f"fleet: {d.service} now runs {outcome.image} {d.digest[:19]} "
                      f"({d.follows}; {', '.join(fix) or outcome.reason})")
        if roll.problem:
            ui.warn(f"fleet: {outcome.image}: {roll.problem}")
        done = [d.finished for d in (*roll.canaries, *roll.rolled) if d.finished]
        out.append({**roll.to_json(), "fix": fix, "reason": outcome.reason,
                    "seconds_to_fleet": round(max(done) - started, 1)
                    if done and started else None})
    return out


def write_report(folder: Path, fleet: list[dict[str, Any]]) -> None:
    """fleet.json, and a Fleet section appended to the night's nightly.md."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fleet.json").write_text(json.dumps(fleet, indent=2, sort_keys=True) + "\n")
    with (folder / "nightly.md").open("a") as md:
        md.write("\n" + to_markdown(fleet))


def to_markdown(fleet: list[dict[str, Any]]) -> str:
    lines = ["## Fleet", ""]
    if not fleet:
        lines.append("No image was released to candidate tonight: no service was rolled.")
    for image in fleet:
        fix = ", ".join(image["fix"]) or image["reason"]
        for d in (*image["canaries"], *image["rolled"]):
            canary = " (canary)" if d in image["canaries"] else ""
            lines.append(f"- `{d['service']}`{canary} now runs {image['image']} "
                         f"`{d['digest'][:19]}` ({d['follows']}): {fix}")
        if image["promoted"]:
            lines.append(f"- {image['image']}: candidate promoted to stable")
        if image["problem"]:
            lines.append(f"- **{image['image']}: {image['problem']}**")
        if image.get("seconds_to_fleet") is not None:
            lines.append(f"- {image['image']}: {image['seconds_to_fleet']}s from the start of "
                         "the night to the last task replaced")
    return "\n".join(lines) + "\n"
