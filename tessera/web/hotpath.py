"""A direct lane for the few routes that carry most of the traffic (the token endpoint).

FastAPI's stack in front of a route (its telemetry hooks, error middleware, body-limit wrapper, the exception
middleware and the matching of the path against every route) costs about as much CPU as issuing a
client-credentials token itself (bench/oauth_token_path.py). The app class here answers the routes named in
``HOT_ROUTES`` from one dictionary lookup by exact method and path, before any of that; every other request
goes through the stack unchanged. A hot route is a raw ASGI app that does its own error mapping and body
limit (``tessera.oauth.web.TokenEndpoint``). The lane stays out of the way when the app is mounted under a
root path or HTTP telemetry is on (telemetry must see every request).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

HOT_ROUTES = frozenset({"token_endpoint"})


class TesseraApp(FastAPI):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.hot_routes: dict[tuple[str, str], ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot_routes and scope["type"] == "http" and not scope.get("root_path"):
            hot = self.hot_routes.get((scope["method"], scope["path"]))
            if hot is not None:
                scope["app"] = self
                await hot(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def install(app: TesseraApp, routers: list[APIRouter], *, enabled: bool = True) -> None:
    """Answer the hot routes of these routers (included without a prefix) directly, by method and path."""
    if not enabled or app.root_path:
        return
    for route in (route for router in routers for route in router.routes):
        if isinstance(route, Route) and route.name in HOT_ROUTES:
            for method in route.methods or ():
                app.hot_routes[(method, route.path)] = route.app
