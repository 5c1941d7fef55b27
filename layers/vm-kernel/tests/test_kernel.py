"""vm-kernel: a kernel and its initramfs are installed (true in the container and on the VM)."""


def _kernels(host):
    return sorted(host.run("ls /boot").stdout.split())


def test_a_kernel_and_its_initramfs_are_in_boot(host):
    names = _kernels(host)
    versions = [n[len("vmlinuz-"):] for n in names if n.startswith("vmlinuz-")]
    assert versions, f"no kernel in /boot: {names}"
    for version in versions:
        assert f"initrd.img-{version}" in names, f"kernel {version} has no initramfs"
