"""cloud-init, in the image as built: no instance state, so every machine is a first boot."""


def test_no_instance_state_is_baked_in(host):
    assert host.run("ls -A /var/lib/cloud").stdout.strip() == ""
