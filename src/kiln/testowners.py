"""Test ownership: an image (or a layer) may skip or replace a test of a layer below it.

A layer's tests assert what the layer promises; an image built on it may legitimately change
some of that (a service on the python layer is not python3's prompt; an app with its own
`workdir` does not work in the user's home). Rather than edit the layer's tests, the image says
which test no longer applies and why:

    tests:
      - skip: python::test_python_is_the_default_command
        reason: this image runs a web server
      - replace: user::test_image_runs_as_the_user
        with: test_app_runs_as_the_user   # a test in this image's (or layer's) own tests/
        reason: the app works in /srv/app

Every name is checked at `check` (the layer is in the image, below the one that says so; the
test exists; the replacement exists); the reason is required, and verification shows the
override, with its reason, in the record and the report.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.errors import Problem
from kiln.model import CheckOverride, Plan

if TYPE_CHECKING:
    from kiln.readers import Reader
    from kiln.yamlnodes import Node

TEST_RE = re.compile(r"^([a-z0-9][a-z0-9._-]*)::(test_[A-Za-z0-9_]*)$")
NAME_RE = re.compile(r"^test_[A-Za-z0-9_]*$")


def read_overrides(reader: Reader, node: Node, key: str) -> tuple[CheckOverride, ...]:
    out = []
    for i, item in enumerate(reader.items(node, key)):
        where = f"{key}[{i}]"
        rec = reader.record(item, where, {"skip": reader.string, "replace": reader.string,
                                          "with": reader.string, "reason": reader.string},
                            required=("reason",))
        if rec is None:
            continue
        if ("skip" in rec) == ("replace" in rec):
            reader.problem(item.line, f"{where}: expected exactly one of skip, replace",
                           "skip: <layer>::<test>, or replace: <layer>::<test> with: <test>")
            continue
        action = "skip" if "skip" in rec else "replace"
        test, replacement = rec[action], rec.get("with")
        if test is None:
            continue
        if not TEST_RE.match(test):
            reader.problem(item.line, f"{where}.{action}: '{test}' is not <layer>::<test>",
                           "e.g. python::test_python_is_the_default_command")
            continue
        if action == "replace" and not replacement:
            reader.problem(item.line, f"{where}: replace needs 'with', the test taking its place",
                           "or write skip: instead")
            continue
        if action == "skip" and replacement:
            reader.problem(item.line, f"{where}: 'with' belongs to replace, not skip")
            continue
        if replacement and not NAME_RE.match(replacement):
            reader.problem(item.line, f"{where}.with: '{replacement}' is not a test name",
                           "name a test_... function of this definition's own tests/")
            continue
        if not (rec["reason"] or "").strip():
            reader.problem(item.line, f"{where}.reason: say why the test does not apply")
            continue
        out.append(CheckOverride(test, rec["reason"].strip(), replacement))
    return tuple(out)


def tests_in(folder: Path) -> set[str]:
    """The test functions (and test methods) defined in a tests/ folder's test_*.py files."""
    names: set[str] = set()
    for path in sorted(folder.glob("test_*.py")) if folder.is_dir() else ():
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError:
            continue  # pytest reports it, with its line, when the suite runs
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    node.name.startswith("test_"):
                names.add(node.name)
    return names


@dataclass(frozen=True)
class Declared:
    by: str  # "image:<name>" or the layer's name
    file: str
    line: int
    tests_folder: str
    below: tuple[str, ...]  # the layers whose tests it may override
    override: CheckOverride


def declared(plan: Plan) -> list[Declared]:
    out = []
    layers = plan.all_layers
    for i, layer in enumerate(layers):
        for j, o in enumerate(layer.tests):
            out.append(Declared(layer.name, layer.file, layer.where(f"tests[{j}]").line,
                                f"{layer.path}/tests", tuple(la.name for la in layers[:i]), o))
    image = plan.image
    for j, o in enumerate(image.tests):
        out.append(Declared(f"image:{image.name}", image.path, image.where(f"tests[{j}]").line,
                            f"images/{image.name}/tests", tuple(la.name for la in layers), o))
    return out


def check_overrides(root: Path, plan: Plan) -> list[Problem]:
    problems = []
    for d in declared(plan):
        layer, test = d.override.test.split("::")
        if layer not in d.below:
            problems.append(Problem(d.file, d.line, f"tests: layer '{layer}' is not below "
                                    f"{d.by} in image '{plan.image.name}'",
                                    "layers below it: " + (", ".join(d.below) or "none")))
            continue
        found = tests_in(root / "layers" / layer / "tests")
        if test not in found:
            close = difflib.get_close_matches(test, sorted(found), n=1)
            problems.append(Problem(d.file, d.line, f"tests: layer '{layer}' has no test "
                                    f"'{test}'", f"did you mean '{close[0]}'?" if close else
                                    "its tests: " + (", ".join(sorted(found)) or "none")))
        replacement = d.override.replaced_by
        if replacement and replacement not in tests_in(root / d.tests_folder):
            problems.append(Problem(d.file, d.line, f"tests: the replacement '{replacement}' "
                                    f"is not a test in {d.tests_folder}/",
                                    f"write it in {d.tests_folder}/test_*.py"))
    return problems


def overrides(plan: Plan) -> list[dict[str, Any]]:
    """What verification applies and records: each override with who made it and why."""
    out = []
    for d in declared(plan):
        layer, test = d.override.test.split("::")
        out.append({"layer": layer, "test": test, "by": d.by, "reason": d.override.reason,
                    "action": "replace" if d.override.replaced_by else "skip",
                    "with": d.override.replaced_by})
    return out


def describe(o: dict[str, Any]) -> str:
    """One line, as the report and the skipped check's message show it."""
    if o["action"] == "replace":
        return f"replaced by {o['by']}::{o['with']}: {o['reason']}"
    return f"skipped by {o['by']}: {o['reason']}"
