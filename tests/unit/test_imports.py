"""`import kiln.cli` stays light: the libraries only some tasks need load in those tasks.

Each one costs tens to hundreds of milliseconds, and a no-op build is meant to take tens of
milliseconds in all (issue 13). Run in a subprocess: this test process has pytest loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pytest", "_pytest", "testinfra", "paramiko", "docker", "requests", "rich",
         "cryptography")


def loaded_after(statement: str) -> list[str]:
    probe = (f"import sys; {statement}; import json; "
             f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    return list(json.loads(out))


@pytest.mark.parametrize("module", ["kiln.cli", "kiln.pipeline", "kiln.noop"])
def test_importing_the_cli_and_the_build_path_loads_no_heavy_library(module):
    assert loaded_after(f"import {module}") == []


def test_the_probe_sees_a_heavy_import():
    """The check above can fail: the same probe finds docker-py once the client is made."""
    assert "docker" in loaded_after("from kiln.engine import docker; docker.errors")
