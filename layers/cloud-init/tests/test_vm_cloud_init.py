"""cloud-init, on a machine booted the way a cloud boots it: kiln's verifier gave it a NoCloud
seed (an ISO labelled cidata: an account with an SSH key and sudo, a hostname, a runcmd marker) and a disk enlarged
past the image's size. `cloud` is what the verifier put in the seed and read from the image."""

import json

import pytest


@pytest.fixture(scope="module")
def status(host):
    # SSH can answer before cloud-final (runcmd) is done; --wait returns when it is. Asked
    # once: each cloud-init command is a Python start, seconds on an emulated CPU.
    return host.run("timeout 300 cloud-init status --wait --long")


def test_cloud_init_finished_from_the_nocloud_seed(host, cloud, status):
    assert "status: done" in status.stdout, status.stdout + status.stderr
    # what `cloud-id` and `cloud-init query` read: the instance data cloud-init wrote this boot
    instance = json.loads(host.file("/run/cloud-init/instance-data.json").content_string)
    assert instance["v1"]["cloud_id"] == "nocloud"
    assert instance["v1"]["instance_id"] == cloud["instance_id"]


def test_the_ssh_key_came_from_the_datasource(host, cloud):
    # We are logged in with this key, as the account the seed made; the disk was never edited.
    home = host.user(cloud["user"]).home
    keys = host.file(f"{home}/.ssh/authorized_keys").content_string
    assert cloud["ssh_key"] in keys
    assert host.user(cloud["user"]).uid >= 1000  # not root under another name


def test_the_sudo_grant_came_from_the_datasource(host, cloud):
    # the verifier's account may become root (the suite runs through sudo) because the seed
    # said so, for this boot: the disk has neither the sudoers entry nor sudo's setuid bit
    rules = host.file("/etc/sudoers.d/90-cloud-init-users").content_string
    assert f"{cloud['user']} ALL=(ALL) NOPASSWD:ALL" in rules
    assert host.file("/usr/bin/sudo").mode == 0o4755
    assert host.check_output("id -u") == "0"


def test_the_hostname_came_from_the_datasource(host, cloud):
    assert host.check_output("hostname") == cloud["hostname"]
    assert host.file("/etc/hostname").content_string.strip() == cloud["hostname"]


def test_runcmd_ran(host, cloud, status):
    marker = host.file(cloud["marker"])
    assert marker.exists, f"{cloud['marker']}: runcmd did not run"
    assert marker.content_string.strip() == cloud["token"]


def test_the_root_file_system_fills_the_enlarged_disk(host, cloud):
    source = host.check_output("findmnt -n -o SOURCE /")
    disk = "/dev/" + host.check_output(f"lsblk -n -o PKNAME {source}")
    disk_bytes = int(host.check_output(f"blockdev --getsize64 {disk}"))
    part_bytes = int(host.check_output(f"blockdev --getsize64 {source}"))
    assert disk_bytes == cloud["disk_bytes"], "the verifier's enlarged disk is not the one booted"
    assert disk_bytes > cloud["image_bytes"]
    # the partition reaches the end of the disk, less the backup GPT and alignment (< 2 MiB)
    start = int(host.check_output(f"cat /sys/class/block/{source[5:]}/start")) * 512
    assert disk_bytes - (start + part_bytes) < 2 << 20, (disk_bytes, start, part_bytes)
    blocks = host.check_output(f"dumpe2fs -h {source} 2>/dev/null | grep -E "
                               "'^(Block count|Block size):'").split("\n")
    count, size = (int(line.split(":")[1]) for line in blocks)
    assert part_bytes - count * size < size, (part_bytes, count, size)


def test_no_machine_id_or_host_key_is_shared_with_the_image(host, cloud):
    machine_id = host.file("/etc/machine-id").content_string.strip()
    assert machine_id not in (cloud["image_machine_id"], "uninitialized", "")
    keys = host.run("cat /etc/ssh/ssh_host_*_key.pub").stdout.split("\n")
    blobs = {line.split()[1] for line in keys if line.strip()}
    assert blobs, "the machine has no SSH host keys"
    assert not blobs & set(cloud["image_host_keys"]), "a host key comes from the image"


def test_the_serial_console_has_a_login(host):
    # console=ttyS0 on the kernel command line: what a cloud's serial console shows
    assert "console=ttyS0" in host.file("/proc/cmdline").content_string
    assert host.service("serial-getty@ttyS0").is_running


def test_the_cloud_config_is_valid(host):
    # kiln's 90-kiln.cfg, Debian's cloud.cfg and the seed's user data, against cloud-init's schema
    schema = host.run("cloud-init schema --system")
    assert schema.rc == 0, schema.stdout + schema.stderr
