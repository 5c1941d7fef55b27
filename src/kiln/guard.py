"""The rules a value must pass before it reaches a Dockerfile, the build context or a path.

A definition often comes from another team or a pull request, so every value is hostile until
checked, and checked where it is final: after `{{ param }}` substitution, by the same rules
whether it was written literally or substituted. Each rule returns `(message, hint)` or None;
the loader and the composer turn that into a located `path:line: message (hint)` Problem.

What the rules hold against (see docs/definitions.md, "What a layer can and cannot do to the
build host"):
- a line break, NUL or control character ending a Dockerfile instruction early, so the rest of
  the value becomes instructions of its own (a label key holding "\\nRUN ...");
- a trailing backslash joining the next instruction into this one (a later COPY vanishes);
- a one-line `<<` that newer Dockerfile frontends read as a heredoc swallowing what follows;
- a lone surrogate, which no UTF-8 Dockerfile can hold (a crash when it is written);
- label keys that are not OCI annotation keys, or that forge the labels kiln sets itself;
- a source path that leaves the layer's files/ folder (absolute, '..', a link, a `$`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import fields, is_dataclass
from pathlib import Path, PurePosixPath
from typing import Any

Rule = tuple[str, str] | None

# Limits of a definition file: far above any real definition (the samples are < 2 KiB, < 200
# nodes, < 6 deep), far below what hurts (PyYAML needs ~4 KiB of memory and ~1 ms per KiB).
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 24
MAX_NODES = 10_000

# What str.splitlines() breaks on: every character some tool reading the Dockerfile, the
# history or a log takes for a line break (Docker's parser itself splits on '\n' only).
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

# OCI annotation keys: reverse domain notation ("org.example.key"): letters, digits, '.', '_',
# '-'; starting and ending with a letter or digit.
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$")
KILN_LABEL_PREFIX = "dev.kiln."
# The org.opencontainers keys kiln sets on images and published artifacts: a definition
# setting one would forge what kiln vouches for.
KILN_OCI_LABELS = frozenset({
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.description",
    "org.opencontainers.image.created",
})
HEREDOC = "<<"

# A layer's keys by how their values reach the build: which rule each value passes.
NOT_RENDERED = frozenset({"description", "requires", "conflicts", "params", "lines"})
EXEC_FORM = ("entrypoint", "cmd", "healthcheck.test")  # JSON arrays: breaks are inert
SCRIPTS = ("run",)  # JSON exec form when multi-line: newlines allowed


def shown(value: str, width: int = 48) -> str:
    """A value as an error message quotes it: short (Problem escapes what is not printable)."""
    return value if len(value) <= width else value[:width - 3] + "..."


def _bad_char(value: str, allowed: str = "\t") -> str | None:
    for c in value:
        if c in allowed:
            continue
        if c == "\0":
            return "a NUL character"
        if c in LINE_BREAKS:
            return f"a line break (U+{ord(c):04X})"
        category = unicodedata.category(c)
        if category == "Cs":
            return f"a lone surrogate (U+{ord(c):04X})"
        if category == "Cc":
            return f"a control character (U+{ord(c):04X})"
    return None


def instruction_value(value: str) -> Rule:
    """A value that lands inside one Dockerfile instruction line (ENV, LABEL, COPY, USER...)."""
    if bad := _bad_char(value):
        return (f"'{shown(value)}' holds {bad}",
                "one line of printable text: it would end the Dockerfile instruction")
    if value.rstrip().endswith("\\"):
        return (f"'{shown(value)}' ends in a backslash",
                "it would join the next Dockerfile instruction to this one; remove it")
    return None


def exec_argument(value: str) -> Rule:
    """An argument of an exec-form (JSON) command: line breaks are inert there, NUL is not."""
    if bad := _bad_char(value, allowed="\t\n"):
        return f"'{shown(value)}' holds {bad}", "no process argument can hold it"
    return None


def run_script(value: str) -> Rule:
    """A `run` step: several lines are rendered in exec form; one line in shell form."""
    if bad := _bad_char(value, allowed="\t\n"):
        return f"'{shown(value)}' holds {bad}", "write the script as plain text lines"
    one_line = "\n" not in value.strip()
    if value.rstrip().endswith("\\"):
        return (f"'{shown(value)}' ends in a backslash",
                "it would join the next Dockerfile instruction to this one; remove it")
    if one_line and HEREDOC in value:
        return (f"'{shown(value)}' holds '<<' on one line",
                "newer Dockerfile parsers read it as a heredoc that swallows the following "
                "instructions; write the step on several lines (YAML `|`)")
    return None


def label_key(key: str) -> Rule:
    if not LABEL_KEY_RE.match(key):
        return (f"invalid label key '{shown(key)}'",
                "an OCI annotation key: letters, digits, '.', '_', '-', like org.example.role")
    if key.startswith(KILN_LABEL_PREFIX) or key in KILN_OCI_LABELS:
        return (f"label '{key}' is reserved: kiln sets it itself",
                "use a key under your own reverse-DNS prefix, like org.example.role")
    return None


def source_path(src: str) -> Rule:
    """`files[].src` as written: a plain relative path inside the layer's files/ folder.

    Params are refused here rather than re-checked: a source must be a file a reviewer can see
    in the layer, not one an image chooses.
    """
    if "{{" in src:
        return (f"'{shown(src)}': a source path cannot use params",
                "name the file itself; choose between files with a param in `dest` or `run`")
    if bad := _bad_char(src, allowed=""):
        return f"'{shown(src)}' holds {bad}", "name a file inside the layer's files/ folder"
    parts = PurePosixPath(src).parts
    if src.startswith("/") or ".." in parts or not src.strip("/."):
        return (f"'{shown(src)}' must be a path inside the layer's files/ folder",
                "no absolute paths and no '..'")
    if any(c in src for c in "$\\"):
        return (f"'{shown(src)}' holds '$' or '\\'",
                "the Dockerfile would expand or escape it; rename the file")
    return None


def destination(dest: str) -> Rule:
    """`files[].dest` after substitution: besides the absolute-path rule, no expansion."""
    if any(c in dest for c in "$\\"):
        return (f"'{shown(dest)}' holds '$' or '\\'",
                "COPY would expand or escape it; write the path out")
    return None


def inside(path: Path, folder: Path) -> bool:
    """Whether `path`, links resolved, is `folder` or lies under it (`folder` resolved)."""
    real = path.resolve()
    return real == folder or folder in real.parents


def layer_values(layer: Any) -> list[tuple[str, str, str]]:
    """Every rendered string of a (substituted) layer against its rule: (key, message, hint).

    Walks the layer like the substitution does, so no field that accepts params is missed.
    """
    found: list[tuple[str, str, str]] = []

    def rule_for(key: str) -> Any:
        top = re.sub(r"\[\d+\]", "", key)
        if top.startswith(SCRIPTS):
            return run_script
        if top.startswith(EXEC_FORM):
            return exec_argument
        return instruction_value

    def walk(value: Any, key: str) -> None:
        if isinstance(value, str):
            if problem := rule_for(key)(value):
                found.append((key, f"{key}: {problem[0]}", problem[1]))
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                walk(item, f"{key}[{i}]")
        elif is_dataclass(value) and not isinstance(value, type):
            for f in fields(value):
                walk(getattr(value, f.name), f"{key}.{f.name}")

    for f in fields(layer):
        if f.name in NOT_RENDERED or f.name in ("name", "path"):
            continue
        value = getattr(layer, f.name)
        if f.name == "labels":
            for name, text in value:
                if problem := label_key(name):
                    found.append((f"labels.{name}", f"labels: {problem[0]}", problem[1]))
                walk(text, f"labels.{name}")
        elif f.name == "env":
            for name, text in value:
                walk(text, f"env.{name}")
        else:
            walk(value, f.name)
    for i, spec in enumerate(getattr(layer, "files", ())):
        if problem := destination(spec.dest):
            found.append((f"files[{i}].dest", f"files[{i}].dest: {problem[0]}", problem[1]))
    return found
