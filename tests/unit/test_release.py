"""The release package's pure parts: names, DSSE and simple-signing documents, key pinning,
first-built dates."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiln.config import load_config
from kiln.errors import KilnError
from kiln.records import first_built
from kiln.release import cosign
from kiln.release.errors import TagMismatch
from kiln.release.keys import pin_key_id
from kiln.release.names import check_names, immutable_tag, is_version_tag
from kiln.release.provenance import cyclonedx, purl
from kiln.signing import keygen


def test_pae_is_dsse_v1() -> None:
    assert cosign.pae("application/vnd.in-toto+json", b"hello") == \
        b"DSSEv1 28 application/vnd.in-toto+json 5 hello"


def test_envelope_round_trip_and_refusals() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    statement = cosign.statement("r/x", "sha256:" + "a" * 64, "https://x/p", {"k": 1})
    data = cosign.envelope(key, statement)
    assert cosign.unseal(key.public_key(), data, cosign.INTOTO_TYPE) == statement
    assert cosign.unseal(other.public_key(), data, cosign.INTOTO_TYPE) is None
    assert cosign.unseal(key.public_key(), data, "application/other") is None
    env = json.loads(data)
    changed = dict(statement, predicate={"k": 2})
    env["payload"] = base64.b64encode(json.dumps(changed).encode()).decode()
    assert cosign.unseal(key.public_key(), json.dumps(env).encode(), cosign.INTOTO_TYPE) is None
    assert cosign.unseal(key.public_key(), b"not json", cosign.INTOTO_TYPE) is None


def test_simple_signing_payload_is_cosigns() -> None:
    doc = json.loads(cosign.simple_signing("h:5000/kiln/base", "sha256:" + "b" * 64, {}))
    assert doc["critical"] == {"identity": {"docker-reference": "h:5000/kiln/base"},
                               "image": {"docker-manifest-digest": "sha256:" + "b" * 64},
                               "type": "cosign container image signature"}


def test_immutable_tag_names_and_the_id12_check(tmp_path: Path) -> None:
    tag = immutable_tag("1.0", "2026-12-02T04:00:00Z", "sha256:" + "c" * 64)
    assert tag == "1.0-20261202-" + "c" * 12
    check_names("h", "r", tag, "sha256:" + "c" * 64)
    check_names("h", "r", "stable", "sha256:" + "d" * 64)  # a channel: checked by its chain
    with pytest.raises(TagMismatch, match="repointed"):
        check_names("h", "r", tag, "sha256:" + "d" * 64)
    config = load_config(tmp_path)
    assert not is_version_tag("revocations", config)
    assert not is_version_tag("sha256-" + "a" * 64 + ".att", config)


def test_first_built_is_recorded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "state"))
    first = first_built(tmp_path, "abc123")
    path = tmp_path / "state" / "built" / "abc123.json"
    data = json.loads(path.read_text())
    data["first_built"] = "2026-01-01T00:00:00Z"  # as if built long ago
    path.write_text(json.dumps(data))
    assert first_built(tmp_path, "abc123") == "2026-01-01T00:00:00Z" != first
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


def test_keygen_never_overwrites_kiln_pub_and_pins_the_key(tmp_path: Path) -> None:
    key = keygen(tmp_path / "signing.key", tmp_path / "kiln.pub")
    pin_key_id(tmp_path, key)
    assert load_config(tmp_path, environ={}).key_id == key
    os.unlink(tmp_path / "signing.key")
    with pytest.raises(KilnError, match="never overwrites it"):
        keygen(tmp_path / "signing.key", tmp_path / "kiln.pub", force=True)
    (tmp_path / "kiln.toml").write_text('[publish]\nnamespace = "team"\n')
    pin_key_id(tmp_path, "sha256:0123456789abcdef")
    config = load_config(tmp_path, environ={})
    assert (config.namespace, config.key_id) == ("team", "sha256:0123456789abcdef")
    pin_key_id(tmp_path, "sha256:fedcba9876543210")
    assert load_config(tmp_path, environ={}).key_id == "sha256:fedcba9876543210"


def test_cyclonedx_purls() -> None:
    bom = cyclonedx("kiln/base", "1.0", "sha256:" + "e" * 64,
                    ["libc6:amd64=2.36-9+deb12u4", "base-files=12.4"])
    assert bom["specVersion"] == "1.5"
    assert [c["purl"] for c in bom["components"]] == [
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64", "pkg:deb/debian/base-files@12.4"]
    assert purl("a", "1:2") == "pkg:deb/debian/a@1%3A2"
