"""The task collection behind both `invoke` (tasks.py) and the `kiln` console script.

Each area of kiln keeps its thin tasks in kiln.commands.<area>; this module only assembles them.
"""

from __future__ import annotations

from invoke import Collection, Program

from kiln import __version__
from kiln.commands import build, fleet, hermetic, nightly, publish, verify

namespace = Collection()
for module in (build, verify, hermetic, publish, nightly, fleet):
    for name in module.TASKS:
        namespace.add_task(getattr(module, name))


def main() -> None:
    Program(name="kiln", binary="kiln", version=__version__, namespace=namespace).run()
