"""python: the distribution's Python 3 with a working venv, tuned for containers."""


def test_python3_runs(host):
    script = "import sys, ssl; print(sys.version_info[0], ssl.OPENSSL_VERSION)"
    out = host.check_output("python3 -c %s", script)
    assert out.startswith("3 OpenSSL")


def test_python3_is_the_interpreter_on_the_path(host):
    # What the layer promises to any image on it, service or toolbox. Its `cmd: [python3]`
    # is a default a child may replace (an entrypoint resets it): the python image's own
    # tests check that default (images/python/tests).
    assert host.check_output("command -v python3") == "/usr/bin/python3"


def test_venv_with_pip_works(host):
    venv = host.check_output("mktemp -d") + "/venv"
    try:
        host.check_output("python3 -m venv %s", venv)
        assert host.check_output("%s/bin/python -c 'import sys; print(sys.prefix)'", venv) == venv
        assert host.run("%s/bin/python -m pip --version", venv).succeeded
    finally:
        host.run("rm -rf %s", venv)


def test_container_friendly_environment(host):
    env = host.environment()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PIP_NO_CACHE_DIR"] == "1"
    flags = host.check_output("python3 -c 'import sys; print(sys.flags.dont_write_bytecode)'")
    assert flags == "1"


def test_python_runs_unprivileged(host):
    assert host.check_output("python3 -c 'import os; print(os.getuid())'") == "10001"
