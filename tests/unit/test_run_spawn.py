"""run.spawn: a child beside kiln (qemu) that is always killed and reaped, with the scrubbed
environment and run()'s error messages. Real processes (sleep, sh), no engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln.errors import CommandError
from kiln.run import free_port, spawn


def gone(pid: int, seconds: float = 10) -> bool:
    """The process has stopped running: it no longer exists, or is a zombie waiting for
    whoever inherited it (init, or a subreaper) to reap it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def test_leaving_the_block_by_an_exception_kills_and_reaps(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), spawn(["sleep", "60"], log=tmp_path / "log") as child:
        pid = child.pid
        assert child.alive
        raise RuntimeError("the caller failed")
    assert not child.alive
    assert child.returncode() == -signal.SIGKILL
    # reaped: no zombie left behind (waitpid on it finds no child of ours)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert child.stop() == -signal.SIGKILL  # idempotent


def test_the_child_gets_the_scrubbed_environment_and_its_output_goes_to_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_SECRET_FOR_TEST", "leaked")
    with spawn(["sh", "-c", "env; echo to-stderr >&2"], log=tmp_path / "log",
               env={"EXTRA": "given"}) as child:
        assert child.wait(30) == 0
    text = (tmp_path / "log").read_text()
    assert "KILN_SECRET_FOR_TEST" not in text
    assert "EXTRA=given" in text and "LC_ALL=C.UTF-8" in text
    assert "to-stderr" in child.tail()


def test_a_failure_reads_like_runs_the_command_and_the_tail(tmp_path: Path) -> None:
    argv = ["sh", "-c", "for i in $(seq 1 100); do echo line$i; done; exit 3"]
    with spawn(argv, log=tmp_path / "log") as child:
        assert child.wait(30) == 3
    message = str(child.failure())
    assert message.startswith(f"`{' '.join(argv)}` exited with 3:\n")
    assert "line100" in message and "line60" not in message  # the tail only


def test_a_wait_that_times_out_is_a_kiln_error_and_the_child_still_goes(tmp_path: Path) -> None:
    with (spawn(["sleep", "60"], log=tmp_path / "log") as child,
          pytest.raises(CommandError, match="still running after 0s")):
        child.wait(0.2)
    assert not child.alive


def test_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="kiln-no-such-program: command not found"):
        spawn(["kiln-no-such-program"], log=tmp_path / "log")


def test_the_child_dies_with_kiln_killed_outright(tmp_path: Path) -> None:
    """SIGKILL runs no `finally`: the kernel kills the child (PR_SET_PDEATHSIG)."""
    pid_file = tmp_path / "pid"
    script = ("import sys, time\nfrom pathlib import Path\nfrom kiln.run import spawn\n"
              f"child = spawn(['sleep', '60'], log=Path({str(tmp_path / 'log')!r}))\n"
              f"Path({str(pid_file)!r}).write_text(str(child.pid))\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the parent did not start its child"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert not gone(child, seconds=0.2)
        parent.kill()
    finally:
        parent.kill()
        parent.wait()
    assert gone(child), "the child outlived its parent"


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
