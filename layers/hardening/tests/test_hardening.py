"""hardening: no setuid/setgid binaries, a restrictive login umask, no build leftovers."""


def test_no_setuid_or_setgid_files(root_host):
    # every layer after hardening is held to this too: it is what the image promises
    found = root_host.check_output("find / -xdev -type f -perm /6000 2>/dev/null | head -20")
    assert found == "", f"setuid/setgid files: {found}"


def test_login_umask_file(host):
    umask = host.file("/etc/profile.d/kiln-umask.sh")
    assert umask.is_file
    assert umask.user == "root"
    assert umask.mode == 0o644
    assert "umask 027" in umask.content_string.splitlines()


def test_login_shells_get_the_umask(host):
    assert host.check_output("sh -l -c umask") == "0027"
