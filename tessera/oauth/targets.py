"""Which APIs a request is for (RFC 8707 ``resource``, Auth0's ``audience``) and which scopes it may get."""

from __future__ import annotations

from tessera.core.errors import InvalidScope, InvalidTarget
from tessera.oauth.clients import Client
from tessera.oauth.params import Params
from tessera.oauth.resources import Api, ApiRegistry
from tessera.oauth.scopes import OIDC_SCOPES


async def requested_apis(params: Params, apis: ApiRegistry) -> list[Api]:
    """Every ``resource`` and ``audience`` must be a registered API, else ``invalid_target`` (RFC 8707 2)."""
    identifiers = list(dict.fromkeys(params.getlist("resource") + params.getlist("audience")))
    if len(identifiers) > 10:
        raise InvalidTarget("too many resources")
    registered = await apis.by_identifier()
    found = []
    for identifier in identifiers:
        api = registered.get(identifier)
        if api is None:
            raise InvalidTarget(f"{identifier} is not an API of this server")
        found.append(api)
    return found


def check_scopes(
    requested: list[str], targets: list[Api], client: Client, *, user_present: bool
) -> list[str]:
    """Each scope must be an OpenID scope (only when a user is present) or defined by a requested API, and
    allowed for the client; otherwise ``invalid_scope`` (RFC 6749 5.2)."""
    allowed_for_client = client.allowed_scopes
    api_scopes = {scope for api in targets for scope in api.scopes}
    for scope in requested:
        if scope in OIDC_SCOPES:
            if not user_present:
                raise InvalidScope(f"scope {scope!r} needs a user")
        elif scope not in api_scopes:
            raise InvalidScope(f"scope {scope!r} is not defined by the requested API")
        if allowed_for_client is not None and scope not in allowed_for_client:
            raise InvalidScope(f"this client may not ask for scope {scope!r}")
    return requested


def default_api_scopes(targets: list[Api], client: Client) -> list[str]:
    """No scope asked for: every scope of the APIs the client may have (as Auth0 client grants do)."""
    allowed = client.allowed_scopes
    scopes = [s for api in targets for s in api.scopes if allowed is None or s in allowed]
    return list(dict.fromkeys(scopes))
