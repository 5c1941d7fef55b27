"""cloud-init, in the image and on the machine: installed, with kiln's settings, able to grow
the root partition."""


def test_cloud_init_and_growpart_are_installed(host):
    assert host.package("cloud-init").is_installed
    assert host.exists("growpart")


def test_root_has_no_ssh_key_in_the_image(root_host):
    # an empty file, so that cloud-init's rewrite of it on a machine changes nothing (drift);
    # kiln's verifier gives root no key either, so the booted machine has it empty too
    keys = root_host.file("/root/.ssh/authorized_keys")
    assert (keys.user, keys.mode, keys.size) == ("root", 0o600, 0)


def test_the_datasources_are_the_documented_clouds(host):
    config = host.file("/etc/cloud/cloud.cfg.d/90-kiln.cfg").content_string
    assert ("datasource_list: [NoCloud, ConfigDrive, OpenStack, Ec2, Azure, GCE, VMware]"
            in config)
