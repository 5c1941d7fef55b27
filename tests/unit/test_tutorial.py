"""docs/tutorial.md, run: its files are the repository's (which the slow sample test builds and
verifies), and its steps that need no engine work from a copy of the samples without them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from kilncli import KilnCLI

kiln = KilnCLI(None)  # unit tests: no engine session

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = (REPO / "docs" / "tutorial.md").read_text()
FILE_RE = re.compile(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```\n", re.S)
SHELL_RE = re.compile(r"```sh\n(.*?)```\n", re.S)
NO_ENGINE = {"new", "check", "render", "help", "graph"}


def files() -> dict[str, str]:
    return {path: text for path, text in FILE_RE.findall(TUTORIAL)}


def commands() -> list[list[str]]:
    return [line.split() for block in SHELL_RE.findall(TUTORIAL)
            for line in block.splitlines() if line.startswith("kiln ")]


def test_the_tutorials_files_are_the_repositorys() -> None:
    found = files()
    assert set(found) == {"layers/webapp/layer.yaml", "layers/webapp/files/app/server.py",
                          "layers/webapp/tests/test_webapp.py", "images/webapp.yaml"}
    for path, text in found.items():
        assert (REPO / path).read_text() == text, f"docs/tutorial.md and {path} differ"


def test_the_tutorials_steps_run(tmp_path: Path) -> None:
    for folder in ("images", "layers"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.rmtree(tmp_path / "layers" / "webapp")
    (tmp_path / "images" / "webapp.yaml").unlink()
    steps = commands()
    assert [s[1] for s in steps] == ["new", "new", "check", "render", "build", "run"]
    written = files()
    for argv in steps:
        if argv[1] not in NO_ENGINE:
            continue  # build and run: the slow sample test builds and verifies these files
        result = kiln(tmp_path, *argv[1:])
        assert result.returncode == 0, (argv, result.stderr)
        if argv[1] == "new":  # then the reader writes the tutorial's files over the scaffold
            for path, text in written.items():
                if path.startswith(f"{'layers/webapp' if argv[2] == 'layer' else 'images'}/"):
                    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
                    (tmp_path / path).write_text(text)
        if argv[1] == "render":
            tail = result.stdout.split("ENTRYPOINT", 1)[1]
            assert tail.startswith(' ["python3", "/srv/app/server.py"]')
            assert "\nCMD " not in result.stdout and "\nUSER 10001:10001" in tail
