"""kiln.audit without lynis: reading its report, and the publishing gate on the index."""

from __future__ import annotations

from pathlib import Path

import pytest
from kilntest import REF, MakeProject

from kiln import audit
from kiln.audit import AuditError, AuditRecord, Finding, audit_gate, parse_report
from kiln.compose import compose

REPORT = """\
# Lynis Report
lynis_version=3.0.8
warning[]=PKGS-7388|Can't find any security repository in /etc/apt/sources.list|-|-|
suggestion[]=AUTH-9230|Configure password hashing rounds in /etc/login.defs|-|-|
suggestion[]=FILE-7524|Consider restricting file permissions|See screen output|text:chmod|
tests_executed=ACCT-9622|AUTH-9230|BANN-7126|
hardening_index=71
"""


def test_the_report_is_read() -> None:
    report = parse_report(REPORT)
    assert report["hardening_index"] == "71"
    assert report["lynis_version"] == "3.0.8"
    assert report["tests_executed"] == "ACCT-9622|AUTH-9230|BANN-7126|"
    assert report["warnings"] == [Finding("PKGS-7388", "Can't find any security repository in "
                                                       "/etc/apt/sources.list")]
    assert [f.test for f in report["suggestions"]] == ["AUTH-9230", "FILE-7524"]
    assert report["suggestions"][1].details == "See screen output|text:chmod"


def test_a_report_without_an_index_is_an_error() -> None:
    with pytest.raises(AuditError, match="no hardening index"):
        parse_report("lynis_version=3.0.8\n")


def _record(index: int) -> AuditRecord:
    return AuditRecord(image="i", image_id="sha256:" + "1" * 64, target="container", index=index,
                       warnings=(Finding("X-1", "w"),), started="2026-12-02T04:00:00+00:00")


def test_records_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path))
    audit.save(tmp_path, _record(64))
    assert audit.load(tmp_path, "sha256:" + "1" * 64) == _record(64)
    assert audit.load(tmp_path, "sha256:" + "2" * 64) is None


def test_the_gate(make_project: MakeProject, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    project = make_project(layers={"a": ""}, images={
        "free": {"base": {"ref": REF}, "layers": ["a"]},
        "strict": f"base:\n  ref: {REF}\nlayers: [a]\naudit_min_index: 70\n"})
    image_id = "sha256:" + "1" * 64
    assert audit_gate(project.root, compose(project, "free"), image_id) is None
    strict = compose(project, "strict")
    with pytest.raises(AuditError, match=r"images/strict.yaml:4: .* never audited .*kiln audit"):
        audit_gate(project.root, strict, image_id)
    audit.save(project.root, _record(69))
    with pytest.raises(AuditError, match="index 69, below its audit_min_index 70"):
        audit_gate(project.root, strict, image_id)
    audit.save(project.root, _record(70))
    assert audit_gate(project.root, strict, image_id) == _record(70)


def test_slowest_lynis_tests_come_from_the_log_times():
    from kiln.audit_vm import slowest_tests

    log = "\n".join([
        "2026-12-02 07:23:21 Starting Lynis 3.0.8",
        "2026-12-02 07:23:22 Performing test ID BOOT-5104 (Determine service manager)",
        "2026-12-02 07:23:23 Result: systemd",
        "2026-12-02 07:23:27 Performing test ID CRYP-7902 (Check expire date of SSL certificates)",
        "  a continuation line without a time",
        "2026-12-02 07:23:41 Performing test ID BOOT-5104 (again: times add up)",
        "2026-12-02 07:23:43 ====",
    ])
    assert slowest_tests(log) == [{"test": "CRYP-7902", "seconds": 14},
                                  {"test": "BOOT-5104", "seconds": 7}]
    assert slowest_tests(log, 1) == [{"test": "CRYP-7902", "seconds": 14}]
    assert slowest_tests("") == []


def test_hardening_points_and_where_they_were_missed_come_from_the_log():
    from kiln.audit_vm import hardening_points

    log = "\n".join([  # the lines as lynis 3.0.8 writes them (AddHP in include/functions)
        "2026-12-02 10:48:41 Performing test ID USB-3000 (Check for presence of USBGuard)",
        "2026-12-02 10:48:41 Hardening: assigned partial number of hardening points (0 of 8). "
        "Currently having 0 points (out of 8)",
        "2026-12-02 10:48:42 Performing test ID SSH-7408 (Check SSH specific defined options)",
        "2026-12-02 10:48:42 Hardening: assigned maximum number of hardening points for this "
        "item (3). Currently having 3 points (out of 11)",
        "2026-12-02 10:48:43 Hardening: assigned partial number of hardening points (1 of 3). "
        "Currently having 4 points (out of 14)",
        "2026-12-02 10:48:44 Hardening: assigned partial number of hardening points (0 of 3). "
        "Currently having 4 points (out of 17)",
        "2026-12-02 10:48:45 Performing test ID KRNL-6000 (Check sysctl key pairs)",
        "2026-12-02 10:48:45 Hardening: assigned partial number of hardening points (0 of 1). "
        "Currently having 4 points (out of 18)",
    ])
    assert hardening_points(log) == {
        "got": 4, "of": 18,
        "missed": [{"test": "USB-3000", "points": 8}, {"test": "SSH-7408", "points": 5},
                   {"test": "KRNL-6000", "points": 1}]}
    assert hardening_points("") == {"got": 0, "of": 0, "missed": []}
