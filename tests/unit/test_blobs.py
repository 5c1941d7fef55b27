"""Layer compression: a pinned gzip stream, byte for byte, and the diff_id cache."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest

from kiln import blobs


def sample(n: int = 3 << 20) -> bytes:
    """Compressible but not trivial: a few MiB that span several read chunks."""
    return b"".join(hashlib.sha256(str(i % 5000).encode()).hexdigest().encode() + b"\n"
                    for i in range(n // 65))


def test_gzip_stream_is_pinned_and_standard(tmp_path: Path) -> None:
    data = sample()
    src = tmp_path / "layer.tar"
    src.write_bytes(data)
    got = blobs.gzip_file(src, tmp_path / "a.gz")
    again = blobs.gzip_file(src, tmp_path / "b.gz")
    packed = (tmp_path / "a.gz").read_bytes()
    assert packed == (tmp_path / "b.gz").read_bytes() == blobs.gzip_bytes(data)
    assert got == again
    assert got.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert got.digest == "sha256:" + hashlib.sha256(packed).hexdigest()
    assert got.size == len(packed) < len(data) * 0.7
    # header: magic, deflate, no flags (no name), mtime 0, xfl 0, os 255, as Go writes it
    assert packed[:10] == bytes.fromhex("1f8b08000000000000ff")
    assert gzip.decompress(packed) == data  # any gzip reader takes it


def test_compressed_digest_is_golden() -> None:
    """The digest of a fixed input must not drift with Python releases (COMPRESSION pins
    zlib's version; a zlib upgrade that changes it is a deliberate, reviewed change)."""
    data = b"".join(b"kiln layer %d\n" % i for i in range(20000))
    digest = "sha256:" + hashlib.sha256(blobs.gzip_bytes(data)).hexdigest()
    assert digest == GOLDEN, digest
    assert blobs.COMPRESSION["level"] == blobs.LEVEL == 4
    assert blobs.COMPRESSION["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"


GOLDEN = "sha256:f95ec5553c66ce42820fdfd1713eadabeeefb0fca22178252e0aaac43e190a21"


def test_cache_round_trip_and_settings_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    blob = blobs.Compressed("sha256:" + "a" * 64, "sha256:" + "b" * 64, 1234)
    assert blobs.cached(tmp_path, blob.diff_id) is None
    blobs.remember(tmp_path, blob)
    assert blobs.cached(tmp_path, blob.diff_id) == blob
    assert os.listdir(tmp_path / "layers") == ["a" * 64 + ".json"]  # no temp file left
    monkeypatch.setitem(blobs.COMPRESSION, "level", 9)
    assert blobs.cached(tmp_path, blob.diff_id) is None  # other settings: compress again
    monkeypatch.undo()
    entry = tmp_path / "layers" / ("a" * 64 + ".json")
    entry.write_text("{not json")
    assert blobs.cached(tmp_path, blob.diff_id) is None  # damaged: a cache, not the truth
    entry.write_text(json.dumps({"digest": 5}))
    assert blobs.cached(tmp_path, blob.diff_id) is None
