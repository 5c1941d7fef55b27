"""Opening the run's Context (kiln.context) with its registry at once, and the checkpoints of
release operations. The release modules call the Context `s`."""

from __future__ import annotations

import os
import sys
import time

from kiln.config import Config
from kiln.context import Context
from kiln.engine import Engine
from kiln.load import Project
from kiln.ui import UI


def checkpoint(name: str) -> None:
    """A named point in a release operation. KILN_PAUSE_AT=<name> stops there (for the signal
    tests: they interrupt kiln at each phase and check what is left)."""
    if os.environ.get("KILN_PAUSE_AT") == name:
        print(f"kiln: paused at {name}", file=sys.stderr, flush=True)
        time.sleep(600)


def open_session(project: Project, ui: UI, engine: Engine | None = None,
                 config: Config | None = None) -> Context:
    """A Context whose registry is opened now (started when embedded, and checked to answer):
    for tests and benches that talk to the registry first. Commands use Context.for_command,
    which opens it on first use."""
    s = Context(project, engine, ui, config=config)
    s.registry  # noqa: B018 (opened here, on purpose)
    return s
