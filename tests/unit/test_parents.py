"""kiln.release.parents' pure parts: where a parent is looked for, and the signed fingerprint."""

from __future__ import annotations

import json

import pytest

from kiln.registry import Manifest
from kiln.release.errors import Tampered
from kiln.release.parents import annotated, check_fingerprint, size
from kiln.release.trust import Trust

FP = "f" * 64


def manifest(doc: object) -> Manifest:
    return Manifest("sha256:" + "0" * 64, "application/vnd.oci.image.manifest.v1+json",
                    json.dumps(doc).encode())


def trust(fingerprint: object) -> Trust:
    return Trust("kiln/base", "sha256:" + "0" * 64, "sha256:" + "1" * 64,
                 {"fingerprint": fingerprint}, {}, "key", "2026-12-02T00:00:00Z")


def test_the_annotation_says_where_to_look_and_anything_else_is_not_this_parent() -> None:
    doc = {"config": {"size": 100}, "layers": [{"size": 1000}, {"size": 20}],
           "annotations": {"dev.kiln.fingerprint": FP}}
    assert annotated(manifest(doc)) == FP
    assert size(manifest(doc)) == 1120
    assert annotated(manifest({"layers": []})) is None
    assert annotated(manifest(["not", "a", "manifest"])) is None
    assert annotated(Manifest("sha256:" + "0" * 64, "", b"{not json")) is None


def test_the_signed_fingerprint_must_be_the_local_one() -> None:
    check_fingerprint(trust(FP), FP, "r/kiln/base:candidate")
    with pytest.raises(Tampered, match="signed verification record says eeeeeeeeeeeeeeee"):
        check_fingerprint(trust("e" * 64), FP, "r/kiln/base:candidate")
    with pytest.raises(Tampered):
        check_fingerprint(trust(None), FP, "r/kiln/base:candidate")
