"""The no-op build answered before the CLI loads (kiln.noop), against the real engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.context import prepare
from kiln.fingerprint import image_repository
from kilncli import KilnCLI

SMALL = {
    "layers/hello/layer.yaml": """\
        files:
          - src: motd
            dest: /etc/motd
        run:
          - echo hello > /greeting
    """,
    "layers/hello/files/motd": "welcome\n",
    "layers/hello/tests/test_hello.py": """\
        def test_greets(host):
            assert host.file("/greeting").content_string == "hello\\n"
    """,
    "images/small.yaml": """\
        {busybox}
        version: "1.0"
        layers: [hello]
    """,
    "images/kid.yaml": """\
        base:
          image: small
        layers: []
    """,
}
# Prints, after the command's own output, whether the CLI (invoke) was loaded: the fast path
# answers without it.
PROBE = ("import sys; from kiln.entry import main; sys.argv[0] = 'kiln'; main(); "
         "print('CLI loaded' if 'invoke' in sys.modules else 'fast path', file=sys.stderr)")


@pytest.fixture
def kiln(kiln_cli: KilnCLI) -> Callable[..., tuple[str, str]]:
    """`kiln <args>` through the probe: (its output, whether the CLI was loaded)."""

    def run(root: Path, *args: str, columns: str = "200") -> tuple[str, str]:
        proc = kiln_cli(root, *args, env={"KILN_PROJECT": str(root), "COLUMNS": columns},
                        timeout=600, code=PROBE)
        assert proc.returncode == 0, proc.stderr
        *lines, how = proc.stderr.rstrip("\n").split("\n")
        return proc.stdout + "\n".join(lines), how

    return run


def test_unchanged_build_is_answered_without_the_cli_and_says_the_same(make_project, engine,
                                                                       kiln):
    project = make_project(SMALL)
    root = project.root
    kiln(root, "build", "kid")  # builds and verifies small, then kid; records that it did
    full, how = kiln(root, "build", "kid")
    assert how == "CLI loaded"  # no output of a no-op kept yet: the full path answers...
    assert "kid: up to date" in full and "small: verified on" in full
    fast, how = kiln(root, "build", "kid")
    assert (how, fast) == ("fast path", full)  # ...and the next answer is its own words

    # Any input touched, even with the same content: the full path decides (and re-records).
    (root / "layers" / "hello" / "files" / "motd").write_text("welcome\n")
    assert kiln(root, "build", "kid") == (full, "CLI loaded")
    assert kiln(root, "build", "kid") == (full, "fast path")

    # Another terminal (here: another width for rich): the full path words it again.
    assert kiln(root, "build", "kid", columns="120")[1] == "CLI loaded"
    assert kiln(root, "build", "kid", columns="120")[1] == "fast path"

    # A file added anywhere under layers/ (a folder's mtime changes).
    (root / "layers" / "hello" / "tests" / "conftest.py").write_text("")
    assert kiln(root, "build", "kid")[1] == "CLI loaded"

    # The engine no longer agrees: a tag moved away from the recorded ID.
    small_ref = prepare(project, "small").ref
    engine.tag(engine.image_id(small_ref) or "", f"{image_repository('kid')}:latest")
    out, how = kiln(root, "build", "kid")
    assert how == "CLI loaded" and "kid: up to date" in out  # and tagged again
    assert kiln(root, "build", "kid") == (out, "fast path")

    # Options always take the full path.
    assert kiln(root, "build", "kid", "--force")[1] == "CLI loaded"
