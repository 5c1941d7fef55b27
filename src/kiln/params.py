"""An image's params: declared by its layers (typed, with defaults), set by the image or
inherited from its parent, then substituted for `{{ name }}` in every string of each layer.
Problems are collected, not raised, so that one pass reports them all (kiln.compose raises).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from kiln.errors import Problem
from kiln.model import Image, Layer, ParamSpec, ParamValue, Plan, Where
from kiln.schema import LAYER_FIELDS

PARAM_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def resolve_params(image: Image, parent: Plan | None, layers: Iterable[Layer],
                   problems: list[Problem]) -> tuple[tuple[str, ParamValue], ...]:
    inherited = dict(parent.params) if parent else {}
    declared: dict[str, tuple[ParamSpec, Layer]] = {}
    for layer in (*(parent.all_layers if parent else ()), *layers):
        for spec in layer.params:
            if spec.name in declared:
                first, owner = declared[spec.name]
                if (first.type, first.default) != (spec.type, spec.default):
                    problems.append(_at(layer.where(f"params.{spec.name}"),
                                        f"param '{spec.name}' is declared differently by layer "
                                        f"'{owner.name}' ({owner.where(f'params.{spec.name}')})",
                                        "declare it once, in the layer both require"))
                continue
            declared[spec.name] = (spec, layer)
    values: dict[str, ParamValue] = {n: s.default for n, (s, _) in declared.items()}
    values.update(inherited)
    for name, value in image.params:
        where = image.where(f"params.{name}")
        if name not in declared:
            problems.append(_at(where, f"param '{name}' is not declared by any of its layers",
                                "known params: " + (", ".join(sorted(declared)) or "none")))
            continue
        spec, owner = declared[name]
        if name in inherited:
            problems.append(_at(where, f"param '{name}' belongs to layer '{owner.name}', which "
                                f"is built into base image '{parent.image.name if parent else ''}'",
                                "override it in that image's definition"))
            continue
        typed = _typed(value, spec)
        if typed is None:
            article = "an" if spec.type == "integer" else "a"
            problems.append(_at(where, f"param '{name}' must be {article} {spec.type}, "
                                f"got {value!r}",
                                f"declared in {owner.where(f'params.{name}')}"))
            continue
        values[name] = typed
    return tuple(sorted(values.items()))


def _typed(value: ParamValue, spec: ParamSpec) -> ParamValue | None:
    if spec.type == "boolean":
        return value if isinstance(value, bool) else None
    if spec.type == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return value if isinstance(value, str) else (str(value) if isinstance(value, int)
                                                 and not isinstance(value, bool) else None)


def substitute(layer: Layer, params: dict[str, ParamValue], problems: list[Problem]) -> Layer:
    """Replace {{ name }} in every string of the layer by the param's value."""

    def text(value: ParamValue) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, str):
            def repl(m: re.Match[str]) -> str:
                if m.group(1) not in params:
                    problems.append(_at(layer.where(key), f"unknown param '{m.group(1)}'",
                                        "declare it under params: in this or a required layer"))
                    return m.group(0)
                return text(params[m.group(1)])
            return PARAM_RE.sub(repl, value)
        if isinstance(value, tuple):
            return tuple(walk(v, f"{key}[{i}]") for i, v in enumerate(value))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{
                f.name: walk(getattr(value, f.name), f"{key}.{f.name}")
                for f in dataclasses.fields(value)})
        return value

    changes = {f.key: walk(getattr(layer, f.key), f.key) for f in LAYER_FIELDS
               if f.key not in ("description", "requires", "conflicts", "params")}
    # env and labels are pairs: walk gave tuples of tuples, keyed like "env[0][1]"; relabel
    # is unnecessary for errors since the nearest key ("env") has a line.
    return dataclasses.replace(layer, **changes)


def _at(where: Where, message: str, hint: str = "") -> Problem:
    return Problem(where.path, where.line, message, hint)
