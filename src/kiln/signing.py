"""The project's ed25519 key pair (PEM: cosign reads the public key as is) and its key id.

What is signed, and how, is kiln.release.cosign's: cosign simple-signing payloads and DSSE
envelopes, so `cosign verify --key kiln.pub` checks kiln's work without kiln.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiln.errors import KilnError


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def keygen(private: Path, public: Path, *, force: bool = False) -> str:
    """Write a new key pair; the private key is 0600. Returns the key id."""
    if public.exists():
        # kiln.pub is committed: it is what every machine checks signatures with, so a new key
        # is a deliberate, reviewed change, never a side effect of keygen.
        raise KilnError(f"{public}: a public key already exists; kiln never overwrites it (to "
                        "change the project key, delete it deliberately -- `git rm` -- and "
                        "review the new one and its key_id)")
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
