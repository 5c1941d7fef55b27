"""Test ownership and the test helpers, on the real engine from the busybox test base: an image
skips and replaces tests of a layer below, with reasons kept in the record; kiln.testkit works
where there is no ss, netstat, curl, python or bash."""

from __future__ import annotations

from kiln import records
from kiln.pipeline import build_image
from kiln.testsuite import override_lines

FILES = {
    "layers/toolbox/layer.yaml": """\
        cmd: ["sh"]
        run:
          - mkdir -p /www && echo served > /www/index.html
    """,
    "layers/toolbox/tests/test_toolbox.py": """\
        def test_default_command_is_a_shell(image):
            assert image.config.cmd == ("sh",) and not image.service


        def test_working_directory_is_root(host):
            assert host.check_output("pwd") == "/"
    """,
    "layers/web/layer.yaml": """\
        requires: [toolbox]
        workdir: /www
        expose: ["8080"]
        entrypoint: ["sh", "-c", "echo web starting; exec httpd -f -p 8080 -h /www"]
        healthcheck:
          test: ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
          interval: 30s
          start_period: 1s
        tests:
          - skip: toolbox::test_default_command_is_a_shell
            reason: an entrypoint resets the toolbox's cmd
    """,
    "layers/web/tests/test_web.py": """\
        from kiln.testkit import http_get, listening, service_logs


        def test_entrypoint_runs_without_the_parent_cmd(host, image):
            assert image.config.cmd is None
            assert host.file("/proc/1/cmdline").content_string.startswith("httpd")


        def test_listening_without_ss_or_netstat(host):
            assert host.run("command -v ss").rc != 0  # testinfra's host.socket would need it
            assert 8080 in listening(host)  # from /proc/net/tcp{,6}


        def test_http_get_with_busybox_wget(host):
            assert host.run("command -v python3 || command -v bash").rc != 0
            response = http_get(host, 8080, "/")
            assert (response.status, response.body) == (200, "served\\n")
            assert http_get(host, 8080, "/missing").status == 404


        def test_service_logs(image):
            assert "web starting" in service_logs(image)
    """,
    "images/web.yaml": """\
        {busybox}
        layers: [web]
        unrestricted: a root busybox httpd stands in for a service (test ownership is tested)
        tests:
          - replace: toolbox::test_working_directory_is_root
            with: test_works_in_www
            reason: the web layer sets workdir /www
    """,
    "images/web/tests/test_image.py": """\
        def test_works_in_www(host):
            assert host.check_output("pwd") == "/www"
    """,
}


def test_an_image_skips_and_replaces_a_layers_test_with_reasons(make_project, kiln_ctx):
    project = make_project(FILES)
    result = build_image(kiln_ctx(project), "web")
    record = records.require_verified(project.root, "web", result.image_id)
    outcomes = {c.test.split("::")[1].split("[")[0]: (c.outcome, c.message)
                for c in record.checks}
    assert outcomes["test_default_command_is_a_shell"] == (
        "skipped", "skipped by web: an entrypoint resets the toolbox's cmd")
    assert outcomes["test_working_directory_is_root"] == (
        "skipped", "replaced by image:web::test_works_in_www: the web layer sets workdir /www")
    for ran in ("test_works_in_www", "test_listening_without_ss_or_netstat",
                "test_http_get_with_busybox_wget", "test_service_logs",
                "test_entrypoint_runs_without_the_parent_cmd"):
        assert outcomes[ran] == ("passed", ""), ran
    assert [o["by"] for o in record.extra["overrides"]] == ["web", "image:web"]
    assert override_lines(record) == [
        "toolbox::test_default_command_is_a_shell skipped by web: an entrypoint resets the "
        "toolbox's cmd",
        "toolbox::test_working_directory_is_root replaced by image:web::test_works_in_www: "
        "the web layer sets workdir /www"]
