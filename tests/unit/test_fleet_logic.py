"""The fleet's pure parts: manifests from tars, DSSE statements, comparisons, reports, and the
VM listing (run here, with the host's GNU find, on a folder instead of a VM's root)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kilntest import REF, MakeProject

from kiln.compose import compose
from kiln.errors import KilnError
from kiln.fleet.drift import Drift, DriftError, compare, compare_packages, entry_from_stat
from kiln.fleet.manifest import (
    DEFAULT_MUTABLE,
    PREDICATE_TYPE,
    Entry,
    FileManifest,
    dpkg_packages,
    is_mutable,
    mutable_paths,
    read_tar,
)
from kiln.fleet.remote import judge_listing, listing_command
from kiln.release.cosign import INTOTO_TYPE, envelope, statement, unseal

DIGEST = "sha256:" + "cd" * 32
STATUS = ("Package: a\nStatus: install ok installed\nVersion: 1\n\n"
          "Package: gone\nStatus: deinstall ok config-files\nVersion: 2\n\n"
          "Package: b\nStatus: install ok installed\nArchitecture: all\nVersion: 3\n"
          "Description: x\n y: not a field\n")


def _tar() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.linkname, ti.size = kind, mode, 0, 0, link, \
                len(data)
            tar.addfile(ti, io.BytesIO(data) if data else None)
        add("etc", tarfile.DIRTYPE, 0o755)
        add("etc/app.conf", tarfile.REGTYPE, 0o4750, b"hello\n")
        add("etc/hard", tarfile.LNKTYPE, 0o4750, link="etc/app.conf")
        add("etc/soft", tarfile.SYMTYPE, 0o777, link="app.conf")
        add("var/lib/dpkg/status", tarfile.REGTYPE, 0o644, STATUS.encode())
    buf.seek(0)
    return buf


def test_read_tar_records_every_file_and_the_packages() -> None:
    entries, packages = read_tar(_tar())
    sha = hashlib.sha256(b"hello\n").hexdigest()
    assert entries["/etc"] == Entry("/etc", "dir", 0o755, 0, 0)
    assert entries["/etc/app.conf"] == Entry("/etc/app.conf", "file", 0o4750, 0, 0, 6, sha)
    assert entries["/etc/hard"].sha256 == sha and entries["/etc/hard"].type == "file"
    assert entries["/etc/soft"].link == "app.conf"
    assert packages == {"a": "1", "b": "3"}


def test_dpkg_packages_names_foreign_architectures() -> None:
    text = "Package: x\nStatus: install ok installed\nArchitecture: i386\nVersion: 1\n"
    assert dpkg_packages(text) == {"x:i386": "1"}


def _manifest() -> FileManifest:
    entries, packages = read_tar(_tar())
    return FileManifest("sha256:" + "ab" * 32, entries, (*DEFAULT_MUTABLE, "/srv/data"),
                        packages)


def test_manifest_round_trips_through_a_signed_attestation() -> None:
    """Stored as kiln's other attestations are: a DSSE envelope (kiln.release.cosign)."""
    key = Ed25519PrivateKey.generate()
    env = envelope(key, statement("kiln/web", DIGEST, PREDICATE_TYPE, _manifest().predicate()))
    body = unseal(key.public_key(), env, INTOTO_TYPE)
    assert body is not None and body["predicateType"] == "https://kiln.dev/file-manifest/v1"
    assert body["subject"] == [{"name": "kiln/web", "digest": {"sha256": "cd" * 32}}]
    assert FileManifest.from_predicate(body["predicate"]) == _manifest()


def test_tampered_or_foreign_manifests_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    good = envelope(key, statement("kiln/web", DIGEST, PREDICATE_TYPE, _manifest().predicate()))
    doc = json.loads(good)
    body = json.loads(base64.b64decode(doc["payload"]))
    body["predicate"]["files"] = body["predicate"]["files"][1:]
    doc["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    assert unseal(key.public_key(), json.dumps(doc).encode(), INTOTO_TYPE) is None
    assert unseal(Ed25519PrivateKey.generate().public_key(), good, INTOTO_TYPE) is None
    with pytest.raises(KilnError, match="malformed"):
        FileManifest.from_predicate({"files": [{"path": "/x"}]})


def test_mutable_paths_are_defaults_then_layers_in_order(make_project: MakeProject) -> None:
    project = make_project(
        layers={"db": "mutable: [/var/lib/postgresql/]\n", "app": "mutable: [/srv, /var/log]\n"},
        images={"i": f"base:\n  ref: {REF}\nlayers: [db, app]\n"})
    assert mutable_paths(compose(project, "i")) == (*DEFAULT_MUTABLE, "/var/lib/postgresql",
                                                    "/srv")
    assert is_mutable("/srv/x/y", ["/srv"]) and is_mutable("/srv", ["/srv"])
    assert not is_mutable("/srvx", ["/srv"])


def test_compare_reports_added_changed_deleted_and_ignores_mutable() -> None:
    m = _manifest()
    conf = m.entries["/etc/app.conf"]
    observed: dict[str, Entry | None] = {
        "/etc/app.conf": Entry(conf.path, "file", 0o644, 0, 0, 6, "f" * 64),
        "/etc/soft": None, "/etc/new": Entry("/etc/new", "file", 0o644, 0, 0, 1, "e" * 64),
        "/etc": Entry("/etc", "dir", 0o755, 0, 0, 4096),  # a parent listed by docker diff
        "/srv/data/db": Entry("/srv/data/db", "file", 0o600, 0, 0, 1, "1" * 64),
        "/tmp/x": None}
    drift = Drift("web.1", "kiln/web", DIGEST)
    compare(m, observed, drift)
    assert drift.added == ["/etc/new"] and drift.deleted == ["/etc/soft"]
    assert drift.changed == [("/etc/app.conf", [
        "mode: 4750 -> 0644", f"sha256: {conf.sha256[:12]} -> {'f' * 12}"])]
    assert drift.ignored == 2
    compare_packages(m, {"a": "1.1", "c": "9"}, drift)
    assert (drift.installed, drift.removed, drift.upgraded) == (["c=9"], ["b=3"], ["a: 1 -> 1.1"])
    assert drift.drifted


def test_entry_from_stat_reads_the_container_stat_lines() -> None:
    assert entry_from_stat("81a4 0 0 6 /f") == Entry("/f", "file", 0o644, 0, 0, 6)
    assert entry_from_stat("a1ff 0 0 7 /a link") == Entry("/a link", "symlink", 0o777, 0, 0)
    assert entry_from_stat("43ed 1 2 4096 /d") == Entry("/d", "dir", 0o1755, 1, 2)
    with pytest.raises(DriftError, match="unexpected stat output"):
        entry_from_stat("stat: /x: No such file")


def test_prometheus_text_has_one_gauge_per_kind_with_escaped_labels() -> None:
    drift = Drift('we"b\\1', "kiln/web", DIGEST, deleted=["/a"], removed=["p=1"])
    text = drift.to_prom()
    assert f'kiln_drift{{instance="we\\"b\\\\1",repository="kiln/web",digest="{DIGEST}"}} 1' \
        in text
    assert 'kiln_drift_paths{instance="we\\"b\\\\1",repository="kiln/web",kind="deleted"} 1' \
        in text
    assert 'kind="removed"} 1' in text and text.endswith("\n")
    assert Drift("x", "r", DIGEST).to_json()["drifted"] is False


def test_vm_listing_finds_the_same_drift_as_the_manifest_says(tmp_path: Path) -> None:
    """The SSH listing command, run here on a folder made from the manifest's tar."""
    root = tmp_path / "vm"
    root.mkdir()
    with tarfile.open(fileobj=_tar()) as tar:
        tar.extractall(root, filter="fully_trusted")
    uid, gid = os.getuid(), os.getgid()
    m = _manifest()
    m = FileManifest(m.image_id, {p: Entry(e.path, e.type, e.mode, uid, gid, e.size, e.sha256,
                                           e.link) for p, e in m.entries.items()},
                     (*m.mutable, "/srv/data"), m.packages)
    for folder in ("var", "var/lib", "var/lib/dpkg"):  # implicit in the tar: as extracted
        m.entries[f"/{folder}"] = Entry(f"/{folder}", "dir", (root / folder).stat().st_mode
                                        & 0o7777, uid, gid)  # type: ignore[index]

    def judge() -> Drift:
        out = subprocess.run(["sh", "-c", listing_command(str(root), m.mutable)],
                             capture_output=True, check=True).stdout
        status = (root / "var/lib/dpkg/status").read_text()
        return judge_listing(m, out, str(root), "vm", "kiln/base", DIGEST, status)

    assert judge().to_json()["drifted"] is False, judge().to_json()
    (root / "etc/app.conf").write_text("patched\n")
    (root / "etc/soft").unlink()
    (root / "srv/data").mkdir(parents=True)
    (root / "srv/data/db").write_text("state")
    (root / "var/lib/dpkg/status").write_text(STATUS.split("\n\n")[0] + "\n")
    drift = judge()
    assert [p for p, _ in drift.changed] == ["/etc/app.conf", "/etc/hard",
                                             "/var/lib/dpkg/status"]
    assert drift.deleted == ["/etc/soft"]
    assert drift.added == ["/srv"]  # the folder is new; what is under /srv/data is mutable
    assert drift.removed == ["b=3"]


def test_the_fleet_report_names_what_runs_the_fix_and_the_canary(tmp_path: Path) -> None:
    from kiln.fleet.deploy import ChannelRoll, Deployed
    from kiln.fleet.patch import write_report
    from kiln.fleet.swarm import Canary

    canary = Deployed("web-canary", "web:candidate", DIGEST, "sha256:" + "ab" * 32, "updated",
                      9.5, finished=1000.0)
    main = Deployed("web", "web:stable", DIGEST, "sha256:" + "ab" * 32, "updated", 20.0,
                    Canary("t1", 2, 7.25), 1030.0)
    roll = ChannelRoll("web", (canary,), True, (main,))
    fleet = [{**roll.to_json(), "fix": ["openssl: 3.0.15 -> 3.0.16 [security]"], "reason": "",
              "seconds_to_fleet": 42.0}]
    assert fleet[0]["rolled"][0]["canary"] == {"task": "t1", "slot": 2, "seconds": 7.25}
    assert fleet[0]["canaries"][0]["canary"] is None  # one task: no canary phase
    (tmp_path / "nightly.md").write_text("# kiln nightly\n")
    write_report(tmp_path, fleet)
    md = (tmp_path / "nightly.md").read_text()
    assert md.startswith("# kiln nightly\n\n## Fleet\n")
    assert (f"- `web-canary` (canary) now runs web `{DIGEST[:19]}` (web:candidate): "
            "openssl: 3.0.15 -> 3.0.16 [security]") in md
    assert f"- `web` now runs web `{DIGEST[:19]}` (web:stable): openssl" in md
    assert "- web: candidate promoted to stable" in md and "42.0s from the start" in md
    assert json.loads((tmp_path / "fleet.json").read_text()) == fleet


def test_a_fleet_report_with_a_problem_says_it() -> None:
    from kiln.fleet.deploy import ChannelRoll
    from kiln.fleet.patch import to_markdown

    roll = ChannelRoll("web", (), False, (), "no service follows web:candidate")
    md = to_markdown([{**roll.to_json(), "fix": [], "reason": "inputs changed",
                       "seconds_to_fleet": None}])
    assert "- **web: no service follows web:candidate**" in md and "promoted" not in md
    assert "No image was released" in to_markdown([])
