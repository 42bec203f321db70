"""Authorization server metadata: RFC 8414 and OpenID Connect Discovery 1.0 section 3 (one document,
served at both well-known paths)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tessera.oauth.authorize import RESPONSE_MODES
from tessera.oauth.client_auth import ASSERTION_ALGS
from tessera.oauth.clients import AUTH_METHODS
from tessera.oauth.logout import logout_metadata
from tessera.oauth.pkce import METHODS_SUPPORTED
from tessera.oauth.registration import registration_metadata
from tessera.oauth.scopes import OIDC_SCOPES

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer

CLAIMS_SUPPORTED = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    # No "acr": sessions record no authentication context class, so no token carries one, and acr_values
    # (a voluntary request, OIDC Core 5.5.1.1) is accepted and ignored. Listing it would promise a claim.
    "amr",
    "sid",
    "at_hash",
    "name",
    "email",
    "email_verified",
    "updated_at",
]


async def metadata(server: OAuthServer) -> dict[str, Any]:
    issuer = server.issuer
    key = await server.services.keys.active()
    apis = await server.apis.by_identifier()
    api_scopes = sorted({scope for api in apis.values() for scope in api.scopes})
    signing_algs = sorted({key.alg, *(k.alg for k in await server.services.keys.published())})
    secret_methods = [m for m in AUTH_METHODS if m != "none"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "scopes_supported": [*OIDC_SCOPES, *api_scopes],
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": server.grants.grant_types(),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algs,
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "code_challenge_methods_supported": list(METHODS_SUPPORTED),
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 3
        "client_id_metadata_document_supported": server.settings.client_id_metadata_document_supported,
        "access_token_signing_alg_values_supported": signing_algs,  # RFC 9068 access tokens
        **registration_metadata(server),  # registration_endpoint (RFC 8414 2), unless registration is off
        **logout_metadata(server),  # end_session_endpoint, backchannel_logout_* (tessera/oauth/logout.py)
    }
