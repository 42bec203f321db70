"""PKCE values and registered scopes end where the text ends: ``$`` in a Python pattern also accepts a final
newline, which RFC 7636 4.1-4.2 and RFC 6749 3.3's character sets do not contain."""

from __future__ import annotations

import pytest

from tessera.core.errors import InvalidGrant, InvalidRequest
from tessera.oauth import pkce
from tessera.oauth.registration import InvalidClientMetadata, validate_metadata

VERIFIER = "v" * 43


def test_a_challenge_with_a_trailing_newline_is_refused() -> None:
    challenge = pkce.s256(VERIFIER)
    assert pkce.check_challenge(challenge, "S256") == (challenge, "S256")
    with pytest.raises(InvalidRequest):
        pkce.check_challenge(challenge + "\n", "S256")


def test_a_verifier_with_a_trailing_newline_is_malformed() -> None:
    challenge = pkce.s256(VERIFIER)
    pkce.verify(VERIFIER, challenge, "S256")
    with pytest.raises(InvalidGrant, match="malformed"):
        pkce.verify(VERIFIER + "\n", challenge, "S256")


def test_a_registered_scope_with_a_trailing_newline_is_refused() -> None:
    metadata = {"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"}
    assert validate_metadata({**metadata, "scope": "openid read"}) is not None
    with pytest.raises(InvalidClientMetadata, match=r"6749 3\.3"):
        validate_metadata({**metadata, "scope": "openid read\n"})
