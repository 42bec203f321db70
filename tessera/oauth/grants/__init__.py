"""The token endpoint's grants (RFC 6749 section 4 and 6), one handler per grant type, in a registry.

A handler declares its ``grant_type`` and the client authentication methods it accepts, and answers one
``TokenRequest`` with a ``TokenResponse``. Adding a grant (token exchange, CIBA, the device grant) is writing
a class and calling ``registry.register(handler)``; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

from tessera.core.errors import UnauthorizedClient, UnsupportedGrantType
from tessera.oauth.clients import Client
from tessera.oauth.params import Params
from tessera.oauth.tokens import TokenResponse


@dataclass(frozen=True)
class TokenRequest:
    params: Params
    client: Client
    auth_method: str
    ip: str | None = None
    user_agent: str | None = None
    headers: Mapping[str, str] | None = None


class GrantHandler(Protocol):
    grant_type: ClassVar[str]
    # None: any method the client is registered for; otherwise only these (e.g. confidential ones).
    client_auth_methods: ClassVar[frozenset[str] | None]

    async def handle(self, request: TokenRequest) -> TokenResponse: ...


class GrantRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, GrantHandler] = {}

    def register(self, handler: GrantHandler) -> None:
        self._handlers[handler.grant_type] = handler

    def grant_types(self) -> list[str]:
        return list(self._handlers)

    def handler_for(self, grant_type: str) -> GrantHandler:
        handler = self._handlers.get(grant_type)
        if handler is None:
            raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
        return handler

    @staticmethod
    def check_client(handler: GrantHandler, client: Client, auth_method: str) -> None:
        """RFC 6749 5.2 ``unauthorized_client``: the client may not use this grant, or not this way."""
        if handler.grant_type not in client.grant_types:
            raise UnauthorizedClient(f"this client may not use the {handler.grant_type} grant")
        if handler.client_auth_methods is not None and auth_method not in handler.client_auth_methods:
            raise UnauthorizedClient(f"the {handler.grant_type} grant needs a confidential client")
