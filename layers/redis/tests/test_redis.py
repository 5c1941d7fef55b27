"""redis: a running, unprivileged service on the `port` param, answering commands."""

from kiln.testkit import listening, service_logs


def test_package_installed(host):
    assert host.package("redis-server").is_installed


def test_runs_as_a_service_exposing_the_port(image, params):
    assert image.service
    assert image.config.expose == (f"{params['port']}/tcp",)
    assert image.config.volumes == ("/data",)


def test_listening_on_the_port(host, params):
    assert params["port"] in listening(host)


def test_answers_and_keeps_a_value(host, params):
    port = str(params["port"])
    assert host.check_output("redis-cli -p %s ping", port) == "PONG"
    assert host.check_output("redis-cli -p %s set kiln-test works", port) == "OK"
    assert host.check_output("redis-cli -p %s get kiln-test", port) == "works"


def test_data_belongs_to_the_user(host, params):
    data = host.file("/data")
    assert data.is_directory and data.user == params["user"] and data.mode == 0o750


def test_ready_in_its_log(image):
    assert "Ready to accept connections" in service_logs(image)
