"""kiln.noop's record of a verified build, and kiln.hashcache: what makes them step aside."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kiln import hashcache, noop


def project(tmp_path: Path) -> Path:
    for rel in ("images/a.yaml", "layers/x/layer.yaml", "layers/x/files/f"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    return tmp_path


def test_stamp_moves_with_every_edit_addition_removal_and_setting(tmp_path, monkeypatch):
    root = str(project(tmp_path))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    seen = {noop.stamp(root)}
    assert noop.stamp(root) in seen  # nothing moved: the same stamp

    def changed() -> bool:
        now = noop.stamp(root)
        fresh = now not in seen
        seen.add(now)
        return fresh

    f = tmp_path / "layers/x/files/f"
    f.write_text("y\n")  # same size, new mtime
    assert changed()
    (tmp_path / "layers/x/files/g").write_text("")
    assert changed()
    (tmp_path / "layers/x/files/g").unlink()
    assert changed()
    (tmp_path / "kiln.toml").write_text("")
    assert changed()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    assert changed()
    assert not changed()


def test_stamp_follows_a_linked_file_and_never_matches_with_a_linked_folder(tmp_path):
    root = project(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "f").write_text("one\n")
    (root / "layers/x/files/link").symlink_to(outside / "f")
    first = noop.stamp(str(root))
    assert noop.stamp(str(root)) == first
    (outside / "f").write_text("two, longer\n")  # the link itself is untouched
    assert noop.stamp(str(root)) != first
    (root / "layers/x/files/folder").symlink_to(outside)
    assert noop.stamp(str(root)) != noop.stamp(str(root))


def test_only_a_bare_build_of_named_images_is_answered(tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_PROJECT", str(project(tmp_path)))
    for argv in (["build"], ["build", "a", "--force"], ["build", "--json", "a"],
                 ["build", "all"], ["verify", "a"], ["build", "a"]):
        assert noop.answer(argv) is False  # the last: no record yet


def test_a_record_stops_matching_when_its_verify_record_changes(tmp_path, monkeypatch):
    root = str(project(tmp_path))
    verified = tmp_path / ".kiln/verified/container/abc.json"
    verified.parent.mkdir(parents=True)
    verified.write_text("{}")
    before = noop.stamp(root)
    link = {"image": "a", "ref": "kiln/a:1", "id": "sha256:abc", "tags": ["kiln/a:1"],
            "verify_record": str(verified)}
    noop.remember(root, "a", before, [link])
    record = noop.record_path(root, "a")
    assert os.path.isfile(record)
    data = noop._combine(noop.stamp(root), root, [str(verified)])
    assert data == __import__("json").loads(Path(record).read_text())["stamp"]
    verified.write_text('{"passed": false}')
    assert noop._combine(noop.stamp(root), root, [str(verified)]) != data
    noop.forget(root, "a")
    assert not os.path.exists(record)


def test_hash_cache_reads_a_file_once_until_its_stat_moves(tmp_path):
    f = tmp_path / "f"
    f.write_text("one")
    old = time.time_ns() - 10 * hashcache.RACY_NS
    os.utime(f, ns=(old, old))
    calls: list[Path] = []

    def hasher(path: Path) -> str:
        calls.append(path)
        return path.read_text()

    cache = hashcache.HashCache(tmp_path / "state/hashes.json")
    assert cache.sha256(f, hasher) == "one"
    assert cache.sha256(f, hasher) == "one"
    assert len(calls) == 1
    cache.save()
    reloaded = hashcache.HashCache(tmp_path / "state/hashes.json")
    assert reloaded.sha256(f, hasher) == "one" and len(calls) == 1
    f.write_text("two")  # new size and mtime: hashed again
    assert reloaded.sha256(f, hasher) == "two" and len(calls) == 2


def test_hash_cache_does_not_keep_a_file_written_this_second(tmp_path):
    f = tmp_path / "f"
    f.write_text("one")
    cache = hashcache.HashCache(tmp_path / "hashes.json")
    cache.sha256(f, lambda p: p.read_text())
    assert cache.entries == {}
