"""vm-sshd: key logins only, host keys made on the machine."""


def test_sshd_allows_keys_only(host):
    config = host.file("/etc/ssh/sshd_config.d/kiln.conf")
    assert config.contains("^PasswordAuthentication no")
    assert config.contains("^PermitRootLogin prohibit-password")
    assert host.file("/etc/systemd/system/ssh.service.d/kiln-hostkeys.conf").contains(
        "ssh-keygen -A")
