"""What every task shares: kiln's error handling and its flags. The run's context is made by
kiln.context.Context.for_command, in every task that needs one.

Tasks call the package and turn kiln's errors into `Exit(message)`: one line per problem, no
traceback. `--debug` (or KILN_DEBUG=1) shows the traceback. A `--help` that invoke's parser
handed to a task as an argument value shows the task's help instead of running it.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Exit
from invoke.tasks import Task

from kiln.errors import KilnError
from kiln.prog import localise

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return bool(os.environ.get("KILN_DEBUG")) or logging.getLogger("invoke").isEnabledFor(
        logging.DEBUG)


# One meaning per short flag across every task (invoke would otherwise give each task the
# first free letter of each option, so `-j` was --json on one task and --junit on another).
# Options not listed here have no short flag.
SHORT_FLAGS = {"json": "j", "verbose": "v", "force": "f", "keep": "k", "target": "t",
               "output": "o"}
HELP_WORDS = ("--help", "-h")


class KilnTask(Task[Any]):
    """An invoke task with kiln's short flags, whose help survives being asked for twice."""

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        self.auto_shortflags = False
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(opts["names"][0])
        if short and not opts["positional"]:
            opts["names"].append(short)
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> Any:
        # invoke pops each help text as it reads it; a help page reads the arguments again.
        kept = dict(self.help)
        try:
            return super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept


def asks_for_help(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    values = [*args, *kwargs.values()]
    return any(v in HELP_WORDS or (isinstance(v, list) and any(x in HELP_WORDS for x in v))
               for v in values if isinstance(v, str | list))


def kiln_task(fn: F) -> F:
    """Run a task body with kiln's error handling: KilnError -> Exit(message, 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if asks_for_help(args[1:], kwargs):
            # invoke's parser takes `build --help` as the image called "--help"
            from kiln.cli import show_task_help

            show_task_help(wrapper)
            return None
        # SIGTERM unwinds like Ctrl-C, so every `finally` (containers, temp dirs) runs.
        signal.signal(signal.SIGTERM, terminate)
        try:
            return fn(*args, **kwargs)
        except KilnError as exc:
            if debug_enabled():
                raise
            raise Exit(localise(f"error: {exc}"), code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
