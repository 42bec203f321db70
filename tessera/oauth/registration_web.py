"""HTTP adapter for dynamic registration: ``POST /oidc/register`` (RFC 7591 section 3) and
``GET/PUT/DELETE /oidc/register/{client_id}`` (RFC 7592 section 2)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tessera.core.errors import InvalidRequest, OAuthError
from tessera.oauth.registration import MAX_REGISTRATION_BYTES, REGISTRATION_PATH, InvalidClientMetadata
from tessera.web.errors import NO_STORE
from tessera.web.pages import client_ip

if TYPE_CHECKING:
    from tessera.services import Services


def _json(body: dict[str, Any], status_code: int = 200) -> Response:
    # RFC 7591 3.2.1: the response carries credentials, so it must not be cached.
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status_code,
        headers={**NO_STORE, "content-type": "application/json"},
    )


def bearer_of(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 2.1), or None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidRequest("use the Bearer scheme", status_code=401)
    return value.strip()


async def json_body(request: Request) -> Any:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        # RFC 7591 3.1: the metadata is sent as a JSON document.
        raise InvalidClientMetadata("send the client metadata as application/json")
    body = await request.body()
    if len(body) > MAX_REGISTRATION_BYTES:
        raise InvalidClientMetadata(f"the client metadata is larger than {MAX_REGISTRATION_BYTES} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidClientMetadata("the request body is not JSON") from exc


def router(services: Services) -> APIRouter:
    routes = APIRouter(tags=["oauth"])

    def counted(exc: OAuthError) -> OAuthError:
        services.metrics.oauth_errors.labels(error=exc.code).inc()
        return exc

    async def register(request: Request) -> Response:
        registrar = services.oauth.registrar
        try:
            body = await registrar.register(
                await json_body(request),
                bearer=bearer_of(request),
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent"),
            )
        except OAuthError as exc:
            raise counted(exc) from None
        return _json(body, status_code=201)

    async def read(request: Request, client_id: str) -> Response:
        return _json(await services.oauth.registrar.read(client_id, bearer_of(request)))

    async def update(request: Request, client_id: str) -> Response:
        registrar = services.oauth.registrar
        bearer = bearer_of(request)
        # RFC 7592 2.2: authenticate before looking at the body, so a stranger learns nothing from errors.
        await registrar.read(client_id, bearer)
        body = await json_body(request)
        return _json(await registrar.update(client_id, bearer, body, ip=client_ip(request)))

    async def remove(request: Request, client_id: str) -> Response:
        await services.oauth.registrar.delete(client_id, bearer_of(request), ip=client_ip(request))
        return Response(status_code=204, headers=NO_STORE)

    routes.add_api_route(REGISTRATION_PATH, register, methods=["POST"], summary="RFC 7591 registration")
    routes.add_api_route(
        REGISTRATION_PATH + "/{client_id:path}", read, methods=["GET"], summary="RFC 7592 read"
    )
    routes.add_api_route(
        REGISTRATION_PATH + "/{client_id:path}", update, methods=["PUT"], summary="RFC 7592 update"
    )
    routes.add_api_route(
        REGISTRATION_PATH + "/{client_id:path}", remove, methods=["DELETE"], summary="RFC 7592 delete"
    )
    return routes
