"""Evidential integrity: a detached Ed25519 signature over the canonical read document.

Canonical form: the document without `signature`, each image's `jpeg_b64` removed (the image is
covered by its `sha256`, which stays), serialised as JSON with sorted keys, no insignificant
whitespace, UTF-8. Verification checks the signature and that each image's bytes match its hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.read_doc import Alert, Read, Signature

IMAGE_FIELDS = ("plate_patch", "overview")
Signed = TypeVar("Signed", Read, Alert)


class VerifyError(ValueError):
    """Why a read failed verification."""


def canonical(doc: dict[str, Any]) -> bytes:
    d = {k: v for k, v in doc.items() if k != "signature"}
    for f in IMAGE_FIELDS:
        if isinstance(d.get(f), dict):
            d[f] = {k: v for k, v in d[f].items() if k != "jpeg_b64"}
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_id(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(doc_model: Signed, key: Ed25519PrivateKey) -> Signed:
    """A read or an alert with its signature."""
    doc = json.loads(doc_model.model_copy(update={"signature": None}).to_json_bytes())
    sig = key.sign(canonical(doc))
    return doc_model.model_copy(update={"signature": Signature(key_id=key_id(key.public_key()),
                                                               value=base64.b64encode(sig).decode("ascii"))})


def verify(doc: dict[str, Any] | bytes | str, pub: Ed25519PublicKey, model: type[Read] | type[Alert] = Read):
    """Validate against the schema, check the signature and the image hashes; return the Read (or
    the Alert, with model=Alert)."""
    if isinstance(doc, bytes | str):
        try:
            doc = json.loads(doc)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise VerifyError(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise VerifyError("not a JSON object")
    try:
        read = model.model_validate(doc)
    except ValueError as e:
        raise VerifyError(f"not a valid {doc.get('schema', 'read')} document: {e}") from None
    if read.signature is None:
        raise VerifyError("unsigned")
    if read.signature.key_id != key_id(pub):
        raise VerifyError(f"signed with key {read.signature.key_id}, not {key_id(pub)}")
    try:
        pub.verify(base64.b64decode(read.signature.value, validate=True), canonical(doc))
    except (InvalidSignature, ValueError):
        raise VerifyError("signature does not match the document (tampered or wrong key)") from None
    for f in IMAGE_FIELDS:
        img = getattr(read, f)
        if img.jpeg_b64 == "":
            continue  # shed on the unit when its storage was full: the hash still names the image
        try:
            data = img.jpeg()
        except ValueError:
            raise VerifyError(f"{f}: image is not valid base64") from None
        if hashlib.sha256(data).hexdigest() != img.sha256 or len(data) != img.bytes:
            raise VerifyError(f"{f}: image bytes do not match their hash")
    return read


def new_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
