"""core: CA certificates, the timezone the `timezone` param names, a UTF-8 locale."""


def test_ca_certificates_installed(host):
    assert host.package("ca-certificates").is_installed
    bundle = host.file("/etc/ssl/certs/ca-certificates.crt")
    assert bundle.is_file
    assert bundle.content_string.count("BEGIN CERTIFICATE") > 50


def test_localtime_points_at_the_timezone_param(host, params):
    localtime = host.file("/etc/localtime")
    assert localtime.is_symlink
    assert localtime.linked_to == f"/usr/share/zoneinfo/{params['timezone']}"
    assert host.file(localtime.linked_to).is_file  # tzdata has the zone: not a dangling link
    assert host.file("/etc/timezone").content_string.strip() == params["timezone"]
