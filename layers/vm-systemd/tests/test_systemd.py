"""vm-systemd: systemd is init, and no machine-id is baked into the image."""


def test_systemd_is_init(host):
    assert host.package("systemd").is_installed
    assert host.package("udev").is_installed
    # linked_to resolves every link: /sbin/init -> /lib/systemd/systemd, and /lib -> usr/lib
    assert host.file("/sbin/init").linked_to.endswith("/lib/systemd/systemd")


def test_the_default_target_is_multi_user(host):
    assert host.file("/etc/systemd/system/default.target").linked_to.endswith(
        "multi-user.target")
