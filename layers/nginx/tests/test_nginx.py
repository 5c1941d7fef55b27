"""nginx: serves /srv/www as the unprivileged user on the `port` param; tested running."""

import pytest

from kiln.testkit import http_get, listening


def test_package_installed(host):
    assert host.package("nginx-light").is_installed


def test_config_is_valid(host):
    result = host.run("nginx -t")
    assert result.rc == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_runs_as_a_service_exposing_the_port(image, params):
    assert image.service
    assert image.config.expose == (f"{params['port']}/tcp",)


def test_listening_on_the_port(host, params):
    assert params["port"] in listening(host)  # from /proc/net/tcp{,6}: no ss in the image


@pytest.mark.parametrize("path", ["/", "/healthz"])
def test_answers_http_200(host, params, path):
    response = http_get(host, params["port"], path)
    assert response.status == 200
    if path == "/":
        assert "Served from a kiln golden image" in response.body
    else:
        assert response.body == "ok\n"


def test_every_nginx_process_runs_as_the_user(host, params):
    uid = str(host.user(params["user"]).uid)
    # `; true`: the loop's status is its last grep's, which need not be an nginx process.
    script = ("for s in /proc/[0-9]*/status; do grep -q '^Name:.nginx' $s 2>/dev/null "
              "&& grep '^Uid:' $s; done; true")
    lines = host.check_output("sh -c %s", script).splitlines()
    assert len(lines) >= 2  # the master and at least one worker
    assert all(set(line.split()[1:]) == {uid} for line in lines), lines
