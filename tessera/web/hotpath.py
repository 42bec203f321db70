"""A direct lane for the few routes that carry most of the traffic (the token endpoint).

FastAPI's stack (exception middleware, the async exit stack, matching the path against every route) costs
about as much CPU as issuing a client-credentials token itself (bench/oauth_token_path.py). Routes named in
``HOT_ROUTES`` are dispatched by exact method and path from one dictionary lookup, before that stack; every
other request goes through it unchanged. The body-size limit still wraps this lane, and error mapping is the
same as the app's (``tessera.web.errors``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tessera.core.errors import OAuthError, TesseraError
from tessera.web.errors import api_error_response, oauth_error_response

Endpoint = Callable[[Request], Awaitable[Response]]

HOT_ROUTES = frozenset({"token_endpoint"})


class HotPaths:
    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Endpoint]):
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            endpoint = self.routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except OAuthError as exc:
                    response = oauth_error_response(exc)
                except TesseraError as exc:
                    response = api_error_response(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, routers: list[APIRouter]) -> None:
    """Route the hot routes of these routers (included without a prefix) directly, by method and path."""
    routes: dict[tuple[str, str], Endpoint] = {}
    for route in (route for router in routers for route in router.routes):
        if isinstance(route, Route) and route.name in HOT_ROUTES:
            for method in route.methods or ():
                routes[(method, route.path)] = route.endpoint
    if routes:
        app.add_middleware(HotPaths, routes=routes)
