"""The nightly report's three renderings agree with its model."""

from __future__ import annotations

import json
from pathlib import Path

from kiln import report as reports
from kiln.report import DiskOutcome, ImageOutcome, NightlyReport, PackageChange, ParentOutcome

REPORT = NightlyReport(
    started="2026-11-30T03:00:00Z", finished="2026-11-30T03:12:00Z",
    outcomes=(
        ImageOutcome("base", "rebuilt", "lock: 2 packages changed",
                     (PackageChange("openssl", "3.0.15-1~deb12u1", "3.0.16-1~deb12u1", True),
                      PackageChange("tzdata", "2024a-0+deb12u1", "2025b-0+deb12u1")),
                     tag="12.1-20261130-0123456789ab", digest="sha256:" + "0123456789ab" * 5 +
                     "0123", channels=("candidate",)),
        ImageOutcome("python", "failed", "verify: layer python, test_python_runs failed"),
        ImageOutcome("nginx", "skipped", "its base image python failed"),
        ImageOutcome("tools", "unchanged"),
    ))


def test_summary_and_failure() -> None:
    assert REPORT.summary() == "1 rebuilt, 1 failed, 1 skipped, 1 unchanged"
    assert REPORT.failed and REPORT.changed
    quiet = NightlyReport("a", "b", (ImageOutcome("base", "unchanged"),))
    assert not quiet.failed and not quiet.changed
    assert quiet.summary() == "1 unchanged"


def test_markdown_names_every_package_change_and_marks_security() -> None:
    md = REPORT.to_markdown()
    assert md.startswith("# kiln nightly: 1 rebuilt, 1 failed, 1 skipped, 1 unchanged\n")
    assert "- **security** `openssl`: 3.0.15-1~deb12u1 -> 3.0.16-1~deb12u1" in md
    assert "- `tzdata`: 2024a-0+deb12u1 -> 2025b-0+deb12u1" in md
    assert ("| base | rebuilt | 12.1-20261130-0123456789ab | sha256:0123456789ab | candidate "
            "| lock: 2 packages changed |") in md
    assert "| python | failed | - | - | - | verify: layer python, test_python_runs failed |" in md


def test_json_and_files_round_trip(tmp_path: Path) -> None:
    md, js = REPORT.write(tmp_path / "report")
    data = json.loads(js.read_text())
    assert data["failed"] is True
    assert [o["status"] for o in data["outcomes"]] == ["rebuilt", "failed", "skipped",
                                                       "unchanged"]
    assert data["outcomes"][0]["packages"][0] == {
        "name": "openssl", "old": "3.0.15-1~deb12u1", "new": "3.0.16-1~deb12u1",
        "security": True}
    assert md.read_text() == REPORT.to_markdown()


def test_package_change_text() -> None:
    assert str(PackageChange("pkg", "1.0", "1.1")) == "pkg: 1.0 -> 1.1"
    assert str(PackageChange("new", None, "2", True)) == "new: (new) -> 2 [security]"
    assert str(PackageChange("gone", "2", None)) == "gone: 2 -> (removed)"


VM_REPORT = NightlyReport(
    started="2026-12-02T03:00:00Z", finished="2026-12-02T03:20:00Z",
    outcomes=(ImageOutcome("hello-vm", "rebuilt", "1 package changed",
                           tag="1-20261202-0123456789ab", channels=("candidate",)),
              ImageOutcome("broken-vm", "rebuilt", "never built here",
                           tag="1-20261202-ba9876543210", channels=("candidate",))),
    disks=(DiskOutcome("hello-vm", "rebuilt", "its container image was rebuilt; booted bios",
                       tag="1-20261202-0123456789ab-vm", digest="sha256:" + "ab" * 32,
                       channels=("candidate-vm",)),
           DiskOutcome("broken-vm", "failed", "images/broken-vm.yaml: 'broken-vm' failed "
                       "verification as a VM; boot bios: qemu exited before SSH answered")))


def test_disks_are_listed_beside_their_images_and_a_failed_disk_fails_the_night() -> None:
    assert VM_REPORT.failed and VM_REPORT.changed
    assert VM_REPORT.summary() == "2 rebuilt; disks: 1 rebuilt, 1 failed"
    assert [row[:2] for row in VM_REPORT.rows()] == [
        ("hello-vm", "rebuilt"), ("hello-vm (vm disk)", "rebuilt"),
        ("broken-vm", "rebuilt"), ("broken-vm (vm disk)", "failed")]
    lines = VM_REPORT.to_markdown().splitlines()
    row = lines.index("| hello-vm (vm disk) | rebuilt | 1-20261202-0123456789ab-vm | "
                      "sha256:abababababab | candidate-vm | its container image was rebuilt; "
                      "booted bios |")
    assert lines[row - 1].startswith("| hello-vm | rebuilt |")
    assert lines[row + 2].startswith("| broken-vm (vm disk) | failed | - | - | - | "
                                     "images/broken-vm.yaml: 'broken-vm' failed")
    # the images alone did not fail: the disk did
    assert not NightlyReport("a", "b", VM_REPORT.outcomes).failed


def test_disks_survive_json_and_the_fan_out_merge(tmp_path: Path) -> None:
    _, js = VM_REPORT.write(tmp_path / "vm")
    data = json.loads(js.read_text())
    assert [(d["image"], d["status"]) for d in data["disks"]] == [("hello-vm", "rebuilt"),
                                                                  ("broken-vm", "failed")]
    assert data["failed"] is True and data["summary"].endswith("disks: 1 rebuilt, 1 failed")
    back = reports.read(js)
    assert back == VM_REPORT
    # two runners' reports: the one that released the disk wins over the one that skipped it
    other = NightlyReport("c", "d", (ImageOutcome("hello-vm", "unchanged"),),
                          disks=(DiskOutcome("hello-vm", "skipped"),))
    merged = reports.merge([other, back])
    assert [(d.image, d.status) for d in merged.disks] == [("broken-vm", "failed"),
                                                           ("hello-vm", "rebuilt")]
    assert NightlyReport("a", "b", (ImageOutcome("x", "unchanged"),),
                         disks=(DiskOutcome("x", "unchanged"),)).headline() == (
        "nothing changed: 1 image unchanged (and 1 disk), nothing built, no new tag, "
        "nothing pushed")


def test_the_fan_out_says_how_each_parent_was_had_and_it_round_trips() -> None:
    pulled = ParentOutcome("base", "pulled", 1.3, 31_400_000, "sha256:" + "ab" * 32)
    built = ParentOutcome("top", "built", 61.0)
    assert str(pulled) == "parent base pulled (31.4 MB in 1.3s, sha256:abababababab)"
    assert str(built) == "parent top built (61.0s)"
    report = NightlyReport("a", "b", (ImageOutcome("kid", "rebuilt", "never built here",
                                                   parents=(pulled,)),
                                      ImageOutcome("kid2", "rebuilt", parents=(built,))))
    assert "## Parent images\n\n- kid: parent base pulled (31.4 MB" in report.to_markdown()
    assert "parent top built (61.0s)" in report.rows()[1][-1]
    assert NightlyReport.from_json(json.loads(json.dumps(report.to_json()))) == report
