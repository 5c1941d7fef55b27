"""What `check` finds before any build: owners, healthcheck numbers, build steps, file names;
`render` refuses what build would; `lock` names an unknown package on one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kilntest import REF, MakeProject, only_problem

from kiln.aptlock import UNKNOWN_RE
from kiln.pipeline import validate

BOOT = "base: {bootstrap: {suite: bookworm}}\n"


def image(*layers: str, base: str = BOOT) -> str:
    return f"{base}layers: [{', '.join(layers)}]\n"


FILES = {"layers/a/files/x": "x"}


@pytest.mark.parametrize(("layer", "expected"), [
    ("files:\n  - {src: x, dest: /etc/x, owner: redis}\n",
     "layers/a/layer.yaml:2: files[0].owner: no user 'redis' when this file is copied (neither "
     "the layers before it nor the Debian base create it) (declare it under users: in this or "
     "an earlier layer, or write a numeric id if a package creates it)"),
    ("files:\n  - {src: x, dest: /etc/x, owner: 'root:wheel'}\n",
     "layers/a/layer.yaml:2: files[0].owner: no group 'wheel' when this file is copied "
     "(neither the layers before it nor the Debian base create it) (declare it under groups: "
     "in this or an earlier layer, or write a numeric id if a package creates it)"),
])
def test_an_unknown_owner_is_an_error_at_check(make_project: MakeProject, layer: str,
                                               expected: str) -> None:
    project = make_project(layers={"a": layer}, images={"i": image("a")}, files=FILES)
    assert only_problem(lambda: validate(project)) == expected


@pytest.mark.parametrize("layer", [
    "users: [{name: redis}]\nfiles:\n  - {src: x, dest: /etc/x, owner: 'redis:redis'}\n",
    "files:\n  - {src: x, dest: /etc/x, owner: 'www-data:nogroup'}\n",
    "files:\n  - {src: x, dest: /etc/x, owner: '10001:10001'}\n",
    "files:\n  - {src: x, dest: /etc/x, owner: app}\nrequires: [acct]\n",
])
def test_known_owners_pass(make_project: MakeProject, layer: str) -> None:
    project = make_project(layers={"a": layer, "acct": "users: [{name: app}]\n"},
                           images={"i": image("a")}, files=FILES)
    validate(project)


def test_an_owner_from_a_parent_image_is_known(make_project: MakeProject) -> None:
    project = make_project(
        layers={"acct": "users: [{name: app}]\n",
                "a": "files:\n  - {src: x, dest: /etc/x, owner: 'app:app'}\n"},
        images={"parent": image("acct"), "child": image("a", base="base: {image: parent}\n")},
        files=FILES)
    validate(project)


def test_owners_on_a_base_of_unknown_passwd_are_not_guessed(make_project: MakeProject) -> None:
    project = make_project(
        layers={"a": "files:\n  - {src: x, dest: /etc/x, owner: 'redis:redis'}\n"},
        images={"i": image("a", base=f"base: {{ref: '{REF}'}}\n")}, files=FILES)
    validate(project)


@pytest.mark.parametrize(("healthcheck", "expected"), [
    ("{test: [true], retries: -1}",
     "layers/a/layer.yaml:1: healthcheck.retries: -1 is not a number of tries "
     "(write 1 or more (default 3))"),
    ("{test: [true], interval: 0s}",
     "layers/a/layer.yaml:1: healthcheck.interval: '0s' is shorter than Docker's minimum of "
     "1ms (write a duration like 10s)"),
    ("{test: [true], timeout: 500us}",
     "layers/a/layer.yaml:1: healthcheck.timeout: '500us' is shorter than Docker's minimum of "
     "1ms (write a duration like 10s)"),
])
def test_healthcheck_numbers_are_checked(make_project: MakeProject, healthcheck: str,
                                         expected: str) -> None:
    project = make_project(layers={"a": f"healthcheck: {healthcheck}\n"}, images={"i": image("a")})
    assert only_problem(lambda: validate(project)) == expected


def test_a_zero_start_period_is_fine(make_project: MakeProject) -> None:
    project = make_project(layers={"a": "healthcheck: {test: [true], start_period: 0s}\n"},
                           images={"i": image("a")})
    validate(project)


def test_too_many_build_steps_are_refused_with_a_hint(make_project: MakeProject) -> None:
    steps = "".join(f"  - echo {i}\n" for i in range(150))
    project = make_project(layers={"a": "description: many\nrun:\n" + steps},
                           images={"i": image("a")})
    assert only_problem(lambda: validate(project)) == (
        "layers/a/layer.yaml:3: image 'i' needs 150 build steps on 1 base layers, more than the "
        "125 layers the engine stacks (BuildKit would fail with 'max depth exceeded') (merge "
        "run steps: layer 'a' has 150; one step can run several commands (join them with && or "
        "write one multi-line script))")


def test_an_image_file_name_that_is_no_image_name(make_project: MakeProject) -> None:
    project = make_project(layers={"a": ""}, images={"Redis": image("a")})
    assert only_problem(lambda: validate(project)) == (
        "images/Redis.yaml: 'Redis' is not a valid image name (the file name is the image's "
        "name) (rename it images/redis.yaml: lowercase letters, digits, '.', '_' and '-')")


def test_apt_unknown_package_lines_are_found() -> None:
    output = ("Reading package lists...\nE: Unable to locate package redis-servr\n"
              "E: Package 'libfoo1' has no installation candidate\n")
    assert UNKNOWN_RE.findall(output) == ["redis-servr", "libfoo1"]


REPO = Path(__file__).resolve().parents[2]


def test_render_refuses_what_build_would(tmp_path: Path) -> None:
    from kilncli import KilnCLI

    kiln = KilnCLI(None)

    for folder in ("images", "layers"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    layer = tmp_path / "layers" / "python" / "layer.yaml"
    text = layer.read_text()
    layer.write_text(text.replace("  - python3-venv\n", "  - python3-venv\n  - curl\n"))
    stale = kiln(tmp_path, "render", "python")
    assert stale.returncode == 1 and stale.stdout == ""
    assert stale.stderr.strip() == (
        "error: images/python.lock is stale for image 'python': layer 'python': added curl "
        "(run `kiln lock python` and review the diff)")
    (tmp_path / "images" / "python.lock").unlink()
    missing = kiln(tmp_path, "render", "python")
    assert missing.returncode == 1 and "run `kiln lock python`" in missing.stderr
