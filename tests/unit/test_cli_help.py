"""kiln's CLI conventions: help for every task with no side effect, one meaning per short flag,
--json wherever something changes or is reported, messages naming the command that was run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke import Program

from kiln import prog
from kiln.cli import KilnProgram, help_argv, namespace
from kiln.commands.common import SHORT_FLAGS

REPO = Path(__file__).resolve().parents[2]
TASKS = sorted(namespace.task_names)
# Tasks that neither change nor report anything a script would read.
NO_JSON = {"help", "shell", "run"}  # interactive: a terminal, not a result


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the samples, with no engine and no registry reachable: a task that ran would
    fail or leave a trace."""
    for folder in ("images", "layers"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    for name in ("KILN_PROJECT", "KILN_REGISTRY", "KILN_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path
    prog.set_name("kiln")


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run(program: Program, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        program.run(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def kiln_program() -> KilnProgram:
    prog.set_name("kiln")
    return KilnProgram(name="kiln", binary="kiln", namespace=namespace)


def invoke_program() -> Program:
    prog.set_name("invoke")
    return Program(binary="invoke", namespace=namespace)


@pytest.mark.parametrize("form", ["task --help", "task -h", "help task", "task arg --help"])
@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_help_and_it_runs_nothing(task: str, form: str, project: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(project)
    argv = ["kiln", *form.replace("task", task).split()]
    code, out = run(kiln_program(), argv, capsys)
    assert code == 0, out
    assert out.startswith(f"Usage: kiln {task}"), out
    assert "Examples:" in out and f"\n  kiln {task}" in out
    assert "Options:" in out and "-h, --help" in out
    assert tree(project) == before  # no file written, no registry storage, no lock


@pytest.mark.parametrize("task", TASKS)
def test_help_under_invoke_runs_nothing_and_names_invoke(
        task: str, project: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(project)
    forms = [["invoke", "help", task], ["invoke", "--help", task]]
    if sum(a.positional for a in namespace[task].get_arguments()) < 2:
        # invoke's own parser stops at a missing second positional before kiln sees --help
        forms.append(["invoke", task, "--help"])
    for argv in forms:
        code, out = run(invoke_program(), argv, capsys)
        assert code == 0, out
        assert "Usage: invoke" in out and task in out.splitlines()[0]
        assert "Usage: kiln" not in out
    assert tree(project) == before


def test_positional_help_value_is_help_not_an_argument(project: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # invoke's own parser hands `--help` to a task as its image: kiln shows help instead
    code, out = run(invoke_program(), ["invoke", "pull", "--help"], capsys)
    assert code == 0
    assert out.startswith("Usage: invoke pull [options] <image>")
    assert "--help:stable" not in out and ".kiln" not in tree(project)


def test_kiln_help_lists_kiln_tasks_and_options_only(project: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["kiln", "--help"], ["kiln", "-h"], ["kiln", "help"], ["kiln"]):
        code, out = run(kiln_program(), argv, capsys)
        assert code == 0
        listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
        assert set(TASKS) <= listed
        for core in ("--prompt-for-sudo-password", "--echo", "--pty", "--write-pyc", "--dry",
                     "--command-timeout", "--list-format", "core-opts"):
            assert core not in out


def test_unknown_task_help_is_one_line_with_a_guess(project: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(kiln_program(), ["kiln", "help", "bild"], capsys)
    assert code == 1
    assert out.strip() == "error: no task called 'bild' (did you mean 'build'?)"


def test_one_meaning_per_short_flag() -> None:
    meaning: dict[str, set[str]] = {}
    for name in TASKS:
        for arg in namespace[name].get_arguments():
            long = max(arg.names, key=len)
            for short in (n for n in arg.names if len(n) == 1):
                meaning.setdefault(short, set()).add(long)
    assert meaning, "no task has a short flag"
    assert {short: longs for short, longs in meaning.items() if len(longs) > 1} == {}
    assert {short: next(iter(longs)) for short, longs in meaning.items()} == {
        s: long for long, s in SHORT_FLAGS.items() if s in meaning}
    # invoke's core short flags keep their one meaning too
    assert not set(meaning) & {"h", "V", "l", "d"}


def test_help_survives_being_read_twice() -> None:
    first = [a.help for a in namespace["build"].get_arguments()]
    assert first == [a.help for a in namespace["build"].get_arguments()]
    assert all(first)


@pytest.mark.parametrize("task", sorted(set(TASKS) - NO_JSON))
def test_every_task_that_changes_or_reports_has_json(task: str) -> None:
    flags = {n for a in namespace[task].get_arguments() for n in a.names}
    assert {"json", "j"} <= flags


def test_help_argv_moves_help_before_the_task() -> None:
    names = ["build", "verify"]
    assert help_argv(["kiln", "build", "nginx", "--help"], names) == ["kiln", "--help", "build"]
    assert help_argv(["kiln", "-d", "verify", "-h"], names) == ["kiln", "-d", "--help", "verify"]
    assert help_argv(["kiln", "build", "nginx"], names) == ["kiln", "build", "nginx"]


@pytest.mark.parametrize(("name", "message", "shown"), [
    ("kiln", "run `invoke lock nginx` and review", "run `kiln lock nginx` and review"),
    ("invoke", "run `invoke lock nginx` and review", "run `invoke lock nginx` and review"),
    ("invoke", "see `kiln catalog`", "see `invoke catalog`"),
    ("kiln", "invoke is the engine; `invoke`", "invoke is the engine; `invoke`"),
])
def test_messages_name_the_command_that_was_run(name: str, message: str, shown: str) -> None:
    prog.set_name(name)
    try:
        assert prog.localise(message) == shown
    finally:
        prog.set_name("kiln")
