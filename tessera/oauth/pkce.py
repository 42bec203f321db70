"""PKCE (RFC 7636), S256 only: OAuth 2.1 and RFC 9700 2.1.1 require it, and ``plain`` protects nothing
once the authorization request leaks.
"""

from __future__ import annotations

import base64
import hashlib
import re

from tessera.core.errors import InvalidGrant, InvalidRequest
from tessera.core.ids import constant_time_equal

METHODS_SUPPORTED = ("S256",)
# RFC 7636 4.1 / 4.2: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~". Every
# pattern here ends in \Z: $ would also accept a trailing newline.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}\Z")
# An S256 challenge is the base64url (no padding) of a SHA-256 digest: exactly 43 characters.
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}\Z")


def check_challenge(challenge: str | None, method: str | None) -> tuple[str, str]:
    """Validate an authorization request's challenge; errors are ``invalid_request`` (RFC 7636 4.4.1)."""
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE, RFC 7636)")
    if method is None:
        # RFC 7636 4.3 makes the default "plain", which Tessera does not accept.
        raise InvalidRequest("code_challenge_method must be S256")
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256; plain is not supported")
    if not _S256_CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge is not a base64url SHA-256 value")
    return challenge, method


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(verifier: str | None, challenge: str, method: str) -> None:
    """RFC 7636 4.6; a wrong or missing verifier is ``invalid_grant``."""
    if not verifier:
        raise InvalidGrant("code_verifier is required")
    if not _VERIFIER.match(verifier):
        raise InvalidGrant("code_verifier is malformed")
    if method != "S256" or not constant_time_equal(s256(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")
