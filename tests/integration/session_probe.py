"""A small integration module that test_sessions.py runs as pytest sessions of their own, side
by side on one engine. Not collected by a normal run (the name does not start with test_).

Each session builds the same image (so the same image ID as the other sessions and the third
party), says so, and waits for the go of the test that started it before using the image: by
then a third party has tagged that ID too, and (for the session told to wait for it) another
session has finished and cleaned up after itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kiln.pipeline import build_image

PROJECT = {
    "layers/hello/layer.yaml": "run: ['echo hello > /hello']\n",
    "images/small.yaml": """\
        {busybox}
        layers: [hello]
    """,
}

RENDEZVOUS = os.environ.get("PROBE_RENDEZVOUS", "")
pytestmark = pytest.mark.skipif(not RENDEZVOUS, reason="run by test_sessions.py")


def wait_for(path: Path, timeout: float = 300) -> None:
    """Wait until `path` exists (made by the test that started this session)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never came")
        time.sleep(0.05)


def test_image_survives_other_sessions(make_project, kiln_ctx, engine):
    where, me = Path(RENDEZVOUS), os.environ["PROBE_NAME"]
    result = build_image(kiln_ctx(make_project(PROJECT)), "small")
    (where / f"{me}.tmp").write_text(result.image_id)
    (where / f"{me}.tmp").rename(where / f"built-{me}")
    wait_for(where / "go")
    if after := os.environ.get("PROBE_AFTER"):
        wait_for(where / f"done-{after}")
    ran = engine.run_once(result.ref, ["cat", "/hello"])
    assert (ran.exit_code, ran.stdout) == (0, "hello\n")
