"""`kiln lock` with a misspelt package: one line naming the layer, the line and the closest name
in the suite, not apt's output. Bootstraps bookworm from the Debian mirror."""

from __future__ import annotations

import pytest

FILES = {
    "layers/cache/layer.yaml": """\
        description: a cache server
        packages:
          - netbase
          - redis-servr
    """,
    "images/cache.yaml": """\
        base:
          bootstrap:
            suite: bookworm
            variant: minbase
        layers: [cache]
    """,
}


@pytest.mark.slow
def test_unknown_package_at_lock_is_one_line_with_a_guess(make_project, engine, kiln_cli):
    project = make_project(FILES)
    result = kiln_cli(project.root, "lock", "cache", env={"KILN_PROJECT": str(project.root)},
                      timeout=900)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: layers/cache/layer.yaml:4: package 'redis-servr' not in bookworm "
        "(did you mean redis-server?)")
    assert "InRelease" not in result.stderr
    assert not (project.root / "images" / "cache.lock").exists()
