"""vm-systemd, on the booted machine: the boot finished, every unit came up."""

import re


def test_the_system_is_running_with_no_failed_units(host):
    # --wait: SSH can answer before the last units have started
    state = host.run("timeout 180 systemctl is-system-running --wait").stdout.strip()
    failed = host.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert state == "running", f"system is {state}; failed units:\n{failed}"


def test_the_machine_got_its_own_machine_id(host):
    machine_id = host.file("/etc/machine-id").content_string.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id), machine_id
