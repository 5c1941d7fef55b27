"""Helpers for kiln's unit tests: throwaway projects and the problems they report."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from kiln.errors import DefinitionError
from kiln.load import Project

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
REF = f"docker.io/library/debian@{DIGEST}"

Definition = str | Mapping[str, Any]


class MakeProject(Protocol):
    def __call__(self, layers: Mapping[str, Definition] | None = None,
                 images: Mapping[str, Definition] | None = None,
                 files: Mapping[str, str | bytes] | None = None) -> Project: ...


def _text(definition: Definition) -> str:
    if isinstance(definition, str):
        return textwrap.dedent(definition).lstrip("\n")
    return yaml.safe_dump(dict(definition), sort_keys=False)


def write_project(root: Path, layers: Mapping[str, Definition] | None = None,
                  images: Mapping[str, Definition] | None = None,
                  files: Mapping[str, str | bytes] | None = None) -> Project:
    """Write layers/<name>/layer.yaml, images/<name>.yaml and any other file under `root`.

    A definition given as a string is written as it is (dedented), so tests can state the
    exact lines errors must point at; a mapping is dumped as YAML. `files` maps a path
    relative to the project root ("layers/a/files/x.conf") to its content.
    """
    (root / "layers").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for name, definition in (layers or {}).items():
        path = root / "layers" / name / "layer.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "files").mkdir(exist_ok=True)
        path.write_text(_text(definition))
    for name, definition in (images or {}).items():
        (root / "images" / f"{name}.yaml").write_text(_text(definition))
    for rel, content in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return Project(root)


def problems_of(action: Callable[[], object]) -> list[str]:
    """The problems `action` reports, one string each; fails when it reports none."""
    with pytest.raises(DefinitionError) as info:
        action()
    lines = [str(p) for p in info.value.problems]
    assert str(info.value) == "\n".join(lines)
    return lines


def only_problem(action: Callable[[], object]) -> str:
    """The single problem `action` reports, as its one printed line."""
    lines = problems_of(action)
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    return lines[0]
