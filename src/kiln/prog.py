"""The name of the command the user ran (`kiln` or `invoke`), for messages that tell them what
to run next.

Messages throughout kiln are written with the engine's name, "`invoke <task> ...`" in
backticks (invoke runs the tasks behind both commands). What the user sees names the command
they actually typed: `localise` rewrites those references at the two doors to the terminal,
the UI and the error a task exits with. Rendered files (Dockerfiles, locks) are never
localised: their bytes must not depend on how kiln was started.
"""

from __future__ import annotations

import os
import sys

_name: list[str] = []


def set_name(name: str) -> None:
    _name[:] = [name]


def name() -> str:
    """`kiln` unless this process was started as invoke (`invoke` or `inv` with tasks.py)."""
    if _name:
        return _name[0]
    started_as = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return started_as if started_as in ("invoke", "inv") else "kiln"


def localise(message: str) -> str:
    """Name the command the user ran in every "`invoke ...`" (and "`kiln ...`") reference."""
    prog = name()
    if prog == "invoke":
        return message.replace("`kiln ", "`invoke ")
    return message.replace("`invoke ", f"`{prog} ")
