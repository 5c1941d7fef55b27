"""Building with BuildKit, with no network, from a context folder kiln lays out itself.

Why the docker CLI and not docker-py: docker-py speaks only the classic builder's API, which
has no build-time mounts, so the locked .debs could only enter through a COPY, and a COPY
leaves them in a layer even when a later step deletes them. BuildKit bind-mounts them into the
one step that installs them (`RUN --mount=type=bind`), mounts secrets the same way
(`--mount=type=secret`), and `docker build --network=none` takes every build step off the
network. The CLI is run through kiln.run, the one subprocess door. Engine 20.10's built-in
Dockerfile frontend accepts `RUN --mount` without a `# syntax=` line (which would need Docker
Hub), but not `RUN --network`: hence the build-wide `--network=none`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import BuildError, CommandError, KilnError
from kiln.render import ContextEntry, Instruction
from kiln.render.context import write_context_dir
from kiln.run import run, stream


@dataclass(frozen=True)
class Step:
    """The engine started build step `number` of `total` (numbered like the instructions)."""

    number: int
    total: int
    text: str


@dataclass(frozen=True)
class Output:
    line: str


BuildEvent = Step | Output

STEP_RE = re.compile(r"^#\d+ \[(?:[\w.-]+ )?\s*(\d+)/(\d+)\] (.*)$")
OUTPUT_RE = re.compile(r"^#\d+ \d+\.\d+ (.*)$")
EXIT_RE = re.compile(r"exit code: (\d+)")
CANDIDATES = ("docker", "/usr/bin/docker")


@functools.cache
def docker_cli() -> str:
    """A docker client that builds with BuildKit: $KILN_DOCKER, else the first that can.

    A client of 23+ without the buildx plugin cannot (`DOCKER_BUILDKIT=1` makes it fail), an
    older one builds with the engine's BuildKit itself.
    """
    if env := os.environ.get("KILN_DOCKER"):
        return env
    for candidate in CANDIDATES:
        path = shutil.which(candidate)
        if not path:
            continue
        try:
            helptext = run([path, "build", "--help"], env={"DOCKER_BUILDKIT": "1"}, timeout=30)
        except KilnError:
            continue
        if "--secret" in helptext:
            return path
    raise KilnError("no docker client here can build with BuildKit (a client of 23+ needs the "
                    "buildx plugin; or set KILN_DOCKER to a client of 20.10-22)")


def write_context(target: Path, dockerfile: str, entries: Iterable[ContextEntry],
                  debs: Mapping[str, Iterable[tuple[str, Path]]]) -> None:
    """The context folder (render.write_context_dir), and each layer's .debs under
    debs/<layer>/, linked from the cache (only ever bind-mounted, never copied in)."""
    write_context_dir(target, dockerfile, entries)
    for folder, files in debs.items():
        where = target / folder
        where.mkdir(parents=True, exist_ok=True)
        for name, source in files:
            try:
                os.link(source, where / name)
            except OSError:
                shutil.copyfile(source, where / name)


def build(context: Path, tag: str, instructions: tuple[Instruction, ...], *,
          nocache: bool = False, secrets: Mapping[str, Path] | None = None,
          network: str = "none", tail: deque[str] | None = None) -> Iterator[BuildEvent]:
    """Build the context folder as `tag`; yields kiln's Step (numbered like `instructions`)
    and Output events, and raises BuildError with BuildKit's own error line."""
    tail = tail if tail is not None else deque(maxlen=40)
    argv: list[str | Path] = [docker_cli(), "build", "--progress=plain", f"--network={network}",
                              "--tag", tag, "--file", context / "Dockerfile"]
    if nocache:
        argv.append("--no-cache")
    for ident, path in sorted((secrets or {}).items()):
        argv += ["--secret", f"id={ident},src={path}"]
    argv.append(context)
    keys = [_key(i.text) for i in instructions]
    last_error = ""
    number = 0
    try:
        for line in stream(argv, env={"DOCKER_BUILDKIT": "1"}):
            if m := STEP_RE.match(line):
                number = step_number(m.group(3), keys, number)
                tail.clear()
                yield Step(number, len(instructions), m.group(3))
            elif m := OUTPUT_RE.match(line):
                tail.append(m.group(1))
                yield Output(m.group(1))
            elif "ERROR" in line or line.startswith(("error:", "failed to solve")):
                last_error = line.split("ERROR:", 1)[-1].strip()
    except CommandError as exc:
        message = last_error or str(exc).splitlines()[-1]
        if m := EXIT_RE.search(message):
            message = f"the step returned a non-zero code: {m.group(1)} ({message})"
        raise BuildError(message) from None


def step_number(echo: str, keys: list[str], last: int) -> int:
    """The instruction (1-based) BuildKit's echo of a step names. BuildKit echoes a multi-line
    script its own way; one stage's steps come in order, so an echo that matches no
    instruction is the one after the last."""
    key = _key(echo)
    if key.startswith("FROM "):
        return 1
    return next((i + 1 for i, k in enumerate(keys) if k == key), min(last + 1, len(keys)))


def _key(text: str) -> str:
    """An instruction as BuildKit echoes it: continuation lines joined, spacing squeezed."""
    return re.sub(r"\s+", " ", text.replace("\\\n", " ")).strip()[:60]
