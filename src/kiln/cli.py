"""The task collection behind both `invoke` (tasks.py) and the `kiln` console script.

Each area of kiln keeps its thin tasks in kiln.commands.<area>; this module only assembles them.
invoke parses and runs the tasks for both commands. Where its parser is in a kiln user's way,
`KilnProgram` wraps it: `kiln <task> --help` is help (not an argument value), `kiln --help`
shows kiln's tasks and options (not invoke's core options), and help pages come from
kiln.helptext.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from invoke import Collection, Program
from invoke.tasks import Task

from kiln import __version__, prog
from kiln.commands import audit, build, fleet, hermetic, nightly, publish, tools, verify
from kiln.commands import help as help_tasks
from kiln.commands.common import HELP_WORDS, KilnTask
from kiln.errors import KilnError
from kiln.helptext import program_help, task_help

GROUPS = (("Definitions and builds", build), ("Hermetic builds", hermetic),
          ("Verification", verify), ("Hardening audit", audit),
          ("Registry and channels", publish), ("Nightly rebuilds", nightly), ("Fleet", fleet),
          ("Housekeeping and authoring", tools),
          ("Help", help_tasks))

namespace = Collection()
for _title, _module in GROUPS:
    for _name in _module.TASKS:
        _task = getattr(_module, _name)
        # Every task, whoever declared it, takes kiln's table of short flags.
        _task.__class__ = KilnTask
        namespace.add_task(_task)


def groups() -> list[tuple[str, list[Task[Any]]]]:
    return [(title, [getattr(module, name) for name in module.TASKS])
            for title, module in GROUPS]


def find_task(name: str) -> Task[Any]:
    try:
        found: Task[Any] = namespace[name]
    except (KeyError, ValueError):
        close = difflib.get_close_matches(name, namespace.task_names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else \
            f"`{prog.name()} --help` lists the tasks"
        raise KilnError(f"no task called '{name}' ({hint})") from None
    return found


def show_help(name: str | None = None) -> None:
    """Write kiln's help, or one task's, to stdout."""
    text = program_help(groups(), prog.name()) if name is None else task_help(
        find_task(name), prog.name())
    sys.stdout.write(text)


def show_task_help(body: Callable[..., Any]) -> None:
    """Help for the task whose body this is (asked for with --help where a value was due)."""
    for name in namespace.task_names:
        if namespace[name].body is body:
            show_help(name)
            return


def help_argv(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """`kiln [core options] <task> ... --help ...` -> `kiln [core options] --help <task>`."""
    for i, word in enumerate(argv[1:], start=1):
        if word == "help" and i == len(argv) - 1:
            return [*argv[:i], "--help"]  # `kiln help`: invoke would want its argument
        if word in names:
            if any(w in HELP_WORDS for w in argv[i + 1:]):
                return [*argv[:i], "--help", word]
            break
    return list(argv)


class KilnProgram(Program):
    def normalize_argv(self, argv: list[str] | None) -> None:
        super().normalize_argv(argv)
        self.argv = help_argv(self.argv, list(namespace.task_names))

    def print_help(self) -> None:
        show_help()

    def print_task_help(self, name: str) -> None:
        show_help(name)


def main(argv: list[str] | None = None) -> None:
    prog.set_name("kiln")
    KilnProgram(name="kiln", binary="kiln", version=__version__, namespace=namespace).run(argv)
