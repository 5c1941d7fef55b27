"""The python image: a toolbox whose default command is the interpreter (not a service)."""


def test_python_is_the_default_command(image):
    assert image.config.cmd == ("python3",)
    assert not image.service
