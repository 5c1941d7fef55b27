"""Strict YAML: a located node tree, with the traps of YAML 1.1 closed.

PyYAML resolves plain scalars by YAML 1.1 rules (`no` -> False, `1.10` -> 1.1, `0755` -> 493).
kiln never lets PyYAML construct values: it composes the document into nodes, rejects anchors,
aliases, explicit tags and duplicate keys, and keeps every scalar as the text that was written.
Typed conversion happens later, against the schema, which decides on purpose what `no` means.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from kiln.errors import DefinitionError, Problem
from kiln.guard import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES


@dataclass(frozen=True)
class Scalar:
    text: str
    plain: bool  # written without quotes: only plain scalars can mean null, bool or a number
    line: int


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]
    line: int


@dataclass(frozen=True)
class Map:
    entries: tuple[tuple[str, int, Node], ...]  # key, key line, value
    line: int

    def keys(self) -> list[str]:
        return [k for k, _, _ in self.entries]


Node = Scalar | Seq | Map


def describe(node: Node) -> str:
    if isinstance(node, Map):
        return "a mapping"
    if isinstance(node, Seq):
        return "a list"
    if node.plain and node.text in ("", "~", "null", "Null", "NULL"):
        return "null"
    return f"'{node.text}'"


def parse(path: Path, shown: str) -> Node:
    """Parse one YAML file into nodes; `shown` is the path printed in errors."""
    text = _read(path, shown)
    problems: list[Problem] = []
    depth = nodes = 0
    try:
        # The event stream is read without recursion, so it can refuse a too deep or too big
        # document before compose_all (recursive) ever sees it.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
                if nodes > MAX_NODES:
                    raise DefinitionError([Problem(
                        shown, line, f"more than {MAX_NODES} keys and items",
                        "split the definition into several layers")])
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise DefinitionError([Problem(
                        shown, line, f"nested more than {MAX_DEPTH} levels deep",
                        "definitions are a few levels deep; flatten the structure")])
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if isinstance(event, yaml.AliasEvent):
                problems.append(
                    Problem(shown, line, f"YAML alias '*{event.anchor}' is not allowed",
                            "write the value out; definitions must read the same to every tool")
                )
            elif anchor := getattr(event, "anchor", None):
                problems.append(
                    Problem(shown, line, f"YAML anchor '&{anchor}' is not allowed",
                            "write the value out; reuse belongs in a layer")
                )
            if (tag := getattr(event, "tag", None)) not in (None, "!"):
                problems.append(
                    Problem(shown, line, f"explicit YAML tag '{tag}' is not allowed",
                            "remove the tag; quote the value if it must stay a string")
                )
        if problems:
            raise DefinitionError(problems)
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.reader.ReaderError as exc:  # a control character: not a MarkedYAMLError
        raise DefinitionError(
            [Problem(shown, text.count("\n", 0, exc.position) + 1,
                     f"invalid YAML: character #x{exc.character:04x} is not allowed",
                     "remove control characters from the file")]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise DefinitionError(
            [Problem(shown, line, f"invalid YAML: {exc.problem or exc.context}",
                     "check indentation and quoting")]
        ) from None
    if len(docs) > 1:
        raise DefinitionError([Problem(shown, 0, "more than one YAML document",
                                       "keep one definition per file")])
    if not docs or docs[0] is None:
        return Map((), 1)
    try:
        root = _convert(docs[0], shown, problems)
    except RecursionError:  # not reachable under MAX_DEPTH; kept so it can never be a traceback
        raise DefinitionError([Problem(shown, 0, "nested too deeply",
                                       "flatten the structure")]) from None
    if problems:
        raise DefinitionError(problems)
    return root


def _read(path: Path, shown: str) -> str:
    """The file's text, refused before it is read when it is not a small regular file."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DefinitionError([Problem(shown, 0, "not a regular file",
                                           "a definition is a plain YAML file")])
        if info.st_size > MAX_FILE_BYTES:
            raise DefinitionError([Problem(
                shown, 0, f"{info.st_size} bytes: over the {MAX_FILE_BYTES // 1024} KiB limit "
                "of a definition", "keep big content in the layer's files/ folder")])
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # the file may grow between stat and read
    except OSError as exc:
        raise DefinitionError([Problem(shown, 0, f"cannot read: {exc.strerror or exc}")]
                              ) from None
    if len(data) > MAX_FILE_BYTES:
        raise DefinitionError([Problem(shown, 0, f"over the {MAX_FILE_BYTES // 1024} KiB limit "
                                       "of a definition",
                                       "keep big content in the layer's files/ folder")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError([Problem(shown, 0, f"not UTF-8 text ({exc.reason})")]) from None


def _convert(node: yaml.Node, shown: str, problems: list[Problem]) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        return Scalar(str(node.value), node.style is None, line)
    if isinstance(node, yaml.SequenceNode):
        return Seq(tuple(_convert(n, shown, problems) for n in node.value), line)
    assert isinstance(node, yaml.MappingNode)
    entries: list[tuple[str, int, Node]] = []
    seen: dict[str, int] = {}
    for knode, vnode in node.value:
        kline = knode.start_mark.line + 1
        if not isinstance(knode, yaml.ScalarNode):
            problems.append(Problem(shown, kline, "mapping keys must be plain strings"))
            continue
        key = str(knode.value)
        if key == "<<":
            problems.append(Problem(shown, kline, "YAML merge key '<<' is not allowed",
                                    "write the keys out"))
            continue
        if key in seen:
            problems.append(Problem(shown, kline,
                                    f"duplicate key '{key}' (first at line {seen[key]})",
                                    "keep one; YAML would silently drop the other"))
            continue
        seen[key] = kline
        entries.append((key, kline, _convert(vnode, shown, problems)))
    return Map(tuple(entries), line)
