"""Engine.run_once, the one way to run a command in a throwaway container: its exit code and
output (stdout and stderr apart), the container removed pass or fail, killed at its timeout.
Busybox test base, imported under this session's namespace."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginescope import SESSION

from kiln.engine import Engine, RunResult
from kiln.errors import EngineError


@pytest.fixture(scope="module")
def busybox(engine: Engine, busybox_tar: bytes, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:
    tarball: Path = tmp_path_factory.mktemp("busybox") / "busybox.tar"
    tarball.write_bytes(busybox_tar)
    ref = f"{SESSION}/engine-run:busybox"
    engine.import_rootfs(tarball, ref, [])
    yield ref
    engine.remove_image(ref)


def test_a_command_that_exits_at_once_gives_its_code_and_both_streams(engine, busybox):
    """The stream is attached before the start: a command done before an attach could be made
    once left the run waiting forever."""
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(engine.run_once(
        busybox, ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])), daemon=True)
    runner.start()
    runner.join(120)
    assert results, "run_once did not return within 120s (an attach that never ends?)"
    ran = results[0]
    assert (ran.exit_code, ran.stdout, ran.stderr) == (3, "out\n", "err\n")
    assert sorted(ran.output.splitlines()) == ["err", "out"]


def test_a_run_past_its_timeout_is_killed_and_an_error(engine, busybox):
    with pytest.raises(EngineError, match=r"sleep in a container of .* did not end within 1s"):
        engine.run_once(busybox, ["sleep", "60"], timeout=1)
    # the container is gone: the leaves_nothing fixture fails the test otherwise


def test_a_missing_program_is_an_engine_error_and_leaves_nothing(engine, busybox):
    with pytest.raises(EngineError, match="running /no/such/program in a container of"):
        engine.run_once(busybox, ["/no/such/program"], name=f"{SESSION}-missing")
    assert not [c for c in engine.containers() if c.name == f"{SESSION}-missing"]
