"""The `kiln` console script. A no-op build is answered before the CLI (invoke, every task and
the pipeline) is even imported: see kiln.noop. Everything else is kiln.cli."""

from __future__ import annotations

import sys


def main() -> None:
    from kiln import noop

    if noop.answer(sys.argv[1:]):
        return
    with noop.capture(sys.argv[1:]):  # a no-op's output is kept, for the next answer
        from kiln.cli import main as cli_main

        cli_main()
