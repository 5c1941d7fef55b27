"""hardening-vm, on the booted machine: the running kernel has the settings, not only the files."""


def settings(text):
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", ";", "-")):
            out[key.strip()] = value.strip()
    return out


def test_every_sysctl_of_the_file_is_live(root_host):
    wanted = settings(root_host.file("/etc/sysctl.d/zz-kiln-hardening.conf").content_string)
    assert len(wanted) >= 20
    live = {key: root_host.check_output(f"sysctl -n {key}") for key in wanted}
    assert live == wanted


def test_blacklisted_modules_are_refused(root_host):
    text = root_host.file("/etc/modprobe.d/kiln-hardening.conf").content_string
    modules = [line.split()[1] for line in text.splitlines() if line.startswith("install ")]
    for module in ("dccp", "sctp", "rds", "tipc"):
        assert module in modules
        # modprobe runs the install command instead of loading the module: /bin/false fails
        assert root_host.run(f"modprobe {module}").rc != 0, module
    loaded = {line.split()[0] for line in root_host.file("/proc/modules").content_string.splitlines()}
    assert not loaded & set(modules)


def test_journal_writes_to_disk(root_host):
    assert root_host.run("journalctl --header | grep -q /var/log/journal/").rc == 0
