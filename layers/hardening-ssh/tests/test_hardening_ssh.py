"""hardening-ssh, in the filesystem: sshd's policy file, read before any other."""

WEAK = ("cbc", "sha1", "md5", "group1-", "group14-sha1", "3des", "arcfour", "umac-64")


def policy(root_host):
    conf = root_host.file("/etc/ssh/sshd_config.d/05-kiln-hardening.conf")
    assert conf.user == "root" and conf.mode == 0o600
    out = {}
    for line in conf.content_string.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key.lower()] = value.strip()
    return out


def test_read_first(root_host):
    # sshd keeps the first value of a keyword: no file sorted before ours may set one
    names = root_host.check_output("ls /etc/ssh/sshd_config.d").split()
    assert min(n for n in names if n.endswith(".conf")) == "05-kiln-hardening.conf"
    main = root_host.file("/etc/ssh/sshd_config").content_string.splitlines()
    first = next(line for line in main if line.strip() and not line.startswith("#"))
    assert first == "Include /etc/ssh/sshd_config.d/*.conf"


def test_keys_only(root_host, params):
    conf = policy(root_host)
    assert conf["authenticationmethods"] == "publickey"
    assert conf["passwordauthentication"] == conf["kbdinteractiveauthentication"] == "no"
    assert conf["permitemptypasswords"] == "no"
    assert conf["permitrootlogin"] == params["ssh_permit_root_login"]
    assert conf["permitrootlogin"] in ("no", "prohibit-password")


def test_modern_algorithms_only(root_host):
    conf = policy(root_host)
    for key in ("ciphers", "macs", "kexalgorithms"):
        algorithms = conf[key].split(",")
        assert algorithms, key
        assert not [a for a in algorithms if any(w in a for w in WEAK)], key
    assert all(m.endswith("-etm@openssh.com") for m in conf["macs"].split(","))


def test_no_forwarding_and_few_tries(root_host):
    conf = policy(root_host)
    for key in ("x11forwarding", "allowagentforwarding", "allowtcpforwarding", "permittunnel",
                "permituserenvironment"):
        assert conf[key] == "no", key
    assert int(conf["maxauthtries"]) <= 4
    # at most two sessions multiplexed over one connection (CIS 5.2.x: 10 or fewer; lynis
    # SSH-7408 wants 2); kiln's verifier and audit open one at a time
    assert conf["maxsessions"] == "2"
    assert conf["loglevel"] == "VERBOSE"


def test_banner(root_host, params):
    conf = policy(root_host)
    assert conf["banner"] == params["ssh_banner"]
    if params["ssh_banner"] != "none":
        assert root_host.file(params["ssh_banner"]).content_string.strip() == params["banner"]
