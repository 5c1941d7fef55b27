"""The nightly report's three renderings agree with its model."""

from __future__ import annotations

import json
from pathlib import Path

from kiln.report import ImageOutcome, NightlyReport, PackageChange, ParentOutcome

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
