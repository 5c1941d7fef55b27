"""vm-sshd, in the image as built: no host key is baked in (every machine makes its own)."""


def test_no_host_keys_in_the_image(host):
    assert host.run("ls /etc/ssh/ssh_host_*").rc != 0
