"""Disk formats and the NoCloud seed, on small real files: qemu-img and genisoimage run."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kiln.errors import KilnError
from kiln.vm import formats, seed

FP = "ab" * 32
SIZE = 8 << 20

needs_qemu_img = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-utils missing")


def _disk(folder: Path, fingerprint: str = FP) -> dict[str, object]:
    folder.mkdir(parents=True)
    raw = folder / "disk.raw"
    with raw.open("wb") as f:
        f.truncate(SIZE)
        f.seek(3 << 20)
        f.write(b"kiln" * 1000)
    from kiln.fingerprint import file_sha256
    return {"fingerprint": fingerprint, "size": SIZE, "sha256": {"raw": file_sha256(raw)}}


def test_parse_names_the_unknown_format():
    assert formats.parse("vmdk, vhd,vmdk") == ("vmdk", "vhd")
    assert formats.parse(None) == ()
    with pytest.raises(KilnError, match="unknown format 'ova'"):
        formats.parse("vmdk,ova")


@needs_qemu_img
def test_two_conversions_give_the_same_bytes_and_qemu_reads_them(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    made = [formats.make(folder, _disk(folder), ("vmdk", "vhd")) for folder in (one, two)]
    assert made[0] == made[1]
    for name in ("disk.vmdk", "disk.vhd"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert json.loads((one / "formats.json").read_text())["vhd"]["bytes"] == SIZE + 512
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", "vpc",
                                      one / "disk.vhd"], capture_output=True, check=True).stdout)
    assert info["virtual-size"] == SIZE
    assert not list(one.glob(".formats"))


@needs_qemu_img
def test_the_pinned_fields_follow_the_fingerprint_and_the_vhd_checksum_holds(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    formats.make(a, _disk(a), ("vmdk", "vhd"))
    formats.make(b, _disk(b, "cd" * 32), ("vmdk", "vhd"))
    assert (a / "disk.vmdk").read_bytes() != (b / "disk.vmdk").read_bytes()  # CID
    footer = bytearray((a / "disk.vhd").read_bytes()[-512:])
    assert footer[:8] == b"conectix"
    assert struct.unpack_from(">I", footer, 24)[0] == 0  # time stamp
    stored = struct.unpack_from(">I", footer, 64)[0]
    footer[64:68] = b"\0\0\0\0"
    assert stored == ~sum(footer) & 0xFFFFFFFF
    assert (a / "disk.vhd").read_bytes()[-512 + 68:-512 + 84] != \
        (b / "disk.vhd").read_bytes()[-512 + 68:-512 + 84]  # unique id


@needs_qemu_img
def test_a_stale_byte_after_the_descriptor_text_is_cleared(tmp_path):
    """qemu rewrites the CID on the first data write; a shorter CID leaves the old text's last
    byte after the NUL (1 conversion in ~800 here). Pinning must give the same bytes anyway."""
    folder = tmp_path / "d"
    _disk(folder)
    vmdk = folder / "disk.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                    "subformat=streamOptimized", folder / "disk.raw", vmdk], check=True)
    clean = tmp_path / "clean.vmdk"
    shutil.copy(vmdk, clean)
    data = bytearray(vmdk.read_bytes())
    end = data.index(b"\0", data.index(b"# Disk DescriptorFile"))
    data[end + 1:end + 2] = b"\n"
    vmdk.write_bytes(bytes(data))
    formats.pin_vmdk_cid(vmdk, FP)
    formats.pin_vmdk_cid(clean, FP)
    assert vmdk.read_bytes() == clean.read_bytes()


@needs_qemu_img
def test_a_format_already_made_for_these_bytes_is_not_made_again(tmp_path):
    folder = tmp_path / "d"
    manifest = _disk(folder)
    formats.make(folder, manifest, ("vhd",))
    before = (folder / "disk.vhd").stat().st_mtime_ns
    record = formats.make(folder, manifest, ("vhd", "vmdk"))
    assert (folder / "disk.vhd").stat().st_mtime_ns == before
    assert set(record) == {"raw_sha256", "vhd", "vmdk"}


@pytest.mark.skipif(not shutil.which("genisoimage"), reason="genisoimage missing")
def test_the_seed_is_an_iso_labelled_cidata_with_the_key_hostname_and_marker(tmp_path):
    given = seed.make_seed(tmp_path, "base-vm", "ssh-ed25519 AAAAC3 kiln-verify\n")
    data = given.iso.read_bytes()
    assert data[0x8001:0x8006] == b"CD001"  # ISO 9660 primary volume descriptor
    assert data[0x8028:0x8028 + 32].decode().strip() == "cidata"
    user = (tmp_path / "seed" / "user-data").read_text()
    assert user.startswith("#cloud-config\n")
    body = json.loads(user.split("\n", 1)[1])
    # the key goes to the seed's own account (root does not log in), with sudo for this boot
    [account] = body["users"]
    assert account["name"] == seed.USER
    assert account["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3 kiln-verify"]
    assert account["sudo"] == "ALL=(ALL) NOPASSWD:ALL" and account["lock_passwd"] is True
    assert "ssh_authorized_keys" not in body
    assert body["bootcmd"] == [["chmod", "4755", seed.SUDO]]
    assert seed.SUDO in given.facts()["granted"]
    assert given.token in body["runcmd"][0][2] and seed.MARKER in body["runcmd"][0][2]
    meta = json.loads((tmp_path / "seed" / "meta-data").read_text())
    assert meta == {"instance-id": given.instance_id, "local-hostname": given.hostname}
    assert given.hostname.startswith("base-vm-")
    other = seed.make_seed(tmp_path / "again", "base-vm", "k")
    assert (other.instance_id, other.hostname, other.token) != (
        given.instance_id, given.hostname, given.token)


def test_the_verifier_logs_in_as_the_seed_account_and_never_as_a_refused_root():
    import dataclasses

    from kilntest import REPO_ROOT

    from kiln.context import prepare
    from kiln.load import Project
    from kiln.vm.verify import login_user

    plan = prepare(Project(REPO_ROOT), "base-vm").plan
    assert dict(plan.params)["ssh_permit_root_login"] == "no"  # hardening-ssh's default
    assert login_user(plan, seeded=True) == seed.USER
    # without cloud-init the key goes to root, which this sshd refuses: said before any boot
    with pytest.raises(KilnError, match=r"images/base-vm\.yaml: without the cloud-init layer"):
        login_user(plan, seeded=False)
    allowed = dataclasses.replace(plan, params=tuple(
        (k, "prohibit-password" if k == "ssh_permit_root_login" else v) for k, v in plan.params))
    assert login_user(allowed, seeded=False) == "root"
