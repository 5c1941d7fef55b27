"""The project's ed25519 key pair, and signatures over what a digest names.

What is signed is a small canonical JSON document (the "payload"), never the image itself:
{"type": "dev.kiln.signature.v1", "repository": ..., "manifest": <image manifest digest>,
 "provenance": <digest of the provenance blob>} -- so one signature covers the image's bytes
(the manifest digest pins every layer and the config) and what kiln says about them. The
payload is stored verbatim beside the signature, and `openssl pkeyutl -verify -rawin` checks
it by hand (docs/publishing.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiln.errors import KilnError

SIGNATURE_TYPE = "dev.kiln.signature.v1"


class SignatureError(KilnError):
    """A signature is missing, malformed, made with another key, or does not match."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def keygen(private: Path, public: Path, *, force: bool = False) -> str:
    """Write a new key pair; the private key is 0600. Returns the key id."""
    if private.exists() and not force:
        raise KilnError(f"{private}: a signing key already exists (pass --force to replace it; "
                        "images signed with the old key then fail to verify)")
    key = Ed25519PrivateKey.generate()
    private.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.parent.mkdir(parents=True, exist_ok=True)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_id(key.public_key())


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KilnError(f"{path}: no signing key (run `invoke keygen`, or set "
                        "KILN_SIGNING_KEY / [publish] signing_key)") from None
    except ValueError as exc:
        raise KilnError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KilnError(f"{path}: not an ed25519 key (make one with `invoke keygen`)")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise KilnError(f"{path}: no public key to check signatures with (run `invoke keygen`, "
                        "commit kiln.pub, or set KILN_PUBLIC_KEY)") from None
    except ValueError as exc:
        raise KilnError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KilnError(f"{path}: not an ed25519 public key")
    return key


@dataclass(frozen=True)
class Signed:
    payload: dict[str, Any]
    key: str


def sign(key: Ed25519PrivateKey, payload: dict[str, Any]) -> bytes:
    """The signature document (JSON bytes) for a payload."""
    data = canonical_json({"type": SIGNATURE_TYPE, **payload})
    return canonical_json({
        "payload": base64.b64encode(data).decode(),
        "signature": base64.b64encode(key.sign(data)).decode(),
        "keyid": key_id(key.public_key()),
    })


def verify(key: Ed25519PublicKey, document: bytes) -> Signed:
    """Check a signature document; returns its payload or raises SignatureError (why)."""
    try:
        doc = json.loads(document)
        data = base64.b64decode(doc["payload"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        keyid = str(doc.get("keyid", ""))
    except (ValueError, KeyError, TypeError):
        raise SignatureError("the signature document is malformed") from None
    if keyid != key_id(key):
        raise SignatureError(f"signed with key {keyid or '(none)'}, but the public key here is "
                             f"{key_id(key)}")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError("the signature does not match its payload (tampered, or made "
                             "with another key)") from None
    payload = json.loads(data)
    if not isinstance(payload, dict) or payload.get("type") != SIGNATURE_TYPE:
        raise SignatureError("the signed payload is not a kiln signature")
    return Signed(payload, keyid)
