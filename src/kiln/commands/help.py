"""The help task: `kiln help` and `kiln help <task>` (and `invoke help <task>`)."""

from __future__ import annotations

from invoke import task as make_task
from invoke.context import Context as InvokeContext

from kiln.commands.common import kiln_task

TASKS = ("help_",)


@make_task(name="help", positional=["task"], help={
    "task": "the task to explain (default: kiln's help, every task in one line)"})
@kiln_task
def help_(c: InvokeContext, task: str | None = None) -> None:
    """Show kiln's help, or a task's: usage, arguments, options and examples.

    Examples:
      kiln help
      kiln help build
      kiln build --help
    """
    from kiln.cli import show_help

    show_help(task)
