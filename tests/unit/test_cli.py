"""The CLI as a user runs it: exit codes, one-line errors, byte-identical renders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def kiln(cwd: Path, *args: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("KILN_PROJECT", "KILN_DEBUG")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", "from kiln.cli import main; main()", *args],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


def copy_definitions(target: Path) -> Path:
    for folder in ("images", "layers"):
        shutil.copytree(REPO / folder, target / folder)
    return target


def test_render_is_byte_identical_from_two_checkout_paths(tmp_path: Path) -> None:
    one = copy_definitions(tmp_path / "one")
    two = copy_definitions(tmp_path / "elsewhere" / "two")
    for path in (two / "layers").rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))  # another clock: mtimes must not matter
    first, second = kiln(one, "render", "nginx"), kiln(two, "render", "nginx")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.startswith("# Rendered by kiln")
    assert "FROM kiln/base:" in first.stdout


def test_invoke_and_kiln_offer_the_same_tasks() -> None:
    def names(out: str) -> list[str]:
        return sorted(line.split()[0] for line in out.splitlines()
                      if line.startswith("  ") and line.strip() and not line.startswith("   "))

    via_kiln = kiln(REPO, "--list")
    via_invoke = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
    assert via_kiln.returncode == via_invoke.returncode == 0
    assert names(via_kiln.stdout) == names(via_invoke.stdout)
    assert {"build", "render", "check"} <= set(names(via_kiln.stdout))


@pytest.mark.parametrize(("layer_yaml", "expected"), [
    ("packages: [curl]\npakages: [wget]\n",
     "layers/broken/layer.yaml:2: unknown key 'pakages' (did you mean 'packages'?)"),
    ("requires: [broken]\n",
     "layers/broken/layer.yaml:1: layers require each other in a cycle: broken -> broken "
     "(remove one of these requires)"),
    ("run: &a [true]\nenv: *a\n",
     "layers/broken/layer.yaml:1: YAML anchor '&a' is not allowed (write the value out; "
     "reuse belongs in a layer)"),
])
def test_broken_definition_is_one_line_and_exit_1(tmp_path: Path, layer_yaml: str,
                                                  expected: str) -> None:
    root = copy_definitions(tmp_path / "p")
    (root / "layers" / "broken").mkdir()
    (root / "layers" / "broken" / "layer.yaml").write_text(layer_yaml)
    (root / "images" / "broken.yaml").write_text(
        "base:\n  image: base\nlayers: [broken]\n")
    result = kiln(root, "check")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"error: {expected}" in lines[0] or expected in lines
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    root = copy_definitions(tmp_path / "p")
    (root / "images" / "base.yaml").write_text("base: {image: nope}\nlayers: []\n")
    quiet = kiln(root, "render", "base")
    loud = kiln(root, "render", "base", env={"KILN_DEBUG": "1"})
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert "images/base.yaml:1: base image 'nope' does not exist" in quiet.stderr
    assert loud.returncode != 0 and "Traceback" in loud.stderr


def test_no_project_is_a_clear_error(tmp_path: Path) -> None:
    result = kiln(tmp_path, "images")
    assert result.returncode == 1
    assert "no kiln project here or above" in result.stderr


def test_the_kiln_command_shows_task_help_and_runs_nothing(tmp_path: Path) -> None:
    root = copy_definitions(tmp_path / "p")
    before = sorted(root.rglob("*"))
    result = kiln(root, "publish", "nginx", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: kiln publish [options] <image>")
    assert result.stderr == "" and sorted(root.rglob("*")) == before  # no registry started
