"""minimal: no documentation, man pages or translations; apt installs no recommends."""


def test_no_documentation_but_copyrights(root_host):
    found = root_host.check_output("find /usr/share/doc -type f ! -name copyright | head -5")
    assert found == ""


def test_no_man_info_or_translations(root_host):
    for folder in ("/usr/share/man", "/usr/share/info"):
        assert root_host.check_output("find %s -type f | head -5", folder) == ""
    assert root_host.check_output("find /usr/share/locale -name '*.mo' | head -5") == ""


def test_dpkg_excludes_docs_for_packages_installed_later(host):
    nodoc = host.file("/etc/dpkg/dpkg.cfg.d/90-kiln-nodoc")
    assert nodoc.is_file
    assert "path-exclude=/usr/share/doc/*" in nodoc.content_string.splitlines()
    assert "path-exclude=/usr/share/man/*" in nodoc.content_string.splitlines()


def test_apt_installs_no_recommends(host):
    config = host.check_output("apt-config dump")
    assert 'APT::Install-Recommends "false";' in config
    assert 'APT::Install-Suggests "false";' in config
