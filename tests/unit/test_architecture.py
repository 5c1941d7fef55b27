"""Imports point down (docs/architecture.md): from the actual import graph of src/kiln.

Every module of src/kiln belongs to one tier; a module may import its own tier and the tiers
below, never one above, and no two modules outside the commands import each other, directly or
round a loop. Imports inside functions and under TYPE_CHECKING count too: a lazy import is
still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest
from kilntest import REPO_ROOT

SRC = REPO_ROOT / "src"

# Lowest first. A module is in the tier of the longest prefix that names it (a package name
# takes its submodules; `kiln` is only the package's __init__). docs/architecture.md describes
# each tier.
TIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("kiln", "kiln.errors", "kiln.prog", "kiln.hashcache", "kiln.session",
                    "kiln.records", "kiln.ui", "kiln.chunks")),
    ("doors", ("kiln.run", "kiln.engine", "kiln.dockersock", "kiln.mirror", "kiln.registry",
               "kiln.registry_http", "kiln.credentials", "kiln.signing", "kiln.embedded")),
    ("definitions", ("kiln.model", "kiln.yamlnodes", "kiln.guard", "kiln.readers", "kiln.schema",
                     "kiln.testowners", "kiln.load", "kiln.lockfile", "kiln.config",
                     "kiln.scaffold", "kiln.docs", "kiln.docs_example", "kiln.docs_guard",
                     "kiln.durations")),
    ("compose", ("kiln.compose", "kiln.params", "kiln.fingerprint", "kiln.render", "kiln.checks",
                 "kiln.graph")),
    ("build", ("kiln.bootstrap", "kiln.buildkit", "kiln.hermetic", "kiln.debcache", "kiln.aptlock",
               "kiln.context",
               "kiln.normalize", "kiln.imagediff", "kiln.noop", "kiln.planner", "kiln.prune")),
    ("verify", ("kiln.verify", "kiln.testsuite", "kiln.testing", "kiln.testkit",
                "kiln.suiteinfo", "kiln.restricted", "kiln.audit", "kiln.audit_vm",
                "kiln.pipeline", "kiln.vm")),
    ("release", ("kiln.release", "kiln.fleet", "kiln.blobs", "kiln.nightly", "kiln.report",
                 "kiln.nightly_disk", "kiln.lockchanges")),
    ("commands", ("kiln.cli", "kiln.entry", "kiln.helptext", "kiln.commands")),
)
RANK = {name: i for i, (name, _) in enumerate(TIERS)}

Graph = Mapping[str, frozenset[str]]


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, frozenset[str]]:
    """kiln module -> the kiln modules it imports, anywhere in its text."""
    paths = {module_name(p, src): p for p in sorted((src / "kiln").rglob("*.py"))}
    graph = {}
    for name, path in paths.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:  # `from kiln.render import checks`: the submodule
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in paths else node.module)
        graph[name] = frozenset(m for m in found if m in paths and m != name)
    return graph


def tier_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for tier, prefixes in TIERS:
        for prefix in prefixes:
            # `kiln` is the package's own __init__, not everything under it
            named = module == prefix or (prefix != "kiln" and module.startswith(prefix + "."))
            if named and (best is None or len(prefix) > best[0]):
                best = (len(prefix), tier)
    return best[1] if best else None


def upward_imports(graph: Graph) -> list[str]:
    return [f"{module} ({tier_of(module)}) imports {target} ({tier_of(target)})"
            for module, targets in sorted(graph.items()) for target in sorted(targets)
            if RANK[tier_of(target) or "commands"] > RANK[tier_of(module) or "commands"]]


def cycles(graph: Graph) -> list[list[str]]:
    """The import loops (strongly connected components of two or more modules), Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


GRAPH = import_graph()


def test_every_module_has_a_tier() -> None:
    missing = sorted(m for m in GRAPH if tier_of(m) is None)
    assert not missing, (
        f"{', '.join(missing)}: in no tier of tests/unit/test_architecture.py; add each to the "
        "tier it belongs to (docs/architecture.md says what each tier holds)")


def test_imports_point_down() -> None:
    found = upward_imports(GRAPH)
    assert not found, (
        "lower tiers never import upper ones (docs/architecture.md, tiers lowest first: "
        + " < ".join(name for name, _ in TIERS) + "):\n  " + "\n  ".join(found)
        + "\nmove what both need down to the lower tier, or the caller up")


def test_no_import_loops_below_the_commands() -> None:
    loops = [c for c in cycles(GRAPH) if any(tier_of(m) != "commands" for m in c)]
    assert not loops, (
        "modules in an import loop (each imports the others, directly or through the rest): "
        + "; ".join(", ".join(loop) for loop in loops)
        + " (move what they share into a module below them)")


def test_the_tiers_are_the_ones_documented() -> None:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name, prefixes in TIERS:
        assert f"**{name}**" in text, f"docs/architecture.md does not describe tier '{name}'"
        for prefix in prefixes:
            shown = prefix.removeprefix("kiln.").replace(".", "/") if prefix != "kiln" else ""
            assert not shown or f"`{shown}" in text, (
                f"docs/architecture.md does not name {prefix} (tier '{name}')")


# The checks above can fail: the same functions on small graphs that break the rules.

@pytest.mark.parametrize(("graph", "expected"), [
    ({"kiln.model": frozenset({"kiln.pipeline"}), "kiln.pipeline": frozenset()},
     ["kiln.model (definitions) imports kiln.pipeline (verify)"]),
    ({"kiln.engine.images": frozenset({"kiln.release.oci"})},
     ["kiln.engine.images (doors) imports kiln.release.oci (release)"]),
    ({"kiln.commands.build": frozenset({"kiln.model"}), "kiln.pipeline": frozenset({"kiln.run"})},
     []),
])
def test_an_upward_import_is_found(graph: Graph, expected: list[str]) -> None:
    assert upward_imports(graph) == expected


def test_a_loop_is_found() -> None:
    graph = {"kiln.a": frozenset({"kiln.b"}), "kiln.b": frozenset({"kiln.c"}),
             "kiln.c": frozenset({"kiln.a"}), "kiln.d": frozenset({"kiln.a"})}
    assert cycles(graph) == [["kiln.a", "kiln.b", "kiln.c"]]


def test_the_graph_is_read_from_the_code(tmp_path: Path) -> None:
    package = tmp_path / "kiln"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "low.py").write_text("")
    (package / "sub" / "mod.py").write_text(
        "from typing import TYPE_CHECKING\nfrom kiln import low, VERSION\nimport json\n"
        "if TYPE_CHECKING:\n    import kiln.sub\n"
        "def f():\n    from kiln.sub.mod import f\n")
    assert import_graph(tmp_path) == {"kiln": frozenset(), "kiln.sub": frozenset(),
                                      "kiln.low": frozenset(),
                                      "kiln.sub.mod": frozenset({"kiln", "kiln.low", "kiln.sub"})}
