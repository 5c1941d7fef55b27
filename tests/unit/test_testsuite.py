"""One suite runner: the container and VM verifiers find the same suite, hash it the same way,
and hand the plugin's fixtures the same facts; only the target's own files differ."""

from __future__ import annotations

from kilntest import MakeProject

from kiln.compose import compose
from kiln.load import Project
from kiln.testing import image_info
from kiln.testsuite import Target, collect, failure_reason, info, record
from kiln.verify import find_suite

LAYERS = {
    "py": "cmd: [python3]\nparams:\n  port:\n    type: integer\n    default: 8080\n",
    "app": "requires: [py]\n",
}
FILES = {
    "layers/py/tests/test_py.py": "def test_interpreter(host, image):\n    pass\n",
    "layers/py/tests/conftest.py": "import pytest\n",
    "layers/app/tests/test_app.py": "def test_app(host, params):\n    pass\n",
    "images/web/tests/test_web.py": "def test_serves(host, image):\n    pass\n",
}
IMAGES = {"web": "base: {bootstrap: {suite: bookworm}}\nlayers: [app]\nparams:\n  port: 9000\n"}


def _project(make_project: MakeProject, more: dict[str, str] | None = None) -> Project:
    return make_project(layers=LAYERS, images=IMAGES, files={**FILES, **(more or {})})


def _target(project: Project) -> Target:
    return Target(compose(project, "web"), "kiln/web:0123", "sha256:" + "ab" * 32, "f" * 64)


def test_both_backends_collect_the_same_suite_with_the_same_digest(make_project) -> None:
    project = _project(make_project)
    plan = compose(project, "web")
    container = find_suite(project.root, plan)  # what kiln.verify runs in a container
    vm = collect(project.root, plan, "vm")  # what kiln.vm.verify runs on a booted disk
    assert container.target == "container" and vm.target == "vm"
    assert container.parts == vm.parts == (
        ("py", "layers/py/tests"), ("app", "layers/app/tests"), ("image:web", "images/web/tests"))
    assert container.files == vm.files == (
        "layers/py/tests/conftest.py", "layers/py/tests/test_py.py",
        "layers/app/tests/test_app.py", "images/web/tests/test_web.py")
    assert container.digest == vm.digest

    # the digest follows the files' content, for both
    (project.root / "layers/app/tests/test_app.py").write_text("def test_app(host):\n    pass\n")
    changed = collect(project.root, plan, "vm")
    assert changed.digest != vm.digest
    assert changed.digest == find_suite(project.root, plan).digest


def test_each_target_leaves_out_the_others_files(make_project) -> None:
    project = _project(make_project, {"layers/py/tests/test_vm_boot.py": "def test_boot(host):\n"
                                      "    pass\n",
                                      "layers/py/tests/test_container_pid.py": "def test_pid"
                                      "(host):\n    pass\n"})
    plan = compose(project, "web")
    container, vm = find_suite(project.root, plan), collect(project.root, plan, "vm")
    assert "layers/py/tests/test_container_pid.py" in container.files
    assert "layers/py/tests/test_vm_boot.py" not in container.files
    assert "layers/py/tests/test_vm_boot.py" in vm.files
    assert "layers/py/tests/test_container_pid.py" not in vm.files
    assert container.skipped_prefixes == ("test_vm_",)
    assert vm.skipped_prefixes == ("test_container_",)
    assert container.digest != vm.digest
    # the shared files are the same on both sides
    assert set(container.files) - {"layers/py/tests/test_container_pid.py"} == \
        set(vm.files) - {"layers/py/tests/test_vm_boot.py"}


def test_the_image_fixture_has_the_same_shape_on_both_targets(make_project) -> None:
    project = _project(make_project)
    target = _target(project)
    in_container = info(find_suite(project.root, target.plan), target, container="kiln-verify-x")
    on_vm = info(collect(project.root, target.plan, "vm"), target, cloud={"user": "kiln-verify"})
    assert in_container.keys() == on_vm.keys()
    a, b = image_info(in_container), image_info(on_vm)
    assert (a.target, b.target) == ("container", "vm")
    assert (a.container, b.container) == ("kiln-verify-x", "")
    assert a.name == b.name == "web"
    assert a.layers == b.layers == ("py", "app")
    assert a.params == b.params == {"port": 9000}
    assert a.config == b.config and a.image_id == b.image_id and a.ref == b.ref
    assert in_container["owners"] == on_vm["owners"]
    assert (in_container["cloud"], on_vm["cloud"]) == (None, {"user": "kiln-verify"})


def test_one_record_format_for_both_targets(make_project) -> None:
    project = _project(make_project)
    target = _target(project)
    made = {suite.target: record(target, suite, "2026-12-02T10:00:00+00:00", True)
            for suite in (find_suite(project.root, target.plan),
                          collect(project.root, target.plan, "vm"))}
    assert made["container"].target == "container" and made["vm"].target == "vm"
    assert made["container"].suite == made["vm"].suite
    assert made["container"].to_json().keys() == made["vm"].to_json().keys()
    assert {r.image_id for r in made.values()} == {target.image_id}


def test_failure_reason_names_the_failed_checks_and_empty_runs() -> None:
    from kiln.records import CheckResult

    passed = CheckResult("py", "layers/py/tests/test_py.py::test_a[kiln://web]", "passed")
    failed = CheckResult("app", "layers/app/tests/test_app.py::test_b[kiln-ssh://kiln-vm]",
                         "failed")
    assert failure_reason((passed,), 0) == ""
    assert failure_reason((passed, failed), 1) == "1 check failed: layer 'app': test_app.py::test_b"
    assert failure_reason((), 5) == "no tests were collected"
    assert failure_reason((CheckResult("py", "x", "skipped"),), 0) == \
        "no check passed (all skipped)"

