"""Identifiers and random secrets."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # the ULID alphabet
# Every 10-bit value as its two letters: a ULID's 130 encoded bits (two zero bits, then the 128) are 13
# of them.
_LETTER_PAIRS = tuple(_CROCKFORD[i >> 5] + _CROCKFORD[i & 31] for i in range(1024))
_PAIR_SHIFTS = tuple(range(120, -1, -10))


def ulid_text(value: bytes) -> str:
    """The 26-character text of a 16-byte ULID, as ``str(ulid.ULID.from_bytes(value))`` writes it.

    python-ulid encodes one character at a time (about 8 us a ULID here); every audit row takes an id, so
    this encodes two characters per step (about 2 us). tests/core checks that the two agree.
    """
    number = int.from_bytes(value, "big")
    return "".join([_LETTER_PAIRS[(number >> shift) & 1023] for shift in _PAIR_SHIFTS])


def new_id() -> str:
    """A ULID (48-bit millisecond time, 80 random bits): sortable by creation time, as OpenFGA's clients
    expect store and model ids to be."""
    return ulid_text((time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))


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
