"""webapp: the app runs as the image's entrypoint, unprivileged, and answers over HTTP."""

import json

from kiln.testkit import http_get, listening, service_logs


def test_the_entrypoint_runs_without_the_python_images_cmd(host, image):
    assert image.service and image.config.cmd is None
    argv = host.file("/proc/1/cmdline").content_string.split("\0")
    assert argv[:3] == ["python3", "/srv/app/server.py", ""]


def test_listening_on_the_port(host, params):
    assert params["port"] in listening(host)


def test_answers_http(host, params):
    response = http_get(host, params["port"], "/")
    assert response.status == 200
    assert json.loads(response.body) == {"message": "hello from a kiln image", "user": 10001}
    assert http_get(host, params["port"], "/healthz").status == 200
    assert http_get(host, params["port"], "/nope").status == 404


def test_works_in_its_folder(host):
    assert host.check_output("pwd") == "/srv/app"


def test_started_in_its_log(image, params):
    assert f"listening on {params['port']}" in service_logs(image)
