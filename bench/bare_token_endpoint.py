"""The least a Python token endpoint can do: the floor that Tessera is measured against.

One Starlette route on uvicorn (uvloop, httptools), one process. For each request it parses the form,
takes the client's credentials (RFC 6749 section 2.3.1: HTTP Basic or the form), checks the secret against
its SHA-256 hash in constant time, checks the grant type and the resource (RFC 8707), and signs an RFC 9068
access token (header ``typ: at+jwt``) with ES256 using PyJWT, the library the reference figures in peers.md
were measured with. Nothing is stored, nothing is looked up in a database: everything a real server does
beyond this is what the benchmark's ratio shows.

    uv run python bench/bare_token_endpoint.py --port 8102 --client-id c --client-secret s \\
        --resource https://api.bench.test
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import unquote

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# RFC 6749 section 5.1 and 5.2: token responses and errors must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(code: str, description: str, status: int = 400) -> Response:
    headers = dict(NO_STORE)
    if code == "invalid_client":
        # RFC 6749 section 5.2: a 401 for a failed Basic authentication carries the challenge.
        headers["WWW-Authenticate"] = 'Basic realm="token"'
    return JSONResponse({"error": code, "error_description": description}, status, headers=headers)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def build_app(*, issuer: str, client_id: str, client_secret: str, resource: str, scope: str) -> Starlette:
    secret_hash = hashlib.sha256(client_secret.encode()).digest()
    allowed_scopes = set(scope.split())
    private_key = ec.generate_private_key(ec.SECP256R1())
    kid = "bare-es256"
    public_jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    public_jwk.update(kid=kid, alg="ES256", use="sig")
    jwt_headers = {"typ": "at+jwt", "kid": kid}

    async def token(request: Request) -> Response:
        form = await request.form()
        authorization = request.headers.get("authorization")
        if authorization is not None:
            credentials = _basic_credentials(authorization)
            if credentials is None or "client_secret" in form:
                return _error("invalid_client", "malformed client authentication", 401)
            presented_id, presented_secret = credentials
        else:
            presented_id = str(form.get("client_id", ""))
            presented_secret = str(form.get("client_secret", ""))
        presented_hash = hashlib.sha256(presented_secret.encode()).digest()
        # Compare both parts so that a wrong id and a wrong secret take the same time.
        id_ok = hmac.compare_digest(presented_id.encode(), client_id.encode())
        secret_ok = hmac.compare_digest(presented_hash, secret_hash)
        if not (id_ok and secret_ok):
            return _error("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "client_credentials":
            return _error("unsupported_grant_type", "only client_credentials is served here")
        requested_resource = form.get("resource", resource)
        if requested_resource != resource:
            return _error("invalid_target", "unknown resource")  # RFC 8707 section 2
        requested_scopes = set(str(form.get("scope", scope)).split())
        if not requested_scopes <= allowed_scopes:
            return _error("invalid_scope", "scope not allowed")
        now = int(time.time())
        granted = " ".join(sorted(requested_scopes))
        # RFC 9068 section 2.2: the claims of a JWT access token.
        claims = {
            "iss": issuer,
            "sub": client_id,
            "aud": resource,
            "client_id": client_id,
            "iat": now,
            "exp": now + 3600,
            "jti": secrets.token_urlsafe(16),
            "scope": granted,
        }
        access_token = jwt.encode(claims, private_key, algorithm="ES256", headers=jwt_headers)
        body = {"access_token": access_token, "token_type": "Bearer", "expires_in": 3600, "scope": granted}
        return JSONResponse(body, headers=NO_STORE)

    async def jwks(_request: Request) -> Response:
        return JSONResponse({"keys": [public_jwk]})

    async def metadata(_request: Request) -> Response:
        return JSONResponse(
            {"issuer": issuer, "token_endpoint": f"{issuer}/oauth/token", "jwks_uri": f"{issuer}/jwks"}
        )

    return Starlette(
        routes=[
            Route("/oauth/token", token, methods=["POST"]),
            Route("/jwks", jwks),
            Route("/.well-known/oauth-authorization-server", metadata),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--resource", required=True)
    parser.add_argument("--scope", default="read")
    args = parser.parse_args()
    issuer = f"http://127.0.0.1:{args.port}"
    app = build_app(
        issuer=issuer,
        client_id=args.client_id,
        client_secret=args.client_secret,
        resource=args.resource,
        scope=args.scope,
    )
    # One process, the fastest event loop and HTTP parser uvicorn has, no access log: the same as Tessera's.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
