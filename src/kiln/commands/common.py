"""What every task shares: kiln's error handling and the run context.

Tasks call the package and turn kiln's errors into `Exit(message)`: one line per problem, no
traceback. `--debug` (or KILN_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Exit

from kiln.engine import Engine
from kiln.errors import KilnError
from kiln.load import Project
from kiln.pipeline import Context
from kiln.ui import UI

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return bool(os.environ.get("KILN_DEBUG")) or logging.getLogger("invoke").isEnabledFor(
        logging.DEBUG)


def kiln_task(fn: F) -> F:
    """Run a task body with kiln's error handling: KilnError -> Exit(message, 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # SIGTERM unwinds like Ctrl-C, so every `finally` (containers, temp dirs) runs.
        signal.signal(signal.SIGTERM, terminate)
        try:
            return fn(*args, **kwargs)
        except KilnError as exc:
            if debug_enabled():
                raise
            raise Exit(f"error: {exc}", code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def run_context(verbose: bool = False, **options: Any) -> Context:
    project = Project.find()
    return Context(project=project, engine=Engine.connect(), ui=UI(verbose=verbose), **options)


def terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
