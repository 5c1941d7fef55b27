"""vm-network: networkd runs DHCP on wired interfaces."""


def test_dhcp_on_every_wired_interface(host):
    network = host.file("/etc/systemd/network/80-kiln-dhcp.network")
    assert network.contains("^DHCP=yes")
    assert host.file("/etc/systemd/system/multi-user.target.wants/systemd-networkd.service").exists
