"""HTTP adapter: the authorization server's routes (FastAPI), thin over the framework-free core."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tessera.core.errors import InvalidRequest, InvalidToken, OAuthError, TesseraError
from tessera.core.ratelimit import RateLimited
from tessera.oauth.authorize import (
    AuthorizationEndpoint,
    AuthorizationResponse,
    AuthorizePageError,
    NeedsConsent,
    NeedsLogin,
    response_mode_of,
)
from tessera.oauth.discovery import metadata
from tessera.oauth.introspection import introspect
from tessera.oauth.params import Params, parse_body, parse_form
from tessera.oauth.revocation import revoke
from tessera.oauth.scopes import OPENID
from tessera.oauth.tokens import user_claims
from tessera.web import limits
from tessera.web.csrf import CSRFError
from tessera.web.errors import NO_STORE, api_error_response, oauth_error_response
from tessera.web.pages import client_ip

if TYPE_CHECKING:
    from tessera.services import Services

CONSENT_PURPOSE = "oauth-consent"
_JSON_NO_STORE = {**NO_STORE, "content-type": "application/json"}


def _json(body: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Hand-rolled for the token endpoint's hot path: JSONResponse re-validates and re-encodes headers.
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status_code,
        headers={**_JSON_NO_STORE, **(headers or {})},
    )


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


_TOKEN_RESPONSE_HEADERS = [
    (b"content-type", b"application/json"),
    # RFC 6749 5.1: token responses must not be cached.
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]


class TokenEndpoint:
    """POST /oauth/token as a raw ASGI app: the one route every client-credentials call takes.

    It reads only the headers it needs from the ASGI scope, reads the body under the same size limit as
    ``tessera.web.limits``, and writes the response messages itself. Starlette's Request and Response objects
    (header parsing, cookie and media-type handling) cost more than the token's own logic; everything else,
    client authentication and the grants included, is the same ``OAuthServer.token`` as ever.
    """

    def __init__(self, services: Services, counted: Callable[[OAuthError], OAuthError]):
        self._server = services.oauth
        self._counted = counted
        self._max_body = services.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = authorization = user_agent = None
        declared_length: bytes | None = None
        for name, value in scope["headers"]:
            # The first of a repeated header counts, as with Starlette's Headers.get.
            if name == b"content-type":
                content_type = content_type or value.decode("latin-1")
            elif name == b"authorization":
                authorization = authorization or value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = user_agent or value.decode("latin-1")
            elif name == b"content-length":
                declared_length = value
        if declared_length is not None and not limits.declared_length_fits(declared_length, self._max_body):
            await limits.refuse(send, self._max_body)
            return
        try:
            body = await _read_body(receive, self._max_body)
        except _ClientGone:
            return
        if body is None:  # a chunked body that grew past the limit
            await limits.refuse(send, self._max_body)
            return
        client = scope.get("client")
        ip = client[0] if client else None
        try:
            try:
                response = await self._server.token(
                    parse_body(content_type, body),
                    authorization,
                    ip=ip,
                    user_agent=user_agent,
                    headers=Headers(scope=scope),
                )
            except OAuthError as exc:
                raise self._counted(exc) from None
        except OAuthError as exc:
            await oauth_error_response(exc)(scope, receive, send)
            return
        except TesseraError as exc:
            await api_error_response(exc)(scope, receive, send)
            return
        payload = orjson.dumps(response.as_json())
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_TOKEN_RESPONSE_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class _ClientGone(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past ``limit`` bytes; ``_ClientGone`` if the client disconnected."""
    message = await receive()
    if message["type"] != "http.request":
        raise _ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: one message
        return body if len(body) <= limit else None
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def router(services: Services) -> APIRouter:
    from tessera.identity.web import current_session, login_url

    server = services.oauth
    endpoint = AuthorizationEndpoint(server)
    routes = APIRouter(tags=["oauth"])

    async def params_of(request: Request) -> Params:
        return parse_body(request.headers.get("content-type"), await request.body())

    def counted(exc: OAuthError) -> OAuthError:
        services.metrics.oauth_errors.labels(error=exc.code).inc()
        return exc

    # --- discovery ---

    async def _metadata() -> JSONResponse:
        return JSONResponse(await metadata(server), headers={"Cache-Control": "public, max-age=300"})

    routes.add_api_route("/.well-known/openid-configuration", _metadata, methods=["GET"])
    routes.add_api_route("/.well-known/oauth-authorization-server", _metadata, methods=["GET"])

    # --- authorization endpoint ---

    async def authorize(request: Request) -> Response:
        if request.method == "POST":
            # OIDC Core 3.1.2.1: POST carries the same parameters form-encoded.
            try:
                params = parse_form(await request.body())
            except InvalidRequest as exc:
                return services.pages.error("Invalid request", exc.description, code=exc.code)
        else:
            params = Params(request.query_params.multi_items())
        return await run_authorization(request, params)

    def too_many(exc: RateLimited) -> Response:
        page = services.pages.error(
            "Too many requests",
            "Too many bad authorization requests came from your address. Try again later.",
            code=exc.code,
            status_code=429,
        )
        page.headers.update(exc.headers)
        return page

    async def run_authorization(request: Request, params: Params, decision: str | None = None) -> Response:
        # Unknown clients and unregistered redirect URIs are what a stranger probing /authorize gets: they
        # are counted per IP (only those failures: the sign-in flow itself never touches the limiter), and
        # past the limit the address gets a 429 page before any lookup until the window lets it in.
        failures = f"authorize:{client_ip(request) or 'unknown'}"
        try:
            server.refuse_if_blocked(failures)
            try:
                client, redirect_uri = await endpoint.client_and_redirect(params)
            except AuthorizePageError as exc:
                await server.count_failure(
                    failures,
                    ip=client_ip(request),
                    endpoint=f"{server.issuer}/authorize",
                    user_agent=request.headers.get("user-agent"),
                )
                return services.pages.error(exc.title, exc.message, code=exc.code)
        except RateLimited as exc:
            return too_many(exc)
        try:
            state = params.get("state")
        except InvalidRequest:
            state = None
        try:
            authorization = await endpoint.validate(params, client, redirect_uri)
            session = await current_session(request, services)
            if decision is not None:
                if session is None:
                    return _redirect(login_url(endpoint.return_to(params, drop_login_prompt=False)))
                if decision != "allow":
                    return respond(await endpoint.deny(authorization))
                answer = await endpoint.issue_code(
                    authorization,
                    session,
                    consented=True,
                    ip=client_ip(request),
                    user_agent=request.headers.get("user-agent"),
                )
                return respond(answer)
            next_step = await endpoint.decide(authorization, session)
            if isinstance(next_step, NeedsLogin):
                return_to = endpoint.return_to(params, drop_login_prompt=next_step.force)
                return _redirect(
                    login_url(return_to, force=next_step.force, login_hint=authorization.login_hint)
                )
            if isinstance(next_step, NeedsConsent):
                assert session is not None
                return await consent_page(request, authorization, session, next_step)
            answer = await endpoint.issue_code(
                authorization,
                session,
                consented=False,
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent"),
            )
            return respond(answer)
        except OAuthError as exc:
            return respond(
                endpoint.error_redirect(redirect_uri, counted(exc), state, response_mode_of(params))
            )

    def respond(answer: AuthorizationResponse) -> Response:
        if answer.mode == "form_post":
            # OAuth 2.0 Form Post Response Mode: the values are POSTed to the redirect URI by the browser.
            # A tiny same-origin script submits the form (inline scripts are blocked by the CSP); without
            # JavaScript the user presses Continue.
            return services.pages.render(
                "form_post.html", {"action": answer.redirect_uri, "values": sorted(answer.values.items())}
            )
        return _redirect(answer.location)

    async def form_post_script() -> Response:
        return Response(
            "document.getElementById('tessera-form-post').submit();\n",
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    async def consent_page(
        request: Request, authorization: Any, session: Any, step: NeedsConsent
    ) -> Response:
        user = await services.users.get(session.user_id)
        scratch = Response()
        token = services.csrf.issue(request, scratch, CONSENT_PURPOSE)
        page = services.pages.render(
            "consent.html",
            {
                "client_name": authorization.client.client_name,
                "user_email": getattr(user, "email", ""),
                "scopes": endpoint.describe_scopes(authorization),
                "new_scopes": step.new,
                "resources": [api.name for api in authorization.apis],
                "params": [(n, v) for n, v in authorization.params.items() if n != "prompt"],
                "csrf_token": token,
                "redirect_host": urlsplit(authorization.redirect_uri).netloc or authorization.redirect_uri,
            },
        )
        for cookie in scratch.headers.getlist("set-cookie"):
            page.headers.append("set-cookie", cookie)
        return page

    async def decide(request: Request) -> Response:
        try:
            form = parse_form(await request.body())
            services.csrf.verify(request, form.get("csrf_token"), CONSENT_PURPOSE)
            decision = form.get("decision")
        except CSRFError as exc:
            return services.pages.error("This form expired", exc.description, code=exc.code, status_code=403)
        except InvalidRequest as exc:
            return services.pages.error("Invalid request", exc.description, code=exc.code)
        if decision not in ("allow", "deny"):
            return services.pages.error("Invalid request", "Choose Allow or Deny.")
        params = Params((n, v) for n, v in form.items() if n not in ("csrf_token", "decision"))
        return await run_authorization(request, params, decision=decision)

    routes.add_api_route("/authorize", authorize, methods=["GET", "POST"], include_in_schema=False)
    routes.add_api_route("/authorize/decision", decide, methods=["POST"], include_in_schema=False)
    routes.add_api_route(
        "/authorize/form_post.js", form_post_script, methods=["GET"], include_in_schema=False
    )

    # --- token endpoint (RFC 6749 3.2) ---

    # The hot path: a raw ASGI app (tessera/web/hotpath.py sends it its requests ahead of FastAPI's stack),
    # also mounted as a plain route for when the lane is not in front (a root_path, HTTP telemetry on).
    routes.routes.insert(
        0,
        Route(
            "/oauth/token",
            TokenEndpoint(services, counted),
            methods=["POST"],
            name="token_endpoint",
        ),
    )

    # --- introspection (RFC 7662) and revocation (RFC 7009) ---

    async def introspection(request: Request) -> Response:
        params = await params_of(request)
        caller = await server.authenticate_client(
            params,
            request.headers.get("authorization"),
            endpoint=f"{server.issuer}/oauth/introspect",
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            require_confidential=True,
        )
        body = await introspect(server, caller.client, params.require("token"), params.get("token_type_hint"))
        return _json(body)

    async def revocation(request: Request) -> Response:
        params = await params_of(request)
        caller = await server.authenticate_client(
            params,
            request.headers.get("authorization"),
            endpoint=f"{server.issuer}/oauth/revoke",
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        if caller.method == "none":
            server.refuse_if_blocked(server.failure_key(client_ip(request), caller.client.client_id))
        revoked = await revoke(
            server,
            caller.client,
            params.require("token"),
            params.get("token_type_hint"),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        if not revoked and caller.method == "none":
            # Still 200 (RFC 7009 2.2), but counted: a public client needs only its client_id here, so a
            # stranger could otherwise make the server look guessed tokens up without limit.
            await server.count_failure(
                server.failure_key(client_ip(request), caller.client.client_id),
                ip=client_ip(request),
                endpoint=f"{server.issuer}/oauth/revoke",
                user_agent=request.headers.get("user-agent"),
            )
        return Response(status_code=200, headers=NO_STORE)

    routes.add_api_route("/oauth/introspect", introspection, methods=["POST"], summary="RFC 7662")
    routes.add_api_route("/oauth/revoke", revocation, methods=["POST"], summary="RFC 7009")

    # --- userinfo (OIDC Core 5.3) ---

    def bearer_error(exc: OAuthError) -> Response:
        # RFC 6750 3: the error goes in WWW-Authenticate.
        challenge = f'Bearer realm="tessera", error="{exc.code}"'
        if exc.description:
            challenge += f', error_description="{exc.description}"'
        return _json(
            {"error": exc.code, "error_description": exc.description},
            status_code=exc.status_code,
            headers={"WWW-Authenticate": challenge},
        )

    async def userinfo(request: Request) -> Response:
        header = request.headers.get("authorization")
        token = None
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return bearer_error(InvalidRequest("use the Bearer scheme"))
            token = value.strip()
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            try:
                form_token = parse_form(await request.body()).get("access_token")
            except InvalidRequest as exc:
                return bearer_error(exc)
            if form_token is not None:
                if token is not None:  # RFC 6750 2: one method only
                    return bearer_error(InvalidRequest("send the token one way only"))
                token = form_token
        if token is None:
            return _json({}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="tessera"'})
        try:
            claims, parties_active = await server.check_access_token(token)
            audience = claims.get("aud")
            audiences = [audience] if isinstance(audience, str) else list(audience or [])
            scopes = str(claims.get("scope", "")).split()
            if (
                server.tokens.userinfo_audience not in audiences
                or OPENID not in scopes
                or "gid" not in claims
            ):
                raise InvalidToken("this token is not for the userinfo endpoint")
            if not parties_active:
                raise InvalidToken("the user or the client is not active")
            # The claims to answer with; the user was just found active, but may go in between.
            user = await services.users.get(str(claims["sub"]))
            if user is None or user.disabled:
                raise InvalidToken("the user or the client is not active")
        except OAuthError as exc:
            return bearer_error(counted(exc))
        return _json({"sub": user.id, **user_claims(user, scopes)})

    routes.add_api_route(
        "/userinfo", userinfo, methods=["GET"], summary="OIDC Core 5.3", operation_id="userinfo"
    )
    routes.add_api_route(
        "/userinfo", userinfo, methods=["POST"], summary="OIDC Core 5.3", operation_id="userinfo_post"
    )

    # Dynamic registration (RFC 7591/7592) and RP-initiated logout: their own modules.
    from tessera.oauth import logout_web, registration_web

    routes.include_router(registration_web.router(services))
    routes.include_router(logout_web.router(services))

    return routes
