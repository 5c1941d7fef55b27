"""hardening, in the image as built: no machine-id from the build (a VM makes its own at
first boot)."""


def test_no_machine_id_from_the_build(host):
    # Absent, or systemd's first-boot marker (machine-id(5)): never an ID every machine shares.
    machine_id = host.file("/etc/machine-id")
    if machine_id.exists:
        assert machine_id.content_string.strip() in ("", "uninitialized")
    assert not host.file("/var/lib/dbus/machine-id").exists
