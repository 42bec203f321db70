"""Identifiers and random secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ulid import ULID


def new_id() -> str:
    """A ULID: sortable by creation time, as OpenFGA's clients expect store and model ids to be."""
    return str(ULID())


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret with ``nbytes`` of entropy."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    """Hash for high-entropy secrets (client secrets, tokens, codes).

    They carry at least 128 bits of entropy, so a slow password hash adds nothing but latency.
    """
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
