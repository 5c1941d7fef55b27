"""The one way tests run the `kiln` CLI: a child process with a scrubbed environment.

The caller's KILN_* variables never reach it (with KILN_PROJECT set, a test would act on the
developer's checkout). Kept: what finds the engine, the programs and the home folder (PATH,
HOME, DOCKER_HOST), the test's DOCKER_CONFIG, the locale, and the test session's own
KILN_SESSION (see tests/integration/enginescope.py); a test adds what it means to set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KEPT = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "LANG", "LC_ALL", "TMPDIR")
MAIN = "from kiln.cli import main; main()"


class KilnCLI:
    def __init__(self, session: str | None) -> None:
        self.session = session

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {key: os.environ[key] for key in KEPT if key in os.environ}
        if self.session:
            env["KILN_SESSION"] = self.session
        return env | (extra or {})

    def __call__(self, cwd: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 300, code: str = MAIN) -> subprocess.CompletedProcess[str]:
        """`kiln <args>` in `cwd`, waited for. `code` is what the child runs instead of the
        plain entry point (a probe around it, a pause gate): it must end by calling kiln."""
        return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=self.env(env),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, cwd: Path, *args: str, env: dict[str, str] | None = None,
              code: str = MAIN, merged: bool = False) -> subprocess.Popen[str]:
        """Started, not waited for (a test that interrupts it, or runs two at once); with
        `merged`, stderr goes into stdout (one stream to read while it runs)."""
        return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=self.env(env),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merged else subprocess.PIPE,
                                text=True)
