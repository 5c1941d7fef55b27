"""vm-systemd, in the image as built: the machine-id is left for the first boot."""


def test_no_machine_id_is_baked_in(host):
    assert host.file("/etc/machine-id").content_string.strip() == "uninitialized"
