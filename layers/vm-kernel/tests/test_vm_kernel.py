"""vm-kernel, on the booted machine: the image's own kernel runs, with the disk's root."""


def test_the_running_kernel_is_the_images_kernel(host):
    release = host.check_output("uname -r")
    assert host.file(f"/boot/vmlinuz-{release}").exists, f"running {release}, not in /boot"


def test_root_is_mounted_read_write_from_the_disk_by_uuid(host):
    cmdline = host.file("/proc/cmdline").content_string
    root = next(arg for arg in cmdline.split() if arg.startswith("root="))
    assert root.startswith("root=UUID="), cmdline
    uuid = root.removeprefix("root=UUID=")
    source, fstype, options = host.check_output("findmnt -n -o SOURCE,FSTYPE,OPTIONS /").split()
    assert source.startswith("/dev/vd") or source.startswith("/dev/sd"), source
    assert fstype == "ext4"
    assert options.split(",")[0] == "rw"
    assert host.check_output(f"blkid -s UUID -o value {source}") == uuid
