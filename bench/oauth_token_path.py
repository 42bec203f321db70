"""Where the client-credentials token request spends its CPU, in process (no sockets, no load generator).

    uv run python bench/oauth_token_path.py [--requests 5000]

Prints CPU microseconds per request for three layers, each including the one below:

- ``sign``: one ES256 RFC 9068 access token (KeyRing's signing path);
- ``core``: ``OAuthServer.token``: parse the form, authenticate the client (cached, SHA-256), run the grant,
  sign, queue the audit event;
- ``asgi``: the whole app (middleware, routing, the token route) called as ASGI, without uvicorn.

bench/token_endpoint.py measures the server over real sockets against oidc-provider and a bare endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import tempfile
import time
from pathlib import Path
from typing import Any

from tessera.keys.keyring import sign_compact
from tessera.oauth.params import parse_form
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app

API = "https://api.bench.test"
BODY = b"grant_type=client_credentials&resource=https%3A%2F%2Fapi.bench.test"


async def measure(requests: int, folder: Path) -> dict[str, float]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        data_dir=folder,
        issuer="http://127.0.0.1:8000",
    )
    services = Services(settings)
    await upgrade(services.db)
    try:
        store = services.oauth.api_store
        async with services.db.transaction() as conn:
            await store.insert(services.oauth.build_api(API, scopes=["read"]), conn=conn)
        made = services.oauth.build_client(client_name="bench", grant_types=["client_credentials"])
        async with services.db.transaction() as conn:
            await services.oauth.client_store.insert(made.client, conn=conn)
        basic = "Basic " + base64.b64encode(f"{made.client.client_id}:{made.client_secret}".encode()).decode()
        figures: dict[str, float] = {}

        key = await services.keys.active()
        claims = {
            "iss": settings.issuer,
            "sub": "c",
            "aud": API,
            "client_id": "c",
            "iat": 1,
            "exp": 2,
            "jti": "j",
            "scope": "read",
        }
        start = time.process_time()
        for _ in range(requests):
            sign_compact(key, claims, "at+jwt")
        figures["sign"] = (time.process_time() - start) / requests * 1e6

        for _ in range(100):
            await services.oauth.token(parse_form(BODY), basic)
        start = time.process_time()
        for _ in range(requests):
            await services.oauth.token(parse_form(BODY), basic)
        figures["core"] = (time.process_time() - start) / requests * 1e6

        app = create_app(services=services)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/oauth/token",
            "raw_path": b"/oauth/token",
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"authorization", basic.encode()),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        for _ in range(100):
            await app({**scope, "state": {}}, receive, send)
        start = time.process_time()
        for _ in range(requests):
            await app({**scope, "state": {}}, receive, send)
        figures["asgi"] = (time.process_time() - start) / requests * 1e6
        if set(statuses) != {200}:
            raise SystemExit(f"token requests failed: {sorted(set(statuses))}")
        return figures
    finally:
        await services.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        figures = asyncio.run(measure(max(100, min(args.requests, 100_000)), Path(folder)))
    for layer in ("sign", "core", "asgi"):
        print(f"{layer:5} {figures[layer]:7.0f} us CPU per request")


if __name__ == "__main__":
    main()
