"""vm-sshd, on the booted machine: sshd runs with host keys made on this machine's first boot."""


def test_sshd_runs_and_is_enabled(host):
    ssh = host.service("ssh")
    assert ssh.is_running
    assert ssh.is_enabled


def test_host_keys_were_made_on_first_boot(host):
    key = host.file("/etc/ssh/ssh_host_ed25519_key")
    assert key.exists and key.mode == 0o600
    effective = host.check_output("sshd -T")
    assert "passwordauthentication no" in effective
