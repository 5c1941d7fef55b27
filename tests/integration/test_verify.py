"""Verification on the real engine, from the busybox test base: suites, records, the gate, leaks."""

from __future__ import annotations

import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from kiln import records, session
from kiln.context import prepare
from kiln.engine import KILN_LABEL, Engine
from kiln.errors import KilnError
from kiln.pipeline import build_image
from kiln.testsuite import Target, VerifyError
from kiln.verify import NOT_VERIFIED, find_suite, verify

GREET = {
    "layers/greet/layer.yaml": """\
        params:
          greeting:
            type: string
            default: hello
        run:
          - echo "{{ greeting }}" > /etc/greeting
    """,
    "layers/greet/tests/test_greet.py": """\
        def test_greeting_follows_the_param(host, params):
            assert host.file("/etc/greeting").content_string == params["greeting"] + "\\n"


        def test_image_fixture(host, image):
            assert image.name in ("small", "bad", "slow", "shell-less")
            assert "greet" in image.layers
            assert not image.service
            assert image.target == "container"  # the same fixture on a VM says "vm"
            assert image.container.startswith("kiln-verify-" + image.name)
            assert host.check_output("id -u") == "0"
    """,
    "layers/broken/layer.yaml": "requires: [greet]\n",
    "layers/broken/tests/test_broken.py": """\
        def test_passes(host):
            assert host.file("/etc/greeting").exists


        def test_deliberately_false(host):
            assert host.file("/etc/greeting").content_string == "nope"
    """,
    "layers/slow/layer.yaml": "requires: [greet]\n",
    "layers/slow/tests/test_slow.py": """\
        def test_takes_its_time(host):
            host.run("touch /tmp/kiln-test-started && sleep 60")
    """,
    "layers/noshell/layer.yaml": "requires: [greet]\nrun:\n  - rm /bin/sh\n",
    "images/small.yaml": """\
        {busybox}
        layers: [greet]
        params:
          greeting: bonjour
    """,
    "images/small/tests/test_small.py": """\
        def test_image_tests_run_too(host):
            assert host.file("/etc/greeting").content_string == "bonjour\\n"
    """,
    "images/bad.yaml": "{busybox}\nlayers: [broken]\n",
    "images/slow.yaml": "{busybox}\nlayers: [slow]\n",
    "images/shell-less.yaml": "{busybox}\nlayers: [noshell]\n",
}

SERVICE = {
    "layers/www/layer.yaml": """\
        run:
          - mkdir -p /www && echo served > /www/index.html
        expose: ["8080"]
    """,
    "layers/web/layer.yaml": """\
        requires: [www]
        user: "65534:65534"
        entrypoint: ["httpd", "-f", "-p", "8080", "-h", "/www"]
        healthcheck:
          test: ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
          interval: 30s
          start_period: 1s
    """,
    "layers/web/tests/test_web.py": """\
        def test_served_live(host, image):
            assert image.service
            assert host.check_output("wget -q -O - http://127.0.0.1:8080/") == "served"


        def test_pid_1_is_the_service_itself(host):
            assert host.file("/proc/1/cmdline").content_string.startswith("httpd")
    """,
    "layers/sick/layer.yaml": """\
        requires: [www]
        entrypoint: ["httpd", "-f", "-p", "8080", "-h", "/www"]
        healthcheck:
          test: ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9999/"]
          interval: 1s
          timeout: 1s
          retries: 1
          start_period: 1s
    """,
    "layers/crash/layer.yaml": """\
        requires: [www]
        entrypoint: ["sh", "-c", "echo cannot bind the port >&2; exit 3"]
    """,
    "layers/crash/tests/test_crash.py": "def test_never_runs(host):\n    pass\n",
    "layers/sick/tests/test_sick.py": "def test_never_runs(host):\n    pass\n",
    "layers/scribble/layer.yaml": """\
        requires: [www]
        user: "65534:65534"
        run:
          - chown 65534:65534 /www
        entrypoint: ["sh", "-c", "echo up > /www/state && exec httpd -f -p 8080 -h /www"]
    """,
    "layers/scribble/tests/test_scribble.py": """\
        def test_wrote_its_state(host):
            assert host.file("/www/state").content_string == "up\\n"
    """,
    "images/web.yaml": "{busybox}\nlayers: [web]\n",
    "images/scribble.yaml": "{busybox}\nlayers: [scribble]\n",
    "images/scribble-anyway.yaml": "{busybox}\nlayers: [scribble]\n"
                                   "unrestricted: writes /www/state when it starts\n",
    "images/sick.yaml": "{busybox}\nlayers: [sick]\n",
    "images/crash.yaml": "{busybox}\nlayers: [crash]\n",
}


def _target(ctx, name: str) -> Target:
    prepared = prepare(ctx.project, name)
    image_id = ctx.engine.image_id(prepared.ref)
    assert image_id
    return Target(prepared.plan, prepared.ref, image_id, prepared.fingerprint)


def _kiln_containers(engine: Engine, image: str) -> set[str]:
    """Asked of the engine, by label: not what kiln believes it started.

    Containers inherit their image's labels, so dev.kiln.image picks this test's image out of
    whatever else runs on the engine.
    """
    labels = [KILN_LABEL, f"dev.kiln.image={image}",
              *(f"{key}={value}" for key, value in session.labels().items())]
    return {c.name for c in engine.client.containers.list(
        all=True, filters={"label": labels}, ignore_removed=True)}


def test_build_verifies_and_records_a_pass(make_project, kiln_ctx, engine, tmp_path):
    project = make_project(GREET)
    ctx = kiln_ctx(project)
    result = build_image(ctx, "small")
    record = records.require_verified(project.root, "small", result.image_id)
    assert record.passed and record.image_id == result.image_id
    assert {(c.layer, c.outcome) for c in record.checks} == {
        ("greet", "passed"), ("image:small", "passed")}
    assert record.counts["passed"] == 3
    assert record.suite == find_suite(project.root, prepare(project, "small").plan).digest

    # up to date, passing record for this ID and suite: not verified again
    again = build_image(kiln_ctx(project), "small")
    assert again.action == "up to date"
    assert records.load(project.root, result.image_id) == record

    # `verify` runs anyway, and writes JUnit XML with each check's layer
    junit = tmp_path / "out" / "junit.xml"
    run = verify(engine, project.root, _target(ctx, "small"), ctx.ui, junit=junit)
    assert run.record.passed and run.commands
    cases = ET.parse(junit).getroot().iter("testcase")
    layers = {case.get("name"): case.find("properties/property[@name='layer']").get("value")
              for case in cases}
    assert layers == {"test_greeting_follows_the_param[kiln://small]": "greet",
                      "test_image_fixture[kiln://small]": "greet",
                      "test_image_tests_run_too[kiln://small]": "image:small"}


def test_false_assertion_fails_the_build_and_names_layer_and_test(make_project, kiln_ctx):
    project = make_project(GREET)
    with pytest.raises(VerifyError) as err:
        build_image(kiln_ctx(project), "bad")
    message = str(err.value)
    assert message.startswith("images/bad.yaml: 'bad' failed verification: 1 check failed")
    assert "layer 'broken': test_broken.py::test_deliberately_false" in message

    image_id = kiln_ctx(project).engine.image_id(prepare(project, "bad").ref)
    record = records.load(project.root, image_id)
    assert record is not None and not record.passed
    failed = [c for c in record.checks if c.outcome == "failed"]
    assert [(c.layer, c.test.split("::")[1]) for c in failed] == [
        ("broken", "test_deliberately_false[kiln://bad]")]
    assert "assert 'hello\\n' == 'nope'" in failed[0].message
    assert {c.layer for c in record.checks if c.outcome == "passed"} == {"greet", "broken"}
    with pytest.raises(KilnError, match="failed verification"):
        records.require_verified(project.root, "bad", image_id)


def test_verify_task_exits_non_zero_naming_the_layer(make_project, kiln_ctx, kiln_cli):
    project = make_project(GREET)
    build_image(kiln_ctx(project, verify=False), "bad")
    proc = kiln_cli(project.root, "verify", "bad", env={"KILN_PROJECT": str(project.root)})
    assert proc.returncode == 1
    assert "layer 'broken': test_broken.py::test_deliberately_false" in proc.stderr


def test_no_verify_leaves_the_image_unverified(make_project, kiln_ctx, engine):
    project = make_project(GREET)
    result = build_image(kiln_ctx(project, verify=False), "small")
    assert _kiln_containers(engine, "small") == set()  # nothing ran
    record = records.load(project.root, result.image_id)
    assert record is not None and not record.passed and record.reason == NOT_VERIFIED
    with pytest.raises(KilnError, match=r"--no-verify"):
        records.require_verified(project.root, "small", result.image_id)


def test_image_without_tests_stays_unverified(make_project, kiln_ctx):
    files = {k: v for k, v in GREET.items() if "tests/" not in k}
    project = make_project(files)
    result = build_image(kiln_ctx(project), "small")
    with pytest.raises(KilnError, match="no tests"):
        records.require_verified(project.root, "small", result.image_id)


def test_keep_leaves_the_container(make_project, kiln_ctx, engine):
    project = make_project(GREET)
    ctx = kiln_ctx(project, verify=False)
    build_image(ctx, "small")
    run = verify(engine, project.root, _target(ctx, "small"), ctx.ui, keep=True)
    try:
        assert _kiln_containers(engine, "small") == {run.container}
        state = engine.inspect_container(run.container)["State"]
        assert state["Running"]
    finally:
        engine.remove_container(run.container)


def test_image_without_a_shell_is_a_clear_error(make_project, kiln_ctx, engine):
    project = make_project(GREET)
    with pytest.raises(VerifyError, match=r"'shell-less' has no /bin/sh .* cannot be verified"):
        build_image(kiln_ctx(project), "shell-less")
    image_id = engine.image_id(prepare(project, "shell-less").ref)
    record = records.load(project.root, image_id)
    assert record is not None and not record.passed and "/bin/sh" in record.reason


def test_service_is_tested_running(make_project, kiln_ctx):
    project = make_project(SERVICE)
    result = build_image(kiln_ctx(project), "web")
    record = records.require_verified(project.root, "web", result.image_id)
    assert record.counts["passed"] == 2
    # ... and again as a restricted platform runs it: read-only, no capabilities, numeric user
    assert record.profile == "restricted"
    note = record.extra["profile"]
    assert note["counts"]["passed"] == 2
    assert note["options"] == ("--read-only --cap-drop ALL --security-opt no-new-privileges "
                               "--user 65534:65534")


def test_service_writing_outside_its_tmpfs_fails_the_restricted_profile(make_project, kiln_ctx,
                                                                        engine):
    project = make_project(SERVICE)
    with pytest.raises(VerifyError, match=r"restricted profile \(--read-only .*exited with code")\
            as err:
        build_image(kiln_ctx(project), "scribble")
    assert "Read-only file system" in str(err.value)  # the service's own words, from its logs
    assert "unrestricted: <reason>" in str(err.value)
    record = records.load(project.root, _target(kiln_ctx(project), "scribble").image_id)
    assert record is not None and not record.passed and record.profile == "default"
    assert record.counts["passed"] == 1  # the first pass, as configured, did pass
    assert not _kiln_containers(engine, "scribble")


def test_an_image_opts_out_with_a_recorded_reason(make_project, kiln_ctx):
    project = make_project(SERVICE)
    result = build_image(kiln_ctx(project), "scribble-anyway")
    record = records.require_verified(project.root, "scribble-anyway", result.image_id)
    assert record.profile == "default"
    assert record.extra["profile"]["opted_out"] == "writes /www/state when it starts"


def test_unhealthy_service_is_reported_with_its_logs(make_project, kiln_ctx):
    project = make_project(SERVICE)
    with pytest.raises(VerifyError, match=r"service 'sick' did not become healthy") as err:
        build_image(kiln_ctx(project), "sick")
    assert "last healthcheck said" in str(err.value)


def test_crashing_service_is_reported_with_its_logs(make_project, kiln_ctx):
    project = make_project(SERVICE)
    with pytest.raises(VerifyError, match=r"'crash' exited with code 3 before it was ready") as e:
        build_image(kiln_ctx(project), "crash")
    assert "| cannot bind the port" in str(e.value)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_verify_leaves_no_container(make_project, kiln_ctx, engine, tmp_path,
                                                kiln_cli, signum):
    project = make_project(GREET)
    build_image(kiln_ctx(project, verify=False), "slow")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = kiln_cli.start(project.root, "verify", "slow",
                          env={"KILN_PROJECT": str(project.root), "TMPDIR": str(scratch)})
    try:
        container = _wait_for_the_suite(engine, proc)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert container.startswith("kiln-verify-slow-")
    assert _kiln_containers(engine, "slow") == set()
    assert list(scratch.iterdir()) == []  # no temp files left either


def _wait_for_the_suite(engine: Engine, proc: subprocess.Popen[str]) -> str:
    """The new kiln container, once the slow check is running inside it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for name in _kiln_containers(engine, "slow"):
            try:
                if engine.exec(name, ["test", "-f", "/tmp/kiln-test-started"]).exit_code == 0:
                    return name
            except KilnError:
                pass  # not running yet
        time.sleep(0.2)
    raise AssertionError("the suite never started")


