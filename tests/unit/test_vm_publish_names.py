"""The names VM disks are published under, and the gate on their verification record."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.config import load_config
from kiln.records import VerifyRecord
from kiln.release.errors import PublishError, TrustError
from kiln.release.names import channel_tag, check_tag, is_version_tag, target_of
from kiln.release.vmdisk import check_record

DISK = {"image_id": "sha256:" + "a" * 64, "boot": ["bios", "uefi"],
        "sha256": {"raw": "1" * 64, "qcow2": "2" * 64}}


def record(**changes: object) -> VerifyRecord:
    fields: dict[str, object] = {
        "image": "x", "image_id": DISK["image_id"], "fingerprint": "f", "target": "vm",
        "suite": "s", "passed": True,
        "extra": {"disk_sha256": DISK["sha256"], "boots": [{"mode": "bios", "error": ""},
                                                           {"mode": "uefi", "error": ""}]}}
    fields.update(changes)
    return VerifyRecord(**fields)  # type: ignore[arg-type]


def test_channel_tags_per_target(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert channel_tag("stable") == "stable"
    assert channel_tag("stable", "vm") == "stable-vm"
    with pytest.raises(Exception, match="use container or vm"):
        channel_tag("stable", "iso")
    assert not is_version_tag("stable-vm", config) and not is_version_tag("candidate", config)
    assert is_version_tag("1.0-20261129-abcdef012345-vm", config)
    assert target_of("1.0-20261129-abcdef012345-vm") == "vm"
    assert target_of("1.0-20261129-abcdef012345") == "container"


@pytest.mark.parametrize(("tag", "target", "error"), [
    ("1.0-x-vm", "vm", None),
    ("1.0-x", "container", None),
    ("1.0-x-vm", "container", "for VM disks"),
    ("1.0-x", "vm", "for VM disks"),
    ("stable-vm", "vm", "reserved"),
    ("sha256-ab.sig", "vm", "reserved"),
])
def test_check_tag_keeps_disks_and_containers_apart(tmp_path: Path, tag: str, target: str,
                                                    error: str | None) -> None:
    config = load_config(tmp_path, environ={})
    if error is None:
        assert check_tag(tag, config, target) == tag
    else:
        with pytest.raises(PublishError, match=error):
            check_tag(tag, config, target)


@pytest.mark.parametrize(("changes", "error"), [
    ({}, None),
    ({"extra": {}}, None),  # an older record that does not say: trusted as a whole
    ({"passed": False, "reason": "boom"}, "not a passing one"),
    ({"target": "container"}, "not a passing one"),
    ({"image_id": "sha256:" + "b" * 64}, "record is for image"),
    ({"extra": {"disk_sha256": {"raw": "9" * 64, "qcow2": "2" * 64}}}, "remade after"),
    ({"extra": {"boots": [{"mode": "bios", "error": ""}]}}, r"boot mode\(s\) uefi"),
    ({"extra": {"boots": [{"mode": "bios", "error": ""}, {"mode": "uefi", "error": "hung"}]}},
     r"boot mode\(s\) uefi"),
])
def test_check_record(changes: dict[str, object], error: str | None) -> None:
    if error is None:
        check_record(record(**changes), DISK, "here")
    else:
        with pytest.raises(TrustError, match=error):
            check_record(record(**changes), DISK, "here")
