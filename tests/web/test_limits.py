"""BodySizeLimit over a real socket: both framings of a request body (RFC 9112 section 6), at and over it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.web.limits import BodySizeLimit
from tests.support.live import serve

LIMIT = 1024


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"length": len(body)})


def app() -> Starlette:
    # Installed as in the app factory: inside Starlette's error middleware, outside the router.
    return Starlette(
        routes=[Route("/echo", echo, methods=["POST"])],
        middleware=[Middleware(BodySizeLimit, max_bytes=LIMIT)],
    )


def chunks(total: int, size: int = 100) -> Iterator[bytes]:
    # A generator makes httpx send Transfer-Encoding: chunked, with no Content-Length.
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        sent += part
        yield b"x" * part


def test_content_length_at_limit_passes_and_over_limit_is_refused_before_the_handler() -> None:
    with serve(app()) as server, httpx.Client(base_url=server.url) as http:
        ok = http.post("/echo", content=b"x" * LIMIT)
        assert ok.status_code == 200 and ok.json() == {"length": LIMIT}
        refused = http.post("/echo", content=b"x" * (LIMIT + 1))
        assert refused.status_code == 413
        assert refused.json()["error"] == "invalid_request"


def test_chunked_body_is_counted_as_it_streams() -> None:
    with serve(app()) as server, httpx.Client(base_url=server.url) as http:
        ok = http.post("/echo", content=chunks(LIMIT))
        assert ok.status_code == 200 and ok.json() == {"length": LIMIT}
        refused = http.post("/echo", content=chunks(LIMIT * 3))
        assert refused.status_code == 413
        assert refused.json()["error"] == "invalid_request"


def test_malformed_content_length_is_refused() -> None:
    with serve(app()) as server:
        # httpx would compute its own header; a raw request says what a hostile client can.
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n")
            answer = sock.recv(4096)
        assert answer.split(b"\r\n", 1)[0].split()[1] in (b"400", b"413")
