"""Identifiers and random secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
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


class _IdentifierRandomness:
    """The operating system's randomness (``os.urandom``), fetched 4 KiB at a time, for identifiers only.

    Ids and jtis must be unique and unguessable enough not to collide, not secret: every audit row and token
    takes one, and a system call per id costs more than the rest of the id (in sandboxed kernels, several
    microseconds). Secrets (client secrets, refresh tokens, codes, cookies) never come from here: they use
    ``new_secret``, one ``secrets`` call each. A forked child starts with an empty buffer, so parent and
    child never hand out the same bytes; a lock keeps threads from sharing a slice.
    """

    def __init__(self, chunk: int = 4096):
        self._chunk = chunk
        self._buffer = b""
        self._offset = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> bytes:
        with self._lock:
            start = self._offset
            if start + count > len(self._buffer):
                self._buffer, start = os.urandom(max(self._chunk, count)), 0
            self._offset = start + count
            return self._buffer[start : start + count]

    def forget(self) -> None:
        self._buffer, self._offset = b"", 0


_RANDOM_BITS = 80
_RANDOM_LIMIT = 1 << _RANDOM_BITS


class _MonotonicUlids:
    """ULIDs that increase within a process, also within one millisecond (the ULID specification's
    monotonic variant): lists paged by id (users, clients, stores, audit events) then come back in creation
    order even for rows created in the same millisecond, which 80 fresh random bits do not give.

    In the same millisecond as the previous id (or when the clock stepped back), the random part grows by a
    random step of 1 to 2^32 instead of 1, so the next id is still not guessable from the last. A forked
    child forgets the last id and starts from fresh randomness.
    """

    def __init__(self, randomness: _IdentifierRandomness):
        self._randomness = randomness
        self._last_ms = -1
        self._last_random = 0
        self._lock = threading.Lock()

    def new(self) -> str:
        ms = time.time_ns() // 1_000_000
        with self._lock:
            if ms <= self._last_ms:
                ms = self._last_ms
                step = 1 + int.from_bytes(self._randomness.take(4), "big")
                random_part = self._last_random + step
                if random_part >= _RANDOM_LIMIT:  # 2^80 exhausted in one millisecond: borrow the next one
                    ms += 1
                    random_part = int.from_bytes(self._randomness.take(10), "big")
            else:
                random_part = int.from_bytes(self._randomness.take(10), "big")
            self._last_ms, self._last_random = ms, random_part
        return ulid_text(((ms << _RANDOM_BITS) | random_part).to_bytes(16, "big"))

    def forget(self) -> None:
        self._last_ms, self._last_random = -1, 0


_identifier_randomness = _IdentifierRandomness()
_ulids = _MonotonicUlids(_identifier_randomness)
os.register_at_fork(after_in_child=_identifier_randomness.forget)
os.register_at_fork(after_in_child=_ulids.forget)


def new_id() -> str:
    """A ULID (48-bit millisecond time, 80 random bits): sortable by creation time, as OpenFGA's clients
    expect store and model ids to be, and increasing within a process (see _MonotonicUlids). An identifier,
    never a secret."""
    return _ulids.new()


def new_token_id() -> str:
    """A JWT ``jti`` (RFC 7519 4.1.7): 128 random bits, base64url, unique without being a secret."""
    return base64.urlsafe_b64encode(_identifier_randomness.take(16)).rstrip(b"=").decode("ascii")


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
