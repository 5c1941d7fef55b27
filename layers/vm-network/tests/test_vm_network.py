"""vm-network, on the booted machine: an address and a default route from DHCP, and DNS."""

import json


def test_an_interface_is_routable_by_dhcp(host):
    host.run("timeout 60 /lib/systemd/systemd-networkd-wait-online --any")
    links = json.loads(host.check_output("ip -j -4 addr show scope global"))
    assigned = [(link["ifname"], a["local"]) for link in links for a in link["addr_info"]
                if a.get("dynamic")]
    assert assigned, f"no DHCP address: {links}"
    assert host.check_output("ip -4 route show default").startswith("default via")


def test_names_resolve_through_resolved(host):
    assert host.service("systemd-resolved").is_running
    assert host.file("/etc/resolv.conf").linked_to == "/run/systemd/resolve/stub-resolv.conf"
    assert "DNS Servers" in host.check_output("resolvectl status")
