"""The token endpoint's own lane (tessera.oauth.web.TokenEndpoint) over a real socket: it answers ahead of
FastAPI's stack, so it must keep that stack's promises itself: the body limit in both framings, the OAuth
error shapes, 405 for other methods, and nothing half done."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tessera.services import Services
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app
from tests.oauth.support import make_settings
from tests.support.live import serve

API = "https://api.lane.test"
LIMIT = 2048


def seed(tmp_path: Path) -> tuple[str, str]:
    async def run() -> tuple[str, str]:
        services = Services(make_settings(tmp_path, max_body_bytes=LIMIT))
        try:
            await upgrade(services.db)
            oauth = services.oauth
            async with services.db.transaction() as conn:
                await oauth.api_store.insert(oauth.build_api(API, scopes={"read": "Read"}), conn=conn)
                made = oauth.build_client(
                    client_name="lane", grant_types=["client_credentials"], scope="read"
                )
                await oauth.client_store.insert(made.client, conn=conn)
            assert made.client_secret is not None
            return made.client.client_id, made.client_secret
        finally:
            await services.aclose()

    return asyncio.run(run())


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    client_id, secret = seed(tmp_path)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    with serve(create_app(make_settings(tmp_path, max_body_bytes=LIMIT))) as server:
        yield server.url, {"authorization": f"Basic {basic}"}


def chunks(body: bytes, size: int = 100) -> Iterator[bytes]:
    # A generator makes httpx send Transfer-Encoding: chunked, with no Content-Length.
    for start in range(0, len(body), size):
        yield body[start : start + size]


FORM = {"content-type": "application/x-www-form-urlencoded"}
TOKEN_BODY = f"grant_type=client_credentials&resource={API}&scope=read".encode()


def test_token_in_both_framings_and_limits_in_both(live: tuple[str, dict[str, str]]) -> None:
    url, auth = live
    with httpx.Client(base_url=url) as http:
        plain = http.post("/oauth/token", content=TOKEN_BODY, headers={**auth, **FORM})
        assert plain.status_code == 200, plain.text
        assert plain.headers["cache-control"] == "no-store"
        assert plain.headers["content-type"] == "application/json"
        assert plain.json()["token_type"] == "Bearer" and plain.json()["scope"] == "read"
        streamed = http.post("/oauth/token", content=chunks(TOKEN_BODY, 7), headers={**auth, **FORM})
        assert streamed.status_code == 200, streamed.text
        assert streamed.json()["access_token"] != plain.json()["access_token"]

        padded = TOKEN_BODY + b"&x=" + b"a" * LIMIT
        too_long = http.post("/oauth/token", content=padded, headers={**auth, **FORM})
        assert too_long.status_code == 413 and too_long.json()["error"] == "invalid_request"
        too_long_streamed = http.post("/oauth/token", content=chunks(padded), headers={**auth, **FORM})
        assert too_long_streamed.status_code == 413


def test_errors_keep_their_oauth_shape(live: tuple[str, dict[str, str]]) -> None:
    url, auth = live
    with httpx.Client(base_url=url) as http:
        wrong = http.post(
            "/oauth/token", content=TOKEN_BODY, headers={**FORM, "authorization": "Basic bm86cGU="}
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        assert wrong.headers["www-authenticate"].startswith("Basic")
        assert wrong.headers["cache-control"] == "no-store"
        no_api = http.post("/oauth/token", content=b"grant_type=client_credentials", headers={**auth, **FORM})
        assert no_api.status_code == 400 and no_api.json()["error"] == "invalid_request"
        not_form = http.post(
            "/oauth/token", content=TOKEN_BODY, headers={**auth, "content-type": "text/plain"}
        )
        assert not_form.status_code == 400 and not_form.json()["error"] == "invalid_request"
        get = http.get("/oauth/token")
        assert get.status_code == 405


def test_malformed_content_length_is_refused(live: tuple[str, dict[str, str]]) -> None:
    url, _auth = live
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.split(b"\r\n", 1)[0].split()[1] in (b"400", b"413")


def test_the_lane_steps_aside_for_http_telemetry(tmp_path: Path) -> None:
    client_id, secret = seed(tmp_path)
    app = create_app(make_settings(tmp_path, max_body_bytes=LIMIT))
    assert app.hot_routes  # on by default
    mounted = create_app(make_settings(tmp_path, max_body_bytes=LIMIT, http_telemetry=True))
    assert not mounted.hot_routes  # telemetry must see every request
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    with serve(mounted) as server, httpx.Client(base_url=server.url) as http:
        answer = http.post(
            "/oauth/token", content=TOKEN_BODY, headers={"authorization": f"Basic {basic}", **FORM}
        )
        assert answer.status_code == 200, answer.text
