"""Signatures and attestations in cosign's format, so `cosign verify` checks kiln's work.

Signatures: the tag `sha256-<hex>.sig` holds an OCI image whose layers are simple-signing
payloads (`application/vnd.dev.cosign.simplesigning.v1+json`), each with its base64 signature
in the annotation `dev.cosignproject.cosign/signature`. Every signer APPENDS a layer: kiln
keeps the layers already there (another team's cosign signature), and cosign does the same.

Attestations: `sha256-<hex>.att`, layers of `application/vnd.dsse.envelope.v1+json`, each a
DSSE envelope around an in-toto Statement, annotated with its `predicateType`.

DSSE's pre-authentication encoding is ten lines (below), so it is written here rather than
pulled in with securesystemslib/in-toto: those bring their own key formats and signer classes
around the very `cryptography` ed25519 key kiln already holds, for no check we lack.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiln.registry import Registry, RegistryError
from kiln.release.errors import SignatureRefused, Unsigned
from kiln.release.names import sidecar
from kiln.release.oci import CONFIG_TYPE, Layer, layers_of, manifest_doc, put_blob
from kiln.signing import canonical_json, key_id

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_NOTE = "dev.cosignproject.cosign/signature"
SIGNATURE_KIND = "cosign container image signature"
DSSE_TYPE = "application/vnd.dsse.envelope.v1+json"
INTOTO_TYPE = "application/vnd.in-toto+json"
STATEMENT = "https://in-toto.io/Statement/v1"
APPEND_TRIES = 4  # racing signers: re-read and append again this many times


def simple_signing(reference: str, digest: str, optional: dict[str, str]) -> bytes:
    return canonical_json({
        "critical": {"identity": {"docker-reference": reference},
                     "image": {"docker-manifest-digest": digest}, "type": SIGNATURE_KIND},
        "optional": optional})


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def envelope(key: Ed25519PrivateKey, statement: dict[str, Any],
             payload_type: str = INTOTO_TYPE) -> bytes:
    """A DSSE envelope of `statement` (any JSON document), signed with `key`."""
    payload = canonical_json(statement)
    signature = key.sign(pae(payload_type, payload))
    return canonical_json({"payloadType": payload_type,
                           "payload": base64.b64encode(payload).decode(),
                           "signatures": [{"keyid": key_id(key.public_key()),
                                           "sig": base64.b64encode(signature).decode()}]})


def unseal(key: Ed25519PublicKey, data: bytes, payload_type: str) -> dict[str, Any] | None:
    """The document in a DSSE envelope of `payload_type` signed by `key`, or None."""
    try:
        env = json.loads(data)
        payload = base64.b64decode(env["payload"], validate=True)
        if env.get("payloadType") != payload_type:
            return None
        signed = pae(payload_type, payload)
        if not any(_ok(key, entry, signed) for entry in env.get("signatures") or []):
            return None
        doc = json.loads(payload)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        return None
    return doc if isinstance(doc, dict) else None


def statement(name: str, digest: str, predicate_type: str,
              predicate: dict[str, Any]) -> dict[str, Any]:
    return {"_type": STATEMENT,
            "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
            "predicateType": predicate_type, "predicate": predicate}


def _config(layers: list[Layer]) -> bytes:
    """The image config cosign writes for a signature image (so cosign can append to ours)."""
    return canonical_json({"architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z",
                           "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                           "rootfs": {"type": "layers",
                                      "diff_ids": [layer.digest for layer in layers]}})


def append(reg: Registry, repo: str, tag: str, media_type: str, data: bytes,
           annotations: dict[str, str]) -> None:
    """Add one layer to the signature/attestation image `tag`, keeping every layer there.
    A concurrent signer may put its own version between our read and our write: read back,
    and append again when our layer or one we saw went missing."""
    blob = put_blob(reg, repo, data)
    mine = Layer(media_type, blob.digest, blob.size, annotations)
    for _ in range(APPEND_TRIES):
        found = reg.manifest(repo, tag)
        layers = [layer for layer in (layers_of(found) if found else [])
                  if layer.digest != mine.digest]
        layers.append(mine)
        config = _config(layers)
        put_blob(reg, repo, config)
        reg.put_manifest(repo, tag, canonical_json(manifest_doc((CONFIG_TYPE, config), layers)),
                         "application/vnd.oci.image.manifest.v1+json")
        back = reg.manifest(repo, tag)
        if back is not None and {x.digest for x in layers} <= {x.digest for x in layers_of(back)}:
            return
    raise RegistryError(f"{reg.host}/{repo}:{tag} kept changing while kiln appended to it "
                        f"({APPEND_TRIES} tries); re-run")


# signatures ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signature:
    reference: str
    digest: str
    optional: dict[str, Any]
    key: str
    others: int  # valid-looking layers by other keys: shown, never trusted


def sign(reg: Registry, repo: str, digest: str, key: Ed25519PrivateKey,
         optional: dict[str, str]) -> None:
    """Append kiln's cosign signature of manifest `digest`, unless one by this key is there."""
    try:
        verify(reg, repo, digest, key.public_key())
        return
    except (Unsigned, SignatureRefused):
        pass
    payload = simple_signing(f"{reg.host}/{repo}", digest, optional)
    signature = base64.b64encode(key.sign(payload)).decode()
    append(reg, repo, sidecar(digest, "sig"), SIMPLESIGNING, payload, {SIGNATURE_NOTE: signature})


def verify(reg: Registry, repo: str, digest: str, key: Ed25519PublicKey) -> Signature:
    """A simple-signing layer by `key` whose payload names `digest` -- or why there is none."""
    where = f"{reg.host}/{repo}@{digest[:19]}"
    found = reg.manifest(repo, sidecar(digest, "sig"))
    if found is None:
        raise Unsigned(f"{where} is unsigned: it has no signature ({sidecar(digest, 'sig')}); "
                       "publish it with `kiln publish`")
    candidates = [layer for layer in layers_of(found)
                  if layer.media_type == SIMPLESIGNING and SIGNATURE_NOTE in layer.annotations]
    elsewhere = ""
    for layer in candidates:
        try:
            signature = base64.b64decode(layer.annotations[SIGNATURE_NOTE], validate=True)
            payload = reg.blob(repo, layer.digest, limit=1 << 20)
            key.verify(signature, payload)
            doc = json.loads(payload)
        except (binascii.Error, ValueError, InvalidSignature, RegistryError):
            continue
        critical = doc.get("critical") if isinstance(doc, dict) else None
        if not isinstance(critical, dict) or critical.get("type") != SIGNATURE_KIND:
            continue
        named = str((critical.get("image") or {}).get("docker-manifest-digest"))
        reference = str((critical.get("identity") or {}).get("docker-reference"))
        if named != digest or not (reference == repo or reference.endswith("/" + repo)):
            elsewhere = f"{reference}@{named[:19]}"
            continue
        optional = doc.get("optional") if isinstance(doc.get("optional"), dict) else {}
        return Signature(reference, digest, optional or {}, key_id(key), len(candidates) - 1)
    why = (f"; a signature by it names {elsewhere} (copied here: tampered)" if elsewhere else "")
    raise SignatureRefused(f"{where}: none of its {len(candidates)} signature(s) is a valid one "
                           f"by the project key {key_id(key)}{why}")


# attestations --------------------------------------------------------------------------------
def attest(reg: Registry, repo: str, digest: str, key: Ed25519PrivateKey,
           predicates: dict[str, dict[str, Any]]) -> list[str]:
    """Append a signed statement per predicate type that has no valid one by this key yet.
    Returns the predicate types written."""
    have = attestations(reg, repo, digest, key.public_key())
    written = []
    for predicate_type, predicate in predicates.items():
        if predicate_type in have:
            continue
        data = envelope(key, statement(f"{reg.host}/{repo}", digest, predicate_type, predicate))
        append(reg, repo, sidecar(digest, "att"), DSSE_TYPE, data,
               {SIGNATURE_NOTE: "", "predicateType": predicate_type})
        written.append(predicate_type)
    return written


def attestations(reg: Registry, repo: str, digest: str,
                 key: Ed25519PublicKey) -> dict[str, dict[str, Any]]:
    """predicateType -> predicate, of the statements about `digest` signed by `key`.
    Anything else in the attestation image (other signers', forged, damaged) is ignored."""
    found = reg.manifest(repo, sidecar(digest, "att"))
    out: dict[str, dict[str, Any]] = {}
    for layer in layers_of(found) if found else []:
        if layer.media_type != DSSE_TYPE:
            continue
        try:
            doc = unseal(key, reg.blob(repo, layer.digest), INTOTO_TYPE)
        except RegistryError:
            continue
        subjects = doc.get("subject") if doc is not None else None
        if doc is None or not isinstance(subjects, list) or not any(
                isinstance(x, dict) and (x.get("digest") or {}).get("sha256")
                == digest.removeprefix("sha256:") for x in subjects):
            continue
        if isinstance(doc.get("predicate"), dict):
            out.setdefault(str(doc.get("predicateType")), doc["predicate"])
    return out


def _ok(key: Ed25519PublicKey, entry: Any, signed: bytes) -> bool:
    try:
        key.verify(base64.b64decode(entry["sig"], validate=True), signed)
    except (InvalidSignature, binascii.Error, KeyError, TypeError, ValueError):
        return False
    return True
