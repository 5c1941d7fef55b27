"""cloud-init, in the image and on the machine: installed, with kiln's settings, able to grow
the root partition."""


def test_cloud_init_and_growpart_are_installed(host):
    assert host.package("cloud-init").is_installed
    assert host.exists("growpart")


def test_the_datasources_are_the_documented_clouds(host):
    config = host.file("/etc/cloud/cloud.cfg.d/90-kiln.cfg").content_string
    assert ("datasource_list: [NoCloud, ConfigDrive, OpenStack, Ec2, Azure, GCE, VMware]"
            in config)
