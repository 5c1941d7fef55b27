"""Fingerprint, plan and lock: pure functions over a project written to a temp folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln import lockfile, planner
from kiln.compose import compose
from kiln.fingerprint import fingerprint, inputs
from kiln.load import Project
from kiln.lockfile import Lock, LockedPackage, LockError, LockSection

SHA = "ab" * 32
LAYER = """\
    params:
      greeting:
        type: string
        default: hello
    packages: [curl]
    files:
      - src: motd
        dest: /etc/motd
    run:
      - echo "{{ greeting }}" > /greeting
"""
IMAGE = """\
    base:
      ref: debian@sha256:%s
    layers: [hello]
""" % ("cd" * 32)


def lock_for(version: str = "8.0-1", sha: str = SHA) -> Lock:
    pkg = LockedPackage("curl", version, "amd64", 123, sha,
                        f"http://deb.debian.org/debian/pool/main/c/curl/curl_{version}_amd64.deb")
    return Lock("small", (LockSection("hello", ("curl",), (pkg,)),))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "p"
    (root / "layers/hello/files").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "layers/hello/layer.yaml").write_text(textwrap.dedent(LAYER))
    (root / "layers/hello/files/motd").write_text("welcome\n")
    (root / "images/small.yaml").write_text(textwrap.dedent(IMAGE))
    lockfile.write(root, lock_for())
    return Project(root)


def fp_of(root: Path) -> str:
    project = Project(root)
    return fingerprint(root, compose(project, "small"))


def _edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / rel
        path.write_text(path.read_text().replace(old, new, 1))
    return apply


def _chmod(root: Path) -> None:
    (root / "layers/hello/layer.yaml").write_text(
        textwrap.dedent(LAYER).replace("dest: /etc/motd", "dest: /etc/motd\n    mode: \"0600\""))


CHANGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "one byte of a layer file": (_edit("layers/hello/files/motd", "welcome", "welcomE"),
                                 "layer file"),
    "a file mode": (_chmod, "definition key"),
    "a package version in the lock": (
        lambda root: lockfile.write(root, lock_for("8.0-2", "ef" * 32)), "lock entry"),
    "a param": (_edit("images/small.yaml", "layers: [hello]",
                      "layers: [hello]\nparams:\n  greeting: hi"), "param"),
    "a run step": (_edit("layers/hello/layer.yaml", "> /greeting", ">> /greeting"),
                   "definition key"),
    "the base digest": (_edit("images/small.yaml", "cdcd", "cdce"), "base"),
}
UNCHANGED: dict[str, Callable[[Path], None]] = {
    "the file's mtime": lambda root: __import__("os").utime(
        root / "layers/hello/files/motd", (1, 1)),
    "a comment in the layer": _edit("layers/hello/layer.yaml", "params:", "# note\nparams:"),
    "the lock's comments": _edit("images/small.lock", "# Review", "# Please review"),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_fingerprint_changes_with_every_input(project: Project, case: str) -> None:
    before = fp_of(project.root)
    old_inputs = inputs(project.root, compose(Project(project.root), "small"))
    change, kind = CHANGES[case]
    change(project.root)
    assert fp_of(project.root) != before
    why = planner.changes(old_inputs, inputs(project.root, compose(Project(project.root),
                                                                     "small")))
    assert kind in {c.kind for c in why}, why


@pytest.mark.parametrize("case", sorted(UNCHANGED))
def test_fingerprint_ignores_what_is_not_an_input(project: Project, case: str) -> None:
    before = fp_of(project.root)
    UNCHANGED[case](project.root)
    assert fp_of(project.root) == before


def test_fingerprint_does_not_depend_on_the_checkout_path(project: Project,
                                                          tmp_path: Path) -> None:
    import shutil
    other = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(project.root, other)
    assert fp_of(other) == fp_of(project.root)


def test_lock_change_is_explained_old_to_new(project: Project) -> None:
    old = inputs(project.root, compose(project, "small"))
    lockfile.write(project.root, lock_for("8.0-2", "ef" * 32))
    new = inputs(project.root, compose(Project(project.root), "small"))
    assert [str(c) for c in planner.changes(old, new)] == [
        "lock entry: curl:amd64 8.0-1 -> 8.0-2"]


def test_missing_lock_is_a_clear_error(project: Project) -> None:
    lockfile.lock_path(project.root, "small").unlink()
    with pytest.raises(LockError, match=r"images/small.lock: missing\. Image 'small' installs "
                                        r"packages \(hello: curl\).*invoke lock small"):
        lockfile.check(compose(project, "small"), lockfile.read(project.root, "small"))


def test_stale_lock_names_the_image_and_what_changed(project: Project) -> None:
    _edit("layers/hello/layer.yaml", "packages: [curl]", "packages: [curl, jq]")(project.root)
    plan = compose(Project(project.root), "small")
    with pytest.raises(LockError, match=r"images/small.lock is stale for image 'small': "
                                        r"layer 'hello': added jq .*invoke lock small"):
        lockfile.check(plan, lockfile.read(project.root, "small"))


def test_fitting_lock_passes(project: Project) -> None:
    lockfile.check(compose(project, "small"), lockfile.read(project.root, "small"))


def test_lock_round_trips_and_diffs_package_by_package(project: Project) -> None:
    lock = lockfile.read(project.root, "small")
    assert lock == lock_for()
    assert lockfile.parse(lockfile.dumps(lock_for()), "x") == lock_for()
    new = Lock("small", (LockSection("hello", ("curl",), (
        lock_for("8.0-2").packages[0],
        LockedPackage("libcurl4", "8.0-2", "amd64", 1, SHA, "http://x/libcurl4.deb"))),))
    assert lockfile.diff(lock, new) == ["~ curl 8.0-1 -> 8.0-2", "+ libcurl4 8.0-2"]
    assert lockfile.diff(new, lock) == ["~ curl 8.0-2 -> 8.0-1", "- libcurl4 8.0-2"]


def test_malformed_lock_is_a_clear_error(project: Project) -> None:
    lockfile.lock_path(project.root, "small").write_text("kiln-lock: 1\nsections:\n"
                                                         "  - layer: hello\n"
                                                         "    packages: [{name: curl}]\n")
    with pytest.raises(LockError, match=r"images/small.lock: sections\[0\].packages\[0\]"):
        lockfile.read(project.root, "small")


def test_plan_says_why_and_what_rebuilds_below(project: Project) -> None:
    root = project.root
    (root / "layers/kid/").mkdir()
    (root / "layers/kid/layer.yaml").write_text("run: [\"true\"]\n")
    (root / "images/kid.yaml").write_text("base:\n  image: small\nlayers: [kid]\n")
    proj = Project(root)
    for row in planner.plan(proj):
        planner.record(root, row.image, row.fingerprint,
                       inputs(root, compose(proj, row.image)), "sha256:x")
    rows = {r.image: r for r in planner.plan(Project(root))}
    assert {r.action for r in rows.values()} == {"skip"}
    _edit("layers/hello/files/motd", "welcome", "welcomE")(root)
    rows = {r.image: r for r in planner.plan(Project(root))}
    assert rows["small"].action == "build"
    assert "layer file: files/hello/motd: content changed" in rows["small"].reason
    assert rows["small"].rebuilds_below == ["kid"]
    assert rows["kid"].action == "build"
    assert rows["kid"].reason == "its base image 'small' is rebuilt"
    assert planner.matrix(list(rows.values()))["levels"] == [
        {"level": 0, "include": [{"image": "small"}]},
        {"level": 1, "include": [{"image": "kid"}]}]
