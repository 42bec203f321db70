"""Signing keys: generation, sealing at rest, rotation and the published JWKS (RFC 7517)."""

from tessera.keys.keyring import KeyRing, SigningKey

__all__ = ["KeyRing", "SigningKey"]
