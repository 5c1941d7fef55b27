"""Help pages for kiln's tasks, written from the tasks themselves (pure: tasks in, text out).

A task's docstring is its help: the first line is the summary `--list` shows, the rest is the
description, and an `Examples:` block lists commands written as `kiln ...` (shown with the
name of the command the user ran). Arguments and options come from the task's signature and
its `help=` table, so the page cannot drift from what the parser accepts.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from invoke.parser import Argument
from invoke.tasks import Task

from kiln.prog import localise

INDENT = "  "

# kiln's own options, the only ones `kiln --help` shows: invoke's other core options still
# parse (invoke runs underneath) but are none of a kiln user's business.
PROGRAM_OPTIONS = (
    ("-h, --help", "show this help; `kiln <task> --help` or `kiln help <task>` for a task's"),
    ("-V, --version", "show kiln's version"),
    ("-l, --list", "list the tasks, one line each"),
    ("-d, --debug", "show tracebacks and debug logs (or KILN_DEBUG=1)"),
)


def split_doc(task: Task[Any]) -> tuple[str, list[str], list[str]]:
    """(summary, description lines, example commands) from a task's docstring."""
    lines = (inspect.getdoc(task.body) or "").splitlines()
    summary = lines[0].strip() if lines else ""
    description: list[str] = []
    examples: list[str] = []
    into = description
    for line in lines[1:]:
        if line.strip() == "Examples:":
            into = examples
            continue
        into.append(line.strip() if into is examples else line)
    while description and not description[0].strip():
        description.pop(0)
    while description and not description[-1].strip():
        description.pop()
    return summary, description, [e for e in examples if e]


def metavar(arg: Argument) -> str:
    return (arg.attr_name or arg.name or "value").upper().replace("-", "_")


def usage(task: Task[Any], prog: str) -> str:
    words = [prog, task.name]
    arguments = task.get_arguments()
    if any(not a.positional for a in arguments):
        words.append("[options]")
    params = inspect.signature(task.body).parameters
    for arg in arguments:
        if arg.positional:
            param = params.get(arg.attr_name or arg.name or "")
            required = param is not None and param.default is inspect.Parameter.empty
            words.append(f"<{arg.name}>" if required else f"[<{arg.name}>]")
    return " ".join(words)


def option_label(arg: Argument) -> str:
    names = sorted(arg.names, key=len)
    flags = ", ".join(("-" if len(n) == 1 else "--") + n for n in names)
    if arg.takes_value:
        flags += f"={metavar(arg)}"
    return flags


def option_help(arg: Argument) -> str:
    text = arg.help or ""
    return text + " (repeatable)" if arg.kind is list and "repeatable" not in text else text


def columns(rows: Sequence[tuple[str, str]]) -> list[str]:
    width = max((len(left) for left, _ in rows), default=0)
    return [f"{INDENT}{left.ljust(width)}  {right}".rstrip() for left, right in rows]


def task_help(task: Task[Any], prog: str) -> str:
    summary, description, examples = split_doc(task)
    arguments = task.get_arguments()
    out = [f"Usage: {usage(task, prog)}", "", localise(summary)]
    if description:
        out += ["", *(localise(line) for line in description)]
    positional = [(f"<{a.name}>", a.help or "") for a in arguments if a.positional]
    if positional:
        out += ["", "Arguments:", *columns(positional)]
    options = [(option_label(a), option_help(a)) for a in arguments if not a.positional]
    options.append(("-h, --help", "show this help and exit (runs nothing)"))
    out += ["", "Options:", *columns(options)]
    if examples:
        out += ["", "Examples:", *(INDENT + localise(f"`{e}`")[1:-1] for e in examples)]
    return "\n".join(out) + "\n"


def program_help(groups: Sequence[tuple[str, Sequence[Task[Any]]]], prog: str) -> str:
    out = [f"Usage: {prog} [--debug] <task> [options] [arguments]",
           f"       {prog} help <task>",
           "",
           "Build golden images from layers/ and images/, verify them, publish them signed.",
           "(Run from a kiln project: a folder with images/ and layers/, or below one.)"]
    for title, tasks in groups:
        out += ["", f"{title}:", *columns([(t.name, localise(split_doc(t)[0])) for t in tasks])]
    out += ["", "Options:", *columns([(flag, localise(text)) for flag, text in PROGRAM_OPTIONS])]
    return "\n".join(out) + "\n"
