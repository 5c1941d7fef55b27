"""A hostile registry writer against kiln's trust model, on a real registry (Debian's
docker-registry, delete enabled, no auth: anyone on the machine can write it).

Each attack is something a writer can do with plain registry calls; each must be refused by
`pull` with the typed reason, and undoing the attack must make `pull` accept again (so the
refusal is about the attack, not about a broken fixture).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from released import build_verified, session

import kiln.release.lease as lease_mod
from kiln import records
from kiln.config import load_config
from kiln.embedded import LocalRegistry
from kiln.load import Project
from kiln.registry import OCI_MANIFEST, Registry
from kiln.release import cosign
from kiln.release.api import promote, publish, pull, revoke
from kiln.release.errors import (
    RevocationsMissing,
    Revoked,
    RolledBack,
    SignatureRefused,
    TagMismatch,
    Tampered,
)
from kiln.release.names import REVOCATIONS, sidecar
from kiln.release.oci import put_artifact
from kiln.release.revocations import LIST_TYPE
from kiln.signing import canonical_json, keygen

REPO = "kiln/small"


def files(text: str) -> dict[str, str]:
    return {"layers/hello/layer.yaml": f"run:\n  - echo {text} > /hello\n",
            "images/small.yaml": '{busybox}\nversion: "1.0"\nlayers: [hello]\n'}


@pytest.fixture
def project(make_project: Callable[..., Project], registry: LocalRegistry, docker_config: Path,
            monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("KILN_REGISTRY", str(registry.address))
    monkeypatch.setattr(lease_mod, "SETTLE", 0.2)
    p = make_project(files("one"))
    config = load_config(p.root)
    keygen(config.signing_key, config.public_key)
    return p




class Writer:
    """The attacker: plain registry calls, remembering what it changed so it can undo it."""

    def __init__(self, address: str) -> None:
        self.reg = Registry(address)

    def body(self, ref: str) -> bytes:
        found = self.reg.manifest(REPO, ref)
        assert found is not None, ref  # test fixture state, not remote state under test
        return found.body

    def put(self, tag: str, body: bytes) -> None:
        self.reg.put_manifest(REPO, tag, body, OCI_MANIFEST)

    def delete(self, tag: str) -> None:
        found = self.reg.resolve(REPO, tag)
        assert found is not None, tag
        self.reg.delete_manifest(REPO, found.digest)


def test_a_registry_writer_cannot_subvert_pull(project, kiln_ctx, engine, registry, monkeypatch):
    root = project.root
    build_verified(root, kiln_ctx, "one")
    a = publish(session(root, engine), "small")
    promote(session(root, engine), "small", "stable")
    w = Writer(str(registry.address))
    history_at_a = w.body("stable.history")
    build_verified(root, kiln_ctx, "two")
    b = publish(session(root, engine), "small")
    promote(session(root, engine), "small", "stable")
    assert pull(session(root, engine), "small:stable").digest == b.digest  # seen: move 4
    stable_b = w.body("stable")

    # 1. the channel moved back to an older, validly signed digest
    w.put("stable", w.body(a.digest))
    with pytest.raises(RolledBack, match="moved outside kiln"):
        pull(session(root, engine), "small:stable")
    w.put("stable", stable_b)

    # 2. an immutable tag repointed at another signed image
    a_tag = w.body(a.tag)
    w.put(a.tag, w.body(b.digest))
    with pytest.raises(TagMismatch, match="repointed"):
        pull(session(root, engine), f"small:{a.tag}")
    w.put(a.tag, a_tag)

    # 3. the history rewritten: the older (validly signed) chain put back, channel with it
    real_history = w.body("stable.history")
    w.put("stable.history", history_at_a)
    w.put("stable", w.body(a.digest))
    with pytest.raises(RolledBack, match="an older history was put back"):
        pull(session(root, engine), "small:stable")
    #    ... or one move cut out of the chain (the channel where the chain's end puts it)
    w.put("stable", stable_b)
    doc = json.loads(real_history)
    doc["layers"] = doc["layers"][:1] + doc["layers"][2:]
    w.put("stable.history", canonical_json(doc))
    with pytest.raises(Tampered, match="does not follow"):
        pull(session(root, engine), "small:stable")
    w.put("stable.history", real_history)
    assert pull(session(root, engine), "small:stable").digest == b.digest

    # 4. the signature index replaced by one holding another key's valid signature only
    sig = w.body(sidecar(b.digest, "sig"))
    w.delete(sidecar(b.digest, "sig"))
    cosign.sign(w.reg, REPO, b.digest, Ed25519PrivateKey.generate(), {})
    with pytest.raises(SignatureRefused, match="by the project key"):
        pull(session(root, engine), "small:stable")
    w.put(sidecar(b.digest, "sig"), sig)
    assert pull(session(root, engine), "small:stable").digest == b.digest

    # 5. revocations: revoke b (stable rolls back to a by a new, signed move)
    moves = revoke(session(root, engine), f"small@{b.digest}", "CVE-2026-0002")
    assert [(m.channel, m.digest) for m in moves] == [("stable", a.digest)]
    with pytest.raises(Revoked, match="CVE-2026-0002"):
        pull(session(root, engine), f"small@{b.digest}")
    assert pull(session(root, engine), "small:stable").digest == a.digest
    listed = w.body(REVOCATIONS)
    #    ... the list deleted: fail closed, for the digest and for every channel
    w.delete(REVOCATIONS)
    with pytest.raises(RevocationsMissing, match="deleted by a registry writer"):
        pull(session(root, engine), f"small@{b.digest}")
    with pytest.raises(RevocationsMissing):
        pull(session(root, engine), "small:stable")
    #    ... even on a machine that never saw the list: the signed channel move names its version
    (records.state_dir(root) / "trust").rename(root / "trust-moved-away")
    with pytest.raises(RevocationsMissing, match="revocation list was at version 1"):
        pull(session(root, engine), "small:stable")
    (root / "trust-moved-away").rename(records.state_dir(root) / "trust")
    #    ... an unsigned (forged) list put in its place, revoking nothing
    forged = canonical_json({"type": "dev.kiln.revocations.v1", "repository": REPO,
                             "version": 99, "entries": []})
    put_artifact(w.reg, REPO, REVOCATIONS, LIST_TYPE, [(LIST_TYPE, forged)], {})
    with pytest.raises(RevocationsMissing, match="not signed by the project key"):
        pull(session(root, engine), "small:stable")
    w.put(REVOCATIONS, listed)
    assert pull(session(root, engine), "small:stable").digest == a.digest
    #    ... and a revoked image is never published again
    with pytest.raises(Revoked, match="cannot be published again"):
        publish(session(root, engine), "small", tag=b.tag)

    # 6. a kiln.pub that is not the pinned project key (swapped in a checkout)
    monkeypatch.setenv("KILN_KEY_ID", "sha256:0000000000000000")
    with pytest.raises(SignatureRefused, match="pins key sha256:0000000000000000"):
        pull(session(root, engine), "small:stable")
