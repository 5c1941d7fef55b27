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
