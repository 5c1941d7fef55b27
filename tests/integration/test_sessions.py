"""Two test sessions on one engine, and a third party's image made while they run.

Sessions `a` and `b` (pytest processes running session_probe.py) build the same image, so the
engine holds one image ID under three names: a's, b's and the third party's (built here under
another KILN_SESSION, after both sessions built and before they use their image). `a` finishes
first and cleans up; only then does `b` run its image. Both must pass, the third party's
image and container must be untouched, and neither session may leave anything behind.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from enginescope import all_refs, remove_refs
from session_probe import PROJECT

from kiln import session
from kiln.pipeline import build_image

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def as_session(name: str) -> Iterator[None]:
    old = os.environ[session.ENV]
    os.environ[session.ENV] = name
    try:
        yield
    finally:
        os.environ[session.ENV] = old


def start(name: str, rendezvous: Path, tmp_path: Path, after: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, "PROBE_RENDEZVOUS": str(rendezvous), "PROBE_NAME": name,
           "PROBE_AFTER": after}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / name}", str(Path(__file__).with_name("session_probe.py"))],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, procs: tuple[subprocess.Popen[str], ...], timeout: float = 300) -> None:
    """Wait until a session makes `path`; a session that ended before fails the test at once."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def test_two_sessions_and_a_third_party_share_an_engine(make_project, kiln_ctx, engine,
                                                        tmp_path):
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    third = f"third-party-{secrets.token_hex(4)}"
    a = start("a", rendezvous, tmp_path)
    b = start("b", rendezvous, tmp_path, after="a")
    try:
        wait_for(rendezvous / "built-a", (a, b))
        wait_for(rendezvous / "built-b", (a, b))
        with as_session(third):
            theirs = build_image(kiln_ctx(make_project(PROJECT)), "small")
            container = engine.create_container(theirs.image_id, f"{third}-kept")
        their_refs = {ref: engine.image_id(ref) for ref in all_refs(engine)
                      if ref.startswith(f"{third}/")}
        assert their_refs[theirs.ref] == theirs.image_id
        shared = {(rendezvous / f"built-{name}").read_text() for name in "ab"}
        assert shared == {theirs.image_id}  # one ID, three parties' names for it
        (rendezvous / "go").touch()
        finish(a)
        (rendezvous / "done-a").touch()
        finish(b)

        assert {ref: engine.image_id(ref) for ref in their_refs} == their_refs
        assert engine.inspect_container(container)["Id"] == container
        for proc in (a, b):  # each session cleaned up its own
            mine = f"kiln-test-{proc.pid}-"
            assert not [ref for ref in all_refs(engine) if ref.startswith(mine)]
            assert not [c.name for c in engine.containers()
                        if c.labels.get(session.LABEL, "").startswith(mine)]
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # pytest tears down, cleaning up, then exits
                try:
                    proc.communicate(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
        # What the sessions started here and the third party left, if they failed half-way.
        started = (f"kiln-test-{a.pid}-", f"kiln-test-{b.pid}-", f"{third}")
        for leftover in engine.containers():
            if leftover.labels.get(session.LABEL, "").startswith(started):
                engine.remove_container(leftover.id)
        remove_refs(engine, {ref for ref in all_refs(engine) if ref.startswith(started)})
