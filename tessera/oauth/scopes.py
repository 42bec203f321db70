"""Scopes: parsing (RFC 6749 3.3), the OpenID Connect scopes (OIDC Core 5.4), what each lets a client do."""

from __future__ import annotations

import re

from tessera.core.errors import InvalidScope

OPENID = "openid"
OFFLINE_ACCESS = "offline_access"

# OIDC Core 5.4 and 11: the standard scopes, with text for the consent screen.
OIDC_SCOPES: dict[str, str] = {
    "openid": "Sign you in and know who you are",
    "profile": "See your name and profile",
    "email": "See your email address",
    "address": "See your address",
    "phone": "See your phone number",
    "offline_access": "Stay connected when you are not using it (a refresh token)",
}

# OIDC Core 5.4: the claims each scope makes available at userinfo.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": (
        "name",
        "family_name",
        "given_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}


# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ): printable ASCII except the quote and backslash.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def parse(scope: str | None) -> list[str]:
    """Space-delimited, order kept, duplicates dropped."""
    if not scope:
        return []
    seen: dict[str, None] = {}
    for token in scope.split(" "):
        if not token:
            continue
        if not _SCOPE_TOKEN.fullmatch(token):
            raise InvalidScope(f"scope {token!r} is not a valid scope token")
        seen[token] = None
    return list(seen)


def join(scopes: list[str] | set[str] | frozenset[str]) -> str:
    return " ".join(scopes if isinstance(scopes, list) else sorted(scopes))
