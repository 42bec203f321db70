"""Encryption at rest under the master key.

Private signing keys, upstream tokens and other secrets that must be read back are sealed with AES-256-GCM.
The table and column a value belongs to are bound in as associated data, so a sealed value copied into
another row or column does not open.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tessera.core.errors import TesseraError

_VERSION = b"\x01"


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def generate_master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


class Sealer:
    def __init__(self, master_key: str):
        key = _b64decode(master_key.strip())
        if len(key) != 32:
            raise TesseraError("the master key must be 32 bytes, base64url encoded", code="bad_master_key")
        self._key = key
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path, *, create: bool = False) -> Sealer:
        if not path.exists():
            if not create:
                raise TesseraError(f"master key file {path} does not exist", code="bad_master_key")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_master_key() + "\n")
        return cls(path.read_text())

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (CSRF MACs, keyed hashes), derived with HKDF-SHA256."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(self._key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        if not sealed.startswith(_VERSION):
            raise TesseraError("unknown sealed format", code="bad_sealed_value")
        nonce, body = sealed[1:13], sealed[13:]
        return self._aead.decrypt(nonce, body, context.encode())
