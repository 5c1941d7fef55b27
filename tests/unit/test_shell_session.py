"""kiln.testing.ShellSession: the one-shell protocol both verification backends speak (a
container's attached exec, a VM's SSH channel), here over a local /bin/sh's pipes."""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Iterator

import pytest

from kiln.testing import ShellSession


class PipeChannel:
    """A Channel on a local /bin/sh; pieces come in whatever sizes the pipes give."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["/bin/sh"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def piece(self) -> tuple[int, bytes]:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        streams = {self.proc.stdout.fileno(): 1, self.proc.stderr.fileno(): 2}
        ready, _, _ = select.select(list(streams), [], [], 10)
        assert ready, "the shell answered nothing in 10 s"
        data = os.read(ready[0], 7)  # small reads: markers arrive split across pieces
        assert data, "the shell ended"
        return streams[ready[0]], data

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def session() -> Iterator[ShellSession]:
    channel = PipeChannel()
    shell = ShellSession(channel)
    yield shell
    shell.close()
    assert channel.proc.returncode == 0


def test_output_streams_and_exit_status_come_back_apart(session: ShellSession) -> None:
    assert session.run(b"echo out; echo err >&2; exit 3") == (3, b"out\n", b"err\n")
    assert session.run(b"printf 'no newline'") == (0, b"no newline", b"")
    assert session.run(b"printf '\\0\\377\\n\\n'") == (0, b"\0\xff\n\n", b"")


def test_a_command_cannot_disturb_the_next(session: ShellSession) -> None:
    # stdin is /dev/null (the protocol stays unread), and each command has its own sh -c
    assert session.run(b"cat; cd /; set -e; X=1; exit 1")[0] == 1
    assert session.run(b"echo \"${X:-unset}\"; pwd")[1] == b"unset\n" + os.getcwd().encode() + b"\n"
    assert session.run(b"echo 'it'\"'\"'s quoted'") == (0, b"it's quoted\n", b"")
