"""Did the Dockerfile keep the shape kiln planned? Checked twice: on the text, and on the image.

kiln.guard keeps values from ending or joining instructions; these checks make sure, without
trusting it. `instruction_kinds` reads a Dockerfile the way Docker's parser does (lines split
on '\\n', a trailing backslash continues, comment and blank lines inside a continuation are
dropped, and RUN/COPY/ADD heredocs swallow lines up to their delimiter, as newer frontends do);
`render_dockerfile` compares it with the instructions it meant to write.

After a build, `steps_problem` compares the image's history with the rendered instructions.
Why the history: BuildKit writes one history entry per instruction after FROM, ENV and LABEL
included ("RUN /bin/sh -c ...", "COPY files/x /x # buildkit", "LABEL a=b"), in order, and the
engine hands it back in one small API call. BuildKit's progress stream would be free, but it
shows only the steps that change the file system (RUN, COPY, WORKDIR), so a swallowed LABEL or
an injected ENV would pass it unseen. Comparing kinds one for one is enough: every way a value
could change the Dockerfile's structure changes the number or the kind of its instructions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

CONTINUED_RE = re.compile(r"\\[ \t]*$")
HEREDOC_RE = re.compile(r"<<(-?)\s*([\"']?)([A-Za-z0-9_.-]+)\2")
HEREDOC_KINDS = ("RUN", "COPY", "ADD")


def instruction_kinds(dockerfile: str) -> list[str]:
    """The kind (FROM, RUN, ...) of each instruction of a Dockerfile, in order."""
    kinds: list[str] = []
    lines = [line.removesuffix("\r") for line in dockerfile.split("\n")]
    i = 0
    while i < len(lines):
        text, i = _logical_line(lines, i)
        if not text:
            continue
        kind = text.split(None, 1)[0].upper()
        kinds.append(kind)
        i = _skip_heredocs(kind, text, lines, i)
    return kinds


def _logical_line(lines: list[str], i: int) -> tuple[str, int]:
    """One instruction's text, continuation lines joined; ("", next) for a comment or blank."""
    stripped = lines[i].strip()
    if not stripped or stripped.startswith("#"):
        return "", i + 1
    parts = []
    while True:
        line = lines[i].lstrip()
        i += 1
        if not CONTINUED_RE.search(line):
            parts.append(line)
            break
        parts.append(CONTINUED_RE.sub("", line))
        # comment and blank lines inside a continuation are dropped, as Docker does
        while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
            i += 1
        if i >= len(lines):
            break
    return " ".join(parts).strip(), i


def _skip_heredocs(kind: str, text: str, lines: list[str], i: int) -> int:
    rest = text.split(None, 1)[1] if " " in text else ""
    if kind not in HEREDOC_KINDS or _is_json(rest):
        return i
    for match in HEREDOC_RE.finditer(rest):
        strip_tabs, word = match.group(1) == "-", match.group(3)
        while i < len(lines):
            line = lines[i].lstrip("\t") if strip_tabs else lines[i]
            i += 1
            if line == word:
                break
    return i


def _is_json(rest: str) -> bool:
    body = rest.strip()
    while body.startswith("--"):  # flags (--mount=..., --chown=...) come before the command
        body = body.split(None, 1)[1] if " " in body else ""
    if not body.startswith("["):
        return False
    try:
        return isinstance(json.loads(body), list)
    except ValueError:
        return False


def _kind(text: str) -> str:
    return text.split(None, 1)[0].upper() if text.strip() else "(empty)"


def _difference(got: Sequence[str], want: Sequence[str]) -> str:
    for n, (a, b) in enumerate(zip(got, want, strict=False), start=1):
        if a != b:
            return f"first difference at instruction {n}: {a} where {b} was planned"
    return f"{len(got)} instructions where {len(want)} were planned"


def structure_problem(dockerfile: str, planned: Sequence[str]) -> str | None:
    """None when the Dockerfile's instructions have the planned kinds, one for one."""
    got, want = instruction_kinds(dockerfile), [_kind(t) for t in planned]
    return None if got == want else _difference(got, want)


def steps_problem(created_by: Sequence[str], planned: Sequence[str]) -> str | None:
    """None when the history entries a build added (oldest first) are the planned instructions
    after FROM, one for one and of the same kinds."""
    got = [_kind(text) for text in created_by]
    want = [_kind(t) for t in planned[1:]]
    return None if got == want else _difference(got, want)
