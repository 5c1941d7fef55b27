"""hardening-ssh, on the booted machine: what sshd actually runs with (`sshd -T`)."""


def effective(root_host):
    out = {}
    for line in root_host.check_output("sshd -T").splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    return out


def test_sshd_runs_with_the_policy(root_host, params):
    conf = effective(root_host)
    # sshd -T spells prohibit-password by its old name, without-password
    same = {"prohibit-password": {"prohibit-password", "without-password"}}
    wanted = params["ssh_permit_root_login"]
    assert conf["permitrootlogin"] in same.get(wanted, {wanted})
    assert conf["authenticationmethods"] == "publickey"
    assert conf["passwordauthentication"] == "no"
    assert conf["x11forwarding"] == conf["allowtcpforwarding"] == "no"
    assert conf["maxsessions"] == "2"
    assert conf["banner"] == params["ssh_banner"]


def test_only_modern_algorithms_are_offered(root_host):
    conf = effective(root_host)
    for key in ("ciphers", "macs", "kexalgorithms"):
        assert not [a for a in conf[key].split(",")
                    if any(w in a for w in ("cbc", "sha1", "md5", "3des", "arcfour"))], key


def test_root_is_refused_as_the_image_says(root_host, params):
    # the policy for a connection as root, from the verifier's own address (slirp's host)
    out = root_host.check_output("sshd -T -C user=root,host=10.0.2.2,addr=10.0.2.2")
    conf = dict(line.partition(" ")[::2] for line in out.splitlines())
    wanted = params["ssh_permit_root_login"]
    assert conf["permitrootlogin"] in ({"without-password", "prohibit-password"}
                                       if wanted == "prohibit-password" else {wanted})
