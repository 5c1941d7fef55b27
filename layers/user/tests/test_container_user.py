"""user, in a container: the image runs as the unprivileged user (a VM's PID 1 is init)."""


def test_image_runs_as_the_user(host, params, image):
    # numeric, so that a restricted platform (runAsNonRoot) can check it is not root
    assert image.config.user == "10001:10001"
    assert host.check_output("id -un") == params["user"]
    assert host.check_output("id -u") == "10001"  # checks run as the image's configured user
    # in the image's working directory: the user's home unless a layer above sets a workdir
    assert host.check_output("pwd") == (image.config.workdir or "/")


def test_main_process_runs_as_the_user(host):
    status = host.file("/proc/1/status").content_string
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {"10001"}, "PID 1 (the entrypoint, or the verify keep-alive) runs as root"
