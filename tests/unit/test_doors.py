"""One door per outside system (docs/architecture.md, "The doors"): the library that reaches
it is imported by its door module only, read from the code of src/kiln (every import, inside
functions and under TYPE_CHECKING too)."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

from kilntest import REPO_ROOT

SRC = REPO_ROOT / "src"

# library -> the modules (or packages) that may import it
DOORS: Mapping[str, tuple[str, ...]] = {
    "subprocess": ("kiln.run",),
    "docker": ("kiln.engine",),
    # the engine door's insides: docker-py's lazy module and its error reader
    "kiln.engine.client": ("kiln.engine",),
    "kiln.engine.docker": ("kiln.engine",),
    "kiln.engine._reason": ("kiln.engine",),
}


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module name an import in `path` names (`from a import b`: a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == o or module.startswith(o + ".") for o in owners)


def gaps(src: Path = SRC, doors: Mapping[str, tuple[str, ...]] = DOORS) -> list[str]:
    """`module imports library (only door may)` for each import around a door."""
    out = []
    for path in sorted((src / "kiln").rglob("*.py")):
        module = module_name(path, src)
        for name in sorted(imported(path)):
            for library, owners in doors.items():
                if within(name, (library,)) and not within(module, owners):
                    out.append(f"{module} imports {name} (only {', '.join(owners)} may)")
    return out


def test_each_outside_system_is_reached_through_its_door_only() -> None:
    found = gaps()
    assert not found, ("a library that reaches an outside system is imported outside its door "
                       "(docs/architecture.md, \"The doors\"):\n  " + "\n  ".join(found)
                       + "\ngo through the door (kiln.run.run/stream/spawn, a method of "
                       "kiln.engine.Engine)")


def test_a_gap_is_found(tmp_path: Path) -> None:
    """The check above can fail: a small tree with an import around each door."""
    (tmp_path / "kiln" / "vm").mkdir(parents=True)
    (tmp_path / "kiln" / "run.py").write_text("import subprocess\n")
    (tmp_path / "kiln" / "engine").mkdir()
    (tmp_path / "kiln" / "engine" / "services.py").write_text("import docker.errors\n")
    (tmp_path / "kiln" / "vm" / "qemu.py").write_text(
        "def boot():\n    from subprocess import Popen\n")
    (tmp_path / "kiln" / "swarm.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import docker.types\n"
        "from kiln.engine import Engine, docker\n")
    assert gaps(tmp_path) == [
        "kiln.swarm imports docker.types (only kiln.engine may)",
        "kiln.swarm imports kiln.engine.docker (only kiln.engine may)",
        "kiln.vm.qemu imports subprocess (only kiln.run may)",
        "kiln.vm.qemu imports subprocess.Popen (only kiln.run may)"]
