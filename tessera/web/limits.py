"""Request size limits, applied before any body is read.

Oversized bodies are refused with 413 before a handler sees them, so a stranger cannot make the server buffer
megabytes (a request with a ``Content-Length`` over the limit is refused at once; a chunked body is counted
as it streams).
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tessera.settings import Settings


class BodyTooLarge(Exception):
    pass


def declared_length_fits(value: bytes, max_bytes: int) -> bool:
    """Whether a Content-Length header value is a length within the limit (malformed: no)."""
    try:
        return 0 <= int(value) <= max_bytes
    except ValueError:
        return False


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        framed_by_length = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not declared_length_fits(value, self.max_bytes):
                    await refuse(send, self.max_bytes)
                    return
                framed_by_length = True
            elif name == b"transfer-encoding":
                framed_by_length = False
                break
        if framed_by_length:
            # The server reads exactly Content-Length bytes of body (RFC 9112 section 6.3), so a body that
            # passed the check above cannot grow: no counting, and the hot path (the token endpoint) pays
            # for no wrappers around receive and send.
            await self.app(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await refuse(send, self.max_bytes)


async def refuse(send: Send, limit: int) -> None:
    """413 with an OAuth-style error body (also used by the token endpoint's own lane)."""
    body = json.dumps(
        {"error": "invalid_request", "error_description": f"request body larger than {limit} bytes"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
