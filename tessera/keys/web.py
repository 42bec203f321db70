"""``/.well-known/jwks.json``: the public keys that verify Tessera's tokens (RFC 7517 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from tessera.services import Services


def router(services: Services) -> APIRouter:
    routes = APIRouter(tags=["keys"])

    @routes.get("/.well-known/jwks.json", summary="JSON Web Key Set")
    async def jwks() -> JSONResponse:
        # Short public caching: a client that meets an unknown kid refetches anyway.
        return JSONResponse(
            await services.keys.jwks(),
            media_type="application/jwk-set+json",
            headers={"Cache-Control": "public, max-age=60"},
        )

    return routes
