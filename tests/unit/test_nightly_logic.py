"""The pure parts of the nightly run: order, skip propagation, package diffs, commit message,
report merge."""

from __future__ import annotations

import subprocess

import pytest

from kiln import report as reports
from kiln.aptlock import index_state, resolve_script
from kiln.errors import KilnError
from kiln.lockfile import Lock, LockedPackage, LockSection
from kiln.nightly import (
    blocked_by,
    commit_message,
    dependency_order,
    input_diff,
    is_security,
    lock_diff,
)
from kiln.report import ImageOutcome, NightlyReport, PackageChange

MIRROR = "http://deb.debian.org/debian/pool/main"
SECURITY = "http://deb.debian.org/debian-security/pool/updates/main"


def pkg(name: str, version: str, url: str = MIRROR, sha: str = "a") -> LockedPackage:
    return LockedPackage(name, version, "amd64", 1, sha * 64, f"{url}/{name}_{version}.deb")


def lock(*packages: LockedPackage) -> Lock:
    return Lock("base", (LockSection("core", ("x",), packages),))


PARENTS = {"base": None, "python": "base", "web": "python", "nginx": "base", "tools": None}


def test_parents_come_first_siblings_by_name() -> None:
    order = dependency_order(PARENTS)
    assert order == ["base", "tools", "nginx", "python", "web"]
    for child, parent in PARENTS.items():
        if parent:
            assert order.index(parent) < order.index(child)


def test_a_cycle_is_an_error() -> None:
    with pytest.raises(KilnError, match="cycle: a -> b -> a"):
        dependency_order({"a": "b", "b": "a"})


@pytest.mark.parametrize(("statuses", "image", "expected"), [
    ({"base": "failed"}, "web", "base"),  # python has no outcome yet: base is the nearest
    ({"base": "failed", "python": "skipped"}, "web", "python"),  # the nearest: python
    ({"base": "failed"}, "python", "base"),
    ({"base": "failed"}, "tools", None),  # unrelated images go on
    ({"base": "rebuilt", "python": "unchanged"}, "web", None),
    ({"python": "failed"}, "nginx", None),  # a sibling's failure is not ours
])
def test_skip_propagates_to_descendants_only(statuses: dict[str, str], image: str,
                                             expected: str | None) -> None:
    assert blocked_by(image, PARENTS, statuses) == expected


def test_a_night_in_order_skips_each_descendant_for_its_parent() -> None:
    statuses = {"base": "failed"}
    for image in dependency_order(PARENTS)[1:]:
        statuses[image] = "rebuilt" if blocked_by(image, PARENTS, statuses) is None else "skipped"
    assert statuses == {"base": "failed", "tools": "rebuilt", "nginx": "skipped",
                        "python": "skipped", "web": "skipped"}
    assert [blocked_by(i, PARENTS, statuses) for i in ("nginx", "python", "web")] == [
        "base", "base", "python"]


def test_security_updates_are_marked_by_their_archive() -> None:
    assert is_security(pkg("openssl", "3.0.16", SECURITY))
    assert is_security(pkg("x", "1", "http://security.debian.org/debian-security/pool"))
    assert not is_security(pkg("tzdata", "2025b"))


def test_lock_diff_old_to_new() -> None:
    old = lock(pkg("openssl", "3.0.15"), pkg("tzdata", "2024a"), pkg("gone", "1"))
    new = lock(pkg("openssl", "3.0.16", SECURITY, "b"), pkg("tzdata", "2025b", sha="c"),
               pkg("added", "2"))
    assert [str(c) for c in lock_diff(old, new)] == [
        "added: (new) -> 2", "gone: 1 -> (removed)", "openssl: 3.0.15 -> 3.0.16 [security]",
        "tzdata: 2024a -> 2025b"]
    assert lock_diff(new, new) == ()


def test_input_diff_reads_the_recorded_inputs() -> None:
    old = {"lock.core.openssl:amd64": "3.0.15 " + "a" * 64, "base": "x",
           "lock.core.tzdata:all": "2024a " + "a" * 64}
    new = {"lock.core.openssl:amd64": "3.0.16 " + "b" * 64, "base": "y",
           "lock.core.tzdata:all": "2024a " + "a" * 64}
    changes = input_diff(old, new, lock(pkg("openssl", "3.0.16", SECURITY, "b")))
    assert changes == (PackageChange("openssl", "3.0.15", "3.0.16", True),)


def test_commit_message_body_is_the_package_diff() -> None:
    message = commit_message({
        "python": (PackageChange("kiln-hello", "1.0", "1.1"),),
        "base": (PackageChange("openssl", "3.0.15", "3.0.16", True),),
        "nginx": ()})
    subject, blank, *body = message.splitlines()
    assert subject == "locks: 2 package updates for base, python (1 security)"
    assert blank == ""
    text = "\n".join(body)
    assert "images/base.lock:\n  openssl: 3.0.15 -> 3.0.16 [security]" in text
    assert "images/python.lock:\n  kiln-hello: 1.0 -> 1.1" in text
    assert "nginx" not in text
    assert commit_message({"nginx": ()}) == ""
    left = commit_message({"base": (PackageChange("a", "1", "2"),)}, left_out=["python"])
    assert left.endswith("Not in this commit (their images failed tonight): "
                         "images/python.lock\n")


def test_index_state_pairs_release_urls_with_what_apt_read() -> None:
    output = "\n".join([
        "'http://deb.debian.org/debian/dists/bookworm/InRelease' "
        "deb.debian.org_debian_dists_bookworm_InRelease 0 ",
        "'http://127.0.0.1:8000/dists/kiln-test/InRelease' "
        "127.0.0.1:8000_dists_kiln-test_InRelease 0 ",
        f"{'1' * 64}  deb.debian.org_debian_dists_bookworm_InRelease",
        f"{'2' * 64}  127.0.0.1:8000_dists_kiln-test_Release",  # no InRelease: Release
        "### kiln section 0"])
    assert index_state(output) == {
        "http://deb.debian.org/debian/dists/bookworm/InRelease": "1" * 64,
        "http://127.0.0.1:8000/dists/kiln-test/InRelease": "2" * 64}
    assert "apt-get update --print-uris" in resolve_script((("core", ("x",)),))


def report(*outcomes: ImageOutcome, started: str = "2026-11-30T03:00:00Z") -> NightlyReport:
    return NightlyReport(started, "2026-11-30T03:10:00Z", outcomes)


def test_merge_keeps_the_most_informative_outcome_per_image() -> None:
    level0 = report(ImageOutcome("base", "rebuilt", "1 package changed",
                                 (PackageChange("openssl", "1", "2", True),), "t", "sha256:1",
                                 ("candidate",)))
    level1 = report(ImageOutcome("base", "unchanged"), ImageOutcome("python", "failed", "boom"),
                    started="2026-11-30T02:59:00Z")
    merged = reports.merge([level0, level1])
    assert [(o.image, o.status) for o in merged.outcomes] == [("base", "rebuilt"),
                                                              ("python", "failed")]
    assert merged.outcomes[0].packages[0].security
    assert merged.started == "2026-11-30T02:59:00Z" and merged.failed


def test_report_json_round_trips(tmp_path) -> None:
    original = report(ImageOutcome("base", "rebuilt", "x", (PackageChange("a", "1", "2"),),
                                   "12-20261130-abc", "sha256:0", ("candidate", "stable")))
    _, js = original.write(tmp_path)
    assert reports.read(js) == original


def test_a_quiet_night_says_so() -> None:
    quiet = report(ImageOutcome("base", "unchanged"), ImageOutcome("python", "unchanged"))
    assert quiet.headline() == ("nothing changed: 2 images unchanged, nothing built, "
                                "no new tag, nothing pushed")


def test_merge_reports_cli_aggregates_the_fan_out_and_commits_the_locks(tmp_path,
                                                                        kiln_cli) -> None:
    root = tmp_path / "project"
    (root / "images").mkdir(parents=True)
    (root / "layers").mkdir()
    (root / "images" / "base.yaml").write_text("base: {bootstrap: {suite: bookworm}}\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    (root / "images" / "base.lock").write_text("kiln-lock: 1\n")  # copied from an artifact
    report(ImageOutcome("base", "rebuilt", "1 package changed",
                        (PackageChange("openssl", "1", "2", True),), "t", "sha256:1",
                        ("candidate",))).write(root / "reports" / "nightly-base")
    report(ImageOutcome("base", "unchanged"), ImageOutcome("python", "failed", "boom")).write(
        root / "reports" / "nightly-python")
    done = kiln_cli(root, "merge-reports", "reports", "--out", "merged", "--commit")
    assert done.returncode == 1, done.stderr  # python failed
    assert "kiln nightly: 1 rebuilt, 1 failed" in done.stdout
    merged = reports.read(root / "merged" / "nightly.json")
    assert [(o.image, o.status) for o in merged.outcomes] == [("base", "rebuilt"),
                                                              ("python", "failed")]
    message = (root / "merged" / "commit-message.txt").read_text()
    assert message.startswith("locks: 1 package update for base (1 security)")
    log = subprocess.run(["git", "log", "-1", "--format=%B", "--name-only"], cwd=root,
                         check=True, capture_output=True, text=True).stdout
    assert log.startswith(message.strip()) and log.rstrip().endswith("images/base.lock")


def test_merge_reports_without_reports_says_where_it_looked(tmp_path, kiln_cli) -> None:
    (tmp_path / "images").mkdir()
    done = kiln_cli(tmp_path, "merge-reports", "nothing-here")
    assert done.returncode == 1
    assert "nothing-here: no nightly.json below it" in done.stderr


def test_a_failed_disk_says_which_boot_failed_in_one_cell() -> None:
    from kiln.nightly_disk import _why

    message = ("images/broken-vm.yaml: 'broken-vm' failed verification as a VM\n"
               "  boot bios: qemu exited before SSH answered (bios, tcg, after 61s)\n"
               "  serial console, last 40 lines:\n  | ...\n")
    assert _why(message) == ("images/broken-vm.yaml: 'broken-vm' failed verification as a VM; "
                             "boot bios: qemu exited before SSH answered (bios, tcg, after 61s)")
    assert _why("registry.example: 503 Service Unavailable\n  retry later") == \
        "registry.example: 503 Service Unavailable"
    assert len(_why("x" * 1000)) == 300


@pytest.mark.parametrize(("status", "why"), [("failed", "its container image failed"),
                                             ("skipped", "its container image was skipped")])
def test_no_disk_is_made_from_a_container_that_failed_or_was_skipped(status: str,
                                                                     why: str) -> None:
    from types import SimpleNamespace

    from kiln.nightly_disk import night_disk

    night = SimpleNamespace(ctx=SimpleNamespace(results={}))  # nothing built tonight
    disk = night_disk(night, "app-vm", ImageOutcome("app-vm", status),  # type: ignore[arg-type]
                      ("candidate",))
    assert (disk.image, disk.status, disk.reason) == ("app-vm", "skipped", why)
