"""Test ownership: skipping or replacing a test of a layer below, checked at `check`; and the
test helpers that read what minimal images have (/proc/net/tcp, HTTP from any client)."""

from __future__ import annotations

import pytest
from kilntest import MakeProject, only_problem, problems_of

from kiln.load import Project
from kiln.pipeline import validate
from kiln.testkit import parse_http, parse_proc_net
from kiln.testowners import describe, overrides

LAYERS = {
    "py": "cmd: [python3]\n",
    "app": "requires: [py]\nentrypoint: [python3, /srv/app.py]\n",
}
FILES = {
    "layers/py/tests/test_py.py": "def test_default_command(image):\n    pass\n\n\n"
                                  "def test_interpreter(host):\n    pass\n",
    "images/web/tests/test_web.py": "def test_serves(host):\n    pass\n",
}


def project_with(make_project: MakeProject, tests: str, layer_tests: str = "") -> Project:
    return make_project(
        layers={**LAYERS, "app": LAYERS["app"] + layer_tests},
        images={"web": f"base:\n  image: py\nlayers: [app]\n{tests}",
                "py": "base: {bootstrap: {suite: bookworm}}\nlayers: [py]\n"},
        files=FILES)


def test_an_image_skips_and_replaces_with_reasons(make_project: MakeProject) -> None:
    project = project_with(make_project, """\
tests:
  - skip: py::test_default_command
    reason: a web server, not python3's prompt
  - replace: py::test_interpreter
    with: test_serves
    reason: the server proves the interpreter
""")
    plans = {p.image.name: p for p in validate(project)}
    found = overrides(plans["web"])
    assert found == [
        {"layer": "py", "test": "test_default_command", "by": "image:web", "action": "skip",
         "reason": "a web server, not python3's prompt", "with": None},
        {"layer": "py", "test": "test_interpreter", "by": "image:web", "action": "replace",
         "reason": "the server proves the interpreter", "with": "test_serves"}]
    assert describe(found[0]) == "skipped by image:web: a web server, not python3's prompt"
    assert describe(found[1]) == ("replaced by image:web::test_serves: the server proves the "
                                  "interpreter")
    assert overrides(plans["py"]) == []


def test_a_layer_skips_a_test_of_a_layer_it_requires(make_project: MakeProject) -> None:
    project = project_with(make_project, "", layer_tests=(
        "tests:\n  - skip: py::test_default_command\n    reason: an entrypoint resets it\n"))
    web = next(p for p in validate(project) if p.image.name == "web")
    assert [(o["by"], o["test"]) for o in overrides(web)] == [("app", "test_default_command")]


def test_overrides_are_not_part_of_the_fingerprint(make_project: MakeProject) -> None:
    from kiln.fingerprint import inputs

    plain = project_with(make_project, "")
    skipping = project_with(make_project, "tests:\n  - skip: py::test_interpreter\n"
                                          "    reason: r\n")
    web = [next(p for p in validate(pr) if p.image.name == "web") for pr in (plain, skipping)]
    assert inputs(plain.root, web[0]) == inputs(skipping.root, web[1])


@pytest.mark.parametrize(("tests", "expected"), [
    ("tests:\n  - skip: py::test_default_comand\n    reason: r\n",
     "images/web.yaml:5: tests: layer 'py' has no test 'test_default_comand' "
     "(did you mean 'test_default_command'?)"),
    ("tests:\n  - skip: nginx::test_x\n    reason: r\n",
     "images/web.yaml:5: tests: layer 'nginx' is not below image:web in image 'web' "
     "(layers below it: py, app)"),
    ("tests:\n  - replace: py::test_interpreter\n    with: test_missing\n    reason: r\n",
     "images/web.yaml:5: tests: the replacement 'test_missing' is not a test in "
     "images/web/tests/ (write it in images/web/tests/test_*.py)"),
    ("tests:\n  - skip: py::test_interpreter\n",
     "images/web.yaml:5: tests[0]: missing required key 'reason'"),
    ("tests:\n  - skip: py::test_interpreter\n    reason: ' '\n",
     "images/web.yaml:5: tests[0].reason: say why the test does not apply"),
    ("tests:\n  - skip: test_interpreter\n    reason: r\n",
     "images/web.yaml:5: tests[0].skip: 'test_interpreter' is not <layer>::<test> "
     "(e.g. python::test_python_is_the_default_command)"),
    ("tests:\n  - skip: py::test_interpreter\n    replace: py::test_default_command\n"
     "    reason: r\n",
     "images/web.yaml:5: tests[0]: expected exactly one of skip, replace (skip: "
     "<layer>::<test>, or replace: <layer>::<test> with: <test>)"),
    ("tests:\n  - replace: py::test_interpreter\n    reason: r\n",
     "images/web.yaml:5: tests[0]: replace needs 'with', the test taking its place "
     "(or write skip: instead)"),
])
def test_bad_overrides_are_one_line_at_check(make_project: MakeProject, tests: str,
                                            expected: str) -> None:
    project = project_with(make_project, tests)
    assert only_problem(lambda: validate(project)) == expected


def test_a_layer_cannot_skip_a_test_of_a_layer_above(make_project: MakeProject) -> None:
    project = make_project(
        layers={"py": "tests:\n  - skip: app::test_x\n    reason: r\n",
                "app": "requires: [py]\n"},
        images={"web": "base: {bootstrap: {suite: bookworm}}\nlayers: [app]\n"},
        files={"layers/app/tests/test_app.py": "def test_x():\n    pass\n"})
    assert problems_of(lambda: validate(project)) == [
        "layers/py/layer.yaml:2: tests: layer 'app' is not below py in image 'web' "
        "(layers below it: none)"]


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001 0 1 1 0
   1: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 0 2 1 0
   2: 0100007F:1F90 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000 10001 0 0 1 0
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1A0B 00000000000000000000000000000000:0000 0A 0 0
"""


def test_listening_ports_come_from_proc_net_tcp() -> None:
    assert parse_proc_net(PROC_NET_TCP) == {8080, 6379}  # the ESTABLISHED 8080 is no listener
    assert parse_proc_net(PROC_NET_TCP6) == {6667}
    assert parse_proc_net(PROC_NET_TCP.splitlines()[0]) == set()


def test_http_responses_parse_from_raw_bytes() -> None:
    response = parse_http("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno\n")
    assert (response.status, response.headers, response.body) == (
        404, {"content-type": "text/plain"}, "no\n")
