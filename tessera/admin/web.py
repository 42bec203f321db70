"""HTTP adapter for the management API (/api/v1), documented in /openapi.json.

Authentication is RFC 6750 bearer tokens issued by this server for the API ``<issuer>/api/v1``; each route
names the scope it needs. Errors use the API error shape ``{"code", "message"}``; 401 and 403 also carry the
RFC 6750 section 3 ``WWW-Authenticate`` header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from tessera.admin import operations
from tessera.core.errors import InsufficientScope, InvalidToken, NotFound, TesseraError

if TYPE_CHECKING:
    from tessera.services import Services


class ApiAuthError(TesseraError):
    """401/403 from the management API, with the RFC 6750 challenge."""

    def __init__(self, status_code: int, code: str, message: str, challenge: str):
        super().__init__(message, code=code, status_code=status_code)
        self.challenge = challenge


# --- request and response bodies (they document the API in /openapi.json) ---


class UserOut(BaseModel):
    id: str
    email: str
    email_verified: bool
    name: str | None
    created_at: datetime
    disabled: bool


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str | None = Field(None, min_length=1, max_length=1024)
    name: str | None = Field(None, max_length=256)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool | None = None
    email_verified: bool | None = None
    password: str | None = Field(None, min_length=1, max_length=1024)


class UserPage(BaseModel):
    users: list[UserOut]
    next: str | None = Field(None, description="Pass as `after` to get the next page.")


class SessionOut(BaseModel):
    id: str
    user_id: str
    auth_time: datetime
    amr: list[str]
    created_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None


class ClientOut(BaseModel):
    client_id: str
    client_name: str
    is_public: bool
    token_endpoint_auth_method: str
    redirect_uris: list[str]
    grant_types: list[str]
    scope: str | None
    first_party: bool
    source: str
    created_at: datetime | None


class ClientCreated(ClientOut):
    client_secret: str | None = Field(None, description="Shown once; only its SHA-256 is stored.")


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_name: str = Field(min_length=1, max_length=512)
    redirect_uris: list[str] = Field(default_factory=list, max_length=50)
    grant_types: list[str] | None = Field(None, max_length=10)
    public: bool = False
    scope: str | None = Field(None, max_length=4096)
    token_endpoint_auth_method: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = Field(None, max_length=2048)
    first_party: bool = False


class ClientPage(BaseModel):
    clients: list[ClientOut]
    next: str | None = None


class KeyOut(BaseModel):
    kid: str
    alg: str
    created_at: datetime
    retired_at: datetime | None
    status: str


class AuditEventOut(BaseModel):
    id: str
    occurred_at: datetime
    type: str
    user_id: str | None
    client_id: str | None
    session_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


def _user(user: Any) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        email_verified=user.email_verified,
        name=user.name,
        created_at=user.created_at,
        disabled=user.disabled,
    )


def _client(client: Any) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "client_name": client.client_name,
        "is_public": client.is_public,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "scope": client.scope,
        "first_party": client.first_party,
        "source": client.source,
        "created_at": client.created_at,
    }


def _key(key: Any) -> KeyOut:
    return KeyOut(
        kid=key.kid,
        alg=key.alg,
        created_at=key.created_at,
        retired_at=key.retired_at,
        status="active" if key.retired_at is None else "retired",
    )


def router(services: Services) -> APIRouter:
    audience = operations.management_api_identifier(services.settings.issuer)

    def require(scope: str) -> Callable[[Request], Awaitable[dict[str, Any]]]:
        async def check(request: Request) -> dict[str, Any]:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiAuthError(
                    401, "unauthorized", "a bearer token is required", 'Bearer realm="tessera"'
                )
            try:
                claims = await services.oauth.verify_live_access_token(token.strip())
            except InvalidToken as exc:
                raise ApiAuthError(
                    401,
                    "invalid_token",
                    exc.description or "the access token is not valid",
                    'Bearer realm="tessera", error="invalid_token"',
                ) from exc
            audiences = claims.get("aud")
            audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
            if audience not in audiences:
                raise ApiAuthError(
                    401,
                    "invalid_token",
                    f"the access token is not for {audience}",
                    'Bearer realm="tessera", error="invalid_token"',
                )
            if scope not in str(claims.get("scope", "")).split():
                raise ApiAuthError(
                    403,
                    InsufficientScope.code,
                    f"this call needs the scope {scope}",
                    f'Bearer realm="tessera", error="insufficient_scope", scope="{scope}"',
                )
            return claims

        return check

    routes = APIRouter(prefix="/api/v1", tags=["management"])

    # --- users ---

    @routes.get("/users", response_model=UserPage, dependencies=[Depends(require("users:read"))])
    async def list_users(
        limit: int = Query(50, ge=1, le=500), after: str | None = Query(None, max_length=64)
    ) -> UserPage:
        users = await services.users.page(limit=limit + 1, after=after)
        more = len(users) > limit
        users = users[:limit]
        return UserPage(users=[_user(u) for u in users], next=users[-1].id if more and users else None)

    @routes.post(
        "/users", status_code=201, response_model=UserOut, dependencies=[Depends(require("users:write"))]
    )
    async def create_user(body: UserIn) -> UserOut:
        return _user(await services.users.create(body.email, body.password, body.name))

    async def _existing_user(user_id: str) -> Any:
        user = await services.users.get(user_id) if len(user_id) <= 64 else None
        if user is None:
            raise NotFound(f"no user {user_id}")
        return user

    @routes.get("/users/{user_id}", response_model=UserOut, dependencies=[Depends(require("users:read"))])
    async def get_user(user_id: str) -> UserOut:
        return _user(await _existing_user(user_id))

    @routes.patch("/users/{user_id}", response_model=UserOut, dependencies=[Depends(require("users:write"))])
    async def patch_user(user_id: str, body: UserPatch) -> UserOut:
        await _existing_user(user_id)
        if body.password is not None:
            await services.users.set_password(user_id, body.password)
        if body.email_verified is not None:
            await services.users.set_email_verified(user_id, body.email_verified)
        if body.disabled is not None:
            await services.users.set_disabled(user_id, body.disabled)
            if body.disabled:
                # A disabled user must not keep signed-in sessions.
                await operations.end_user_sessions(services, user_id, "user_disabled", source="api")
        return _user(await _existing_user(user_id))

    # --- sessions ---

    @routes.get(
        "/users/{user_id}/sessions",
        response_model=list[SessionOut],
        dependencies=[Depends(require("sessions:read"))],
    )
    async def user_sessions(user_id: str) -> list[SessionOut]:
        await _existing_user(user_id)
        return [SessionOut(**vars(s)) for s in await services.sessions.list_for_user(user_id)]

    @routes.delete(
        "/users/{user_id}/sessions", status_code=204, dependencies=[Depends(require("sessions:write"))]
    )
    async def end_user_sessions(user_id: str) -> Response:
        await _existing_user(user_id)
        await operations.end_user_sessions(services, user_id, "ended_by_admin", source="api")
        return Response(status_code=204)

    @routes.delete(
        "/sessions/{session_id}", status_code=204, dependencies=[Depends(require("sessions:write"))]
    )
    async def end_session(session_id: str) -> Response:
        if len(session_id) > 64 or not await operations.end_session(
            services, session_id, "ended_by_admin", source="api"
        ):
            raise NotFound(f"no active session {session_id}")
        return Response(status_code=204)

    # --- clients ---

    @routes.get("/clients", response_model=ClientPage, dependencies=[Depends(require("clients:read"))])
    async def list_clients(
        limit: int = Query(50, ge=1, le=500), after: str | None = Query(None, max_length=2048)
    ) -> ClientPage:
        clients = await services.oauth.client_store.list(limit=limit + 1, after=after)
        more = len(clients) > limit
        clients = clients[:limit]
        return ClientPage(
            clients=[ClientOut(**_client(c)) for c in clients],
            next=clients[-1].client_id if more and clients else None,
        )

    @routes.post(
        "/clients",
        status_code=201,
        response_model=ClientCreated,
        dependencies=[Depends(require("clients:write"))],
    )
    async def create_client(body: ClientIn) -> ClientCreated:
        made = await operations.create_client(
            services,
            source="api",
            client_name=body.client_name,
            redirect_uris=body.redirect_uris,
            grant_types=body.grant_types,
            is_public=body.public,
            scope=body.scope,
            token_endpoint_auth_method=body.token_endpoint_auth_method,
            jwks=body.jwks,
            jwks_uri=body.jwks_uri,
            first_party=body.first_party,
        )
        return ClientCreated(**_client(made.client), client_secret=made.client_secret)

    @routes.get(
        "/clients/{client_id}", response_model=ClientOut, dependencies=[Depends(require("clients:read"))]
    )
    async def get_client(client_id: str) -> ClientOut:
        client = await services.oauth.client_store.get(client_id)
        if client is None:
            raise NotFound(f"no client {client_id}")
        return ClientOut(**_client(client))

    @routes.delete("/clients/{client_id}", status_code=204, dependencies=[Depends(require("clients:write"))])
    async def delete_client(client_id: str) -> Response:
        if not await operations.delete_client(services, client_id):
            raise NotFound(f"no client {client_id}")
        return Response(status_code=204)

    # --- keys ---

    @routes.get("/keys", response_model=list[KeyOut], dependencies=[Depends(require("keys:read"))])
    async def list_keys() -> list[KeyOut]:
        return [_key(k) for k in await services.keys.published()]

    @routes.post(
        "/keys/rotate", status_code=201, response_model=KeyOut, dependencies=[Depends(require("keys:write"))]
    )
    async def rotate_key() -> KeyOut:
        return _key(await operations.rotate_key(services, source="api"))

    # --- audit log ---

    @routes.get("/audit", response_model=list[AuditEventOut], dependencies=[Depends(require("audit:read"))])
    async def audit(
        user_id: str | None = Query(None, max_length=64),
        type: str | None = Query(None, max_length=64),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[AuditEventOut]:
        events = await services.audit.query(user_id=user_id, type=type, limit=limit)
        return [AuditEventOut(**vars(e)) for e in events]

    return routes


def install_error_handler(app: Any) -> None:
    @app.exception_handler(ApiAuthError)
    async def _auth_error(_request: Request, exc: ApiAuthError) -> JSONResponse:
        return JSONResponse(
            {"code": exc.code, "message": exc.description},
            status_code=exc.status_code,
            headers={"WWW-Authenticate": exc.challenge},
        )
