"""core, in a container: the image's environment names the timezone and a UTF-8 locale."""


def test_environment_names_the_timezone_and_a_utf8_locale(host, params):
    env = host.environment()
    assert env["TZ"] == params["timezone"]
    assert env["LANG"] == "C.UTF-8"


def test_locale_is_utf8(host):
    assert host.check_output("locale charmap") == "UTF-8"
