"""Output for people and for CI logs: unlimited width off a terminal, each step's own time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kiln import ui as ui_module
from kiln.ui import UI


def test_lines_are_not_wrapped_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    line = "docker exec -it kiln-verify-nginx-0123456789abcdef sh  # " + "x" * 150
    ui = UI()
    ui.info(line)
    ui.result(line)
    ui.table("t", ["ref"], [("kiln/nginx:" + "f" * 64,)])
    out = capsys.readouterr()
    assert line in out.err.splitlines()
    assert line in out.out.splitlines()
    assert any(("kiln/nginx:" + "f" * 64) in row for row in out.out.splitlines())


def test_each_step_shows_its_own_time(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]  # the UI's clock, moved by the test: no sleep, no load-dependent bound
    monkeypatch.setattr(ui_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    ui = UI()
    with ui.task("build x"):
        clock[0] += 5.0  # the task's first 5 s belong to no step
        ui.step("slow step")
        clock[0] += 2.5
        ui.step("quick step")
        clock[0] += 0.1
    err = capsys.readouterr().err.splitlines()
    slow = next(line for line in err if "slow step" in line)
    quick = next(line for line in err if "quick step" in line)
    assert slow.rsplit("(", 1)[1] == "2.5s)"
    assert quick.rsplit("(", 1)[1] == "0.1s)"  # not time since the task began


def test_a_multi_line_run_step_gets_its_number() -> None:
    from kiln.buildkit import _key, step_number

    instructions = ["FROM kiln/base:0123", "ENV A=1",
                    'RUN ["/bin/sh", "-euc", "echo one\\necho two\\n"]', "USER app"]
    keys = [_key(i) for i in instructions]
    assert step_number("FROM kiln/base:0123", keys, 0) == 1
    assert step_number("ENV A=1", keys, 1) == 2
    # BuildKit's own rendering of the exec-form script matches no instruction
    assert step_number("RUN /bin/sh -euc echo one\necho two\n", keys, 2) == 3
    assert step_number("USER app", keys, 3) == 4
