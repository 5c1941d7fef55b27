"""user: the unprivileged account the image runs as (uid/gid 10001, no login shell)."""


def test_account(host, params):
    user = host.user(params["user"])
    assert user.exists
    assert user.uid == 10001
    assert user.gid == 10001
    assert user.group == params["user"]
    assert user.home == f"/home/{params['user']}"
    assert user.shell == "/usr/sbin/nologin"
    assert host.group(params["user"]).gid == 10001


def test_home_belongs_to_the_user(host, params):
    home = host.file(f"/home/{params['user']}")
    assert home.is_directory
    assert home.user == params["user"]
    assert home.group == params["user"]


def test_image_runs_as_the_user(host, params, image):
    assert image.config.user == params["user"]
    assert host.check_output("id -u") == "10001"  # checks run as the image's configured user
    assert host.check_output("pwd") == f"/home/{params['user']}"


def test_main_process_runs_as_the_user(host):
    status = host.file("/proc/1/status").content_string
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {"10001"}, "PID 1 (the entrypoint, or the verify keep-alive) runs as root"
