"""hardening-vm, in the disk's filesystem: the settings are in place for the kernel and systemd."""

SYSCTLS = {
    "kernel.kptr_restrict": "2", "kernel.dmesg_restrict": "1", "fs.suid_dumpable": "0",
    "kernel.randomize_va_space": "2", "kernel.sysrq": "0",
    "net.ipv4.conf.all.send_redirects": "0", "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv6.conf.all.accept_redirects": "0", "net.ipv4.conf.all.secure_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0", "net.ipv6.conf.all.accept_source_route": "0",
    "net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.all.log_martians": "1",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1", "net.ipv4.tcp_syncookies": "1",
    "dev.tty.ldisc_autoload": "0", "kernel.core_uses_pid": "1",
}
USBGUARD = {
    "RuleFile": "/etc/usbguard/rules.conf", "ImplicitPolicyTarget": "block",
    "PresentDevicePolicy": "apply-policy", "PresentControllerPolicy": "apply-policy",
    "InsertedDevicePolicy": "apply-policy", "RestoreControllerDeviceState": "false",
}


def settings(text):
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", ";")):
            key = key.strip().lstrip("-")  # "-key": optional (sysctl.d(5))
            out[key.strip()] = value.strip()
    return out


def test_sysctl_file(host):
    conf = host.file("/etc/sysctl.d/zz-kiln-hardening.conf")
    assert conf.user == "root" and conf.mode == 0o644
    found = settings(conf.content_string)
    assert {k: found.get(k) for k in SYSCTLS} == SYSCTLS


def test_no_other_sysctl_file_undoes_it(host):
    # systemd-sysctl applies files in the order of their names, across folders: a file
    # sorted after ours would win (procps's protect-links.conf did, over 90-kiln-...)
    later = host.run("ls /etc/sysctl.d /usr/lib/sysctl.d 2>/dev/null").stdout.split()
    for name in (n for n in later if n.endswith(".conf") and n > "zz-kiln-hardening.conf"):
        for where in ("/etc/sysctl.d", "/usr/lib/sysctl.d"):
            f = host.file(f"{where}/{name}")
            if f.exists:
                ours = settings(host.file("/etc/sysctl.d/zz-kiln-hardening.conf").content_string)
                assert not set(settings(f.content_string)) & set(ours), f"{where}/{name}"


def test_systemd_keeps_no_core_dumps(host):
    conf = settings(host.file("/etc/systemd/coredump.conf.d/kiln.conf").content_string)
    assert conf == {"Storage": "none", "ProcessSizeMax": "0"}


def test_journal_is_persistent_and_bounded(host):
    conf = settings(host.file("/etc/systemd/journald.conf.d/kiln.conf").content_string)
    assert conf["Storage"] == "persistent"
    assert conf["SystemMaxUse"].endswith("M")
    assert host.file("/var/log/journal").is_directory


def test_usb_devices_are_blocked_unless_allowed(root_host):
    # usbguard's files are root's alone (0600), as the daemon wants them
    conf = root_host.file("/etc/usbguard/usbguard-daemon.conf")
    assert conf.user == "root" and conf.mode == 0o600
    found = settings(conf.content_string)
    assert {k: found.get(k) for k in USBGUARD} == USBGUARD
    rules = root_host.file("/etc/usbguard/rules.conf")
    # usbguard-daemon refuses a rule file that others can read or write
    assert rules.user == "root" and rules.mode == 0o600
    allowed = [line for line in rules.content_string.splitlines()
               if line.strip() and not line.startswith("#")]
    # hubs only: not the package's policy generated from the build machine's devices
    assert allowed == ["allow with-interface equals { 09:00:* }"]
    assert root_host.service("usbguard").is_enabled
    # skipped, not failed, on a kernel without USB (the drop-in says why)
    dropin = root_host.file("/etc/systemd/system/usbguard.service.d/kiln.conf").content_string
    assert "ExecCondition=+/bin/sh -c 'modprobe -q usbcore" in dropin
    assert root_host.file("/etc/systemd/system/usbguard-dbus.service").linked_to == "/dev/null"


def test_audit_rules_watch_identity_sudo_sshd_clock_and_modules(root_host):
    rules = root_host.file("/etc/audit/rules.d/kiln.rules")
    assert rules.user == "root" and rules.mode == 0o640
    keys = {line.split("-k ")[1].strip() for line in rules.content_string.splitlines()
            if "-k " in line and not line.startswith("#")}
    assert {"identity", "scope", "sshd", "logins", "time-change", "modules"} <= keys
    # no rule on every program start: it would slow every exec of a small VM
    assert not [line for line in rules.content_string.splitlines()
                if "execve" in line and not line.startswith("#")]
    assert root_host.service("auditd").is_enabled
    # compiled at build time: auditd's start finds nothing to change (kiln drift stays clean)
    compiled = root_host.file("/etc/audit/audit.rules").content_string
    assert "-w /etc/passwd -p wa -k identity" in compiled
    assert not root_host.file("/etc/audit/audit.rules.prev").exists


def test_tmp_is_its_own_noexec_file_system(host):
    unit = host.file("/etc/systemd/system/tmp.mount").content_string
    options = settings(unit)["Options"].split(",")
    assert {"nosuid", "nodev", "noexec"} <= set(options)
    assert host.file("/etc/systemd/system/local-fs.target.wants/tmp.mount").is_symlink
